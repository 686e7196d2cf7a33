"""shared/platform/body_limits.py: a body is refused before it is read when its signature header is
missing or its declared length is over the limit, and cut off at the limit when it is
longer than it said (chunked), so no service buffers more than its limit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from starlette.types import Message

from services.webhook_ingest.app import create_app as create_ingest
from shared.platform.body_limits import BodyLimits, BodyRule
from tests.api_app import create_app as create_api
from tests.settings import AllSettings

SIGNED = BodyRule("/hook", 1000, require_header="X-Hub-Signature-256", label="instagram")
CALLBACK = BodyRule("/hook/callback", 100)


class Upload:
    """An ASGI client that counts how much of its body the app pulled."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        chunk = next(self.chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])


def endless(size: int = 64 * 1024) -> Iterator[bytes]:
    while True:
        yield b"x" * size


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/hook")
    @app.post("/hook/callback")
    @app.post("/other")
    async def take(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    app.add_middleware(BodyLimits, default_max_bytes=10_000, rules=[SIGNED, CALLBACK])
    return app


async def call(app: object, path: str, upload: Upload, headers: dict[str, str]) -> Upload:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    await app(scope, upload.receive, upload.send)  # type: ignore[operator]
    return upload


async def test_an_unsigned_webhook_is_refused_before_its_body_is_read() -> None:
    upload = await call(_app(), "/hook", Upload(endless()), {})
    assert upload.status == 401
    assert upload.pulled == 0


async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    headers = {"X-Hub-Signature-256": "sha256=00", "Content-Length": str(300 * 1024 * 1024)}
    upload = await call(_app(), "/hook", Upload(endless()), headers)
    assert upload.status == 413
    assert upload.pulled == 0


@pytest.mark.parametrize(
    ("path", "limit"), [("/hook", 1000), ("/hook/callback", 100), ("/other", 10_000)]
)
async def test_a_chunked_body_is_cut_off_at_its_paths_limit(path: str, limit: int) -> None:
    headers = {"X-Hub-Signature-256": "sha256=00", "Transfer-Encoding": "chunked"}
    upload = await call(_app(), path, Upload(endless(64)), headers)
    assert upload.status == 413
    assert limit < upload.pulled <= limit + 64  # stopped at the chunk that crossed it


async def test_a_body_longer_than_it_claimed_is_cut_off_too() -> None:
    headers = {"X-Hub-Signature-256": "sha256=00", "Content-Length": "10"}
    upload = await call(_app(), "/hook", Upload(endless(64)), headers)
    assert upload.status == 413
    assert upload.pulled <= 1000 + 64


async def test_a_signed_body_within_the_limit_reaches_the_route() -> None:
    upload = await call(
        _app(), "/hook", Upload(iter([b"a" * 600, b"b" * 400])), {"X-Hub-Signature-256": "s"}
    )
    assert upload.status == 200
    assert upload.sent[1]["body"] == b'{"read":1000}'


@pytest.mark.parametrize("path", ["/webhooks/instagram", "/webhooks/whatsapp"])
async def test_webhook_ingest_refuses_unsigned_and_oversized_bodies_unread(path: str) -> None:
    app = create_ingest(AllSettings())
    upload = await call(app, path, Upload(endless()), {"Transfer-Encoding": "chunked"})
    assert (upload.status, upload.pulled) == (401, 0)
    signed = {"X-Hub-Signature-256": "sha256=00", "Transfer-Encoding": "chunked"}
    upload = await call(app, path, Upload(endless()), signed)
    assert upload.status == 413
    assert upload.pulled <= AllSettings().webhook_max_body_bytes + 64 * 1024


@pytest.mark.parametrize(
    "path", ["/webhooks/instagram/deauthorize", "/webhooks/instagram/data-deletion"]
)
async def test_meta_callbacks_take_a_small_form_only(path: str) -> None:
    app = create_ingest(AllSettings())
    upload = await call(app, path, Upload(endless(1024)), {"Transfer-Encoding": "chunked"})
    assert upload.status == 413
    assert upload.pulled <= AllSettings().webhook_callback_max_body_bytes + 1024


async def test_the_api_cuts_off_a_chunked_json_body_at_its_limit() -> None:
    upload = await call(
        create_api(AllSettings()),
        "/api/dm/send",
        Upload(endless(1024)),
        {"Transfer-Encoding": "chunked"},
    )
    assert upload.status == 413
    assert upload.pulled <= AllSettings().api_max_body_bytes + 1024
    assert upload.headers[b"content-type"] == b"application/problem+json"


@pytest.mark.parametrize("path", ["/c/some-creator/", "/app/settings", "/api/instagram/callback"])
async def test_the_api_refuses_oversized_forms_and_callbacks_unread(path: str) -> None:
    headers = {"Content-Length": str(AllSettings().api_max_body_bytes + 1)}
    upload = await call(create_api(AllSettings()), path, Upload(endless()), headers)
    assert (upload.status, upload.pulled) == (413, 0)
