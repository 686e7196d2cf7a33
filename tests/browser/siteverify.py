"""A local stand-in for a challenge provider's siteverify endpoint (hCaptcha and Cloudflare
Turnstile answer alike): a form-encoded POST of secret, response and remoteip, answered
`{"success": true}` only for the response token HUMAN and the stand-in's secret. It
records every call, so a test can see what the API asked. Never the internet."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

HUMAN = "stand-in-human-token"
SECRET = "stand-in-secret"
SITE_KEY = "stand-in-site-key"


@dataclass
class SiteVerify:
    server: ThreadingHTTPServer
    calls: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/siteverify"

    def stop(self) -> None:
        self.server.shutdown()


def start_siteverify() -> SiteVerify:
    calls: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            calls.append(form)
            ok = form.get("response") == HUMAN and form.get("secret") == SECRET
            codes = [] if ok else ["invalid-input-response"]
            body = json.dumps({"success": ok, "error-codes": codes}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return SiteVerify(server, calls)
