"""A minimal authorization-code flow for the web pages' sign-in (development only).

`GET /authorize` shows a form where anyone picks who they are (a creator id, or admin);
`POST /authorize` redirects back with a one-time code; `POST /oauth/token` trades the code
for a token minted like `POST /token`. No passwords, no consent: it is the stand-in for a
real identity provider's hosted sign-in page, and only redirects to loopback addresses.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Annotated
from urllib.parse import urlencode, urlsplit
from uuid import UUID

from fastapi import APIRouter, Form, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse

from local_issuer.settings import IssuerSettings

CODE_TTL_S = 120
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# A sign-in page inside another site's frame can be clickjacked into signing in; like a
# hosted provider's, this one refuses to be framed (and tests copy what it does).
NO_FRAMING = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}


@dataclass(frozen=True)
class Grant:
    sub: str
    role: str
    creator_id: UUID | None
    redirect_uri: str
    expires_at: float
    code_challenge: str = ""


def _loopback(redirect_uri: str) -> str:
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK:
        raise HTTPException(400, "the local issuer only redirects to loopback addresses")
    return redirect_uri


def _pkce_matches(challenge: str, verifier: str) -> bool:
    digest = hashlib.sha256(verifier.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return hmac.compare_digest(expected, challenge)


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in (local issuer)</title><style>
body{{font:16px system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#111}}
label{{display:block;margin:.8rem 0 .2rem;font-weight:600}}
input,select,button{{font:inherit;padding:.5rem;width:100%;box-sizing:border-box}}
button{{margin-top:1rem;background:#1f4fd1;color:#fff;border:0;border-radius:.4rem}}
p.note{{color:#444;font-size:.9rem}}</style></head><body>
<h1>Sign in</h1><p class="note">Local development issuer: pick who you are. Never deployed.</p>
<form method="post" action="/authorize">
<input type="hidden" name="redirect_uri" value="{redirect_uri}">
<input type="hidden" name="state" value="{state}">
<input type="hidden" name="code_challenge" value="{code_challenge}">
<label for="role">Role</label>
<select id="role" name="role"><option value="creator">creator</option>
<option value="admin">admin</option></select>
<label for="creator_id">Creator id (creators only)</label>
<input id="creator_id" name="creator_id" value="{creator_id}" autocomplete="off">
<label for="sub">User id</label>
<input id="sub" name="sub" value="web-user" required maxlength="128">
<button type="submit">Sign in</button></form></body></html>"""


def make_router(
    settings: IssuerSettings, mint: Callable[[str, str, UUID | None], str]
) -> APIRouter:
    router = APIRouter(tags=["sign-in (development)"])
    grants: dict[str, Grant] = {}

    @router.get("/authorize", response_class=HTMLResponse)
    async def authorize_page(
        redirect_uri: str,
        state: str = "",
        response_type: str = "code",
        login_hint: str = "",
        code_challenge: str = "",
        code_challenge_method: str = "S256",
        audience: str = "",
    ) -> HTMLResponse:
        if response_type != "code" or code_challenge_method != "S256":
            raise HTTPException(400, "only response_type=code with S256 PKCE is supported")
        # Like a hosted provider that issues tokens per API (Auth0's `audience`): asking
        # for an API it does not know is refused, not silently ignored.
        if audience and audience != settings.audience:
            raise HTTPException(400, f"unknown audience {audience!r}")
        html = PAGE.format(
            redirect_uri=escape(_loopback(redirect_uri)),
            state=escape(state),
            code_challenge=escape(code_challenge),
            creator_id=escape(login_hint),
        )
        return HTMLResponse(html, headers=NO_FRAMING)

    @router.post("/authorize")
    async def authorize(
        redirect_uri: Annotated[str, Form()],
        role: Annotated[str, Form(pattern="^(creator|admin)$")],
        sub: Annotated[str, Form(min_length=1, max_length=128)],
        state: Annotated[str, Form()] = "",
        creator_id: Annotated[str, Form()] = "",
        code_challenge: Annotated[str, Form(max_length=128)] = "",
    ) -> RedirectResponse:
        try:
            creator = UUID(creator_id.strip()) if role == "creator" else None
        except ValueError as exc:
            raise HTTPException(400, "a creator signs in with their creator id (a UUID)") from exc
        code = secrets.token_urlsafe(24)
        expires = time.time() + CODE_TTL_S
        grants[code] = Grant(sub, role, creator, _loopback(redirect_uri), expires, code_challenge)
        query = urlencode({"code": code, "state": state})
        return RedirectResponse(f"{redirect_uri}?{query}", status_code=303)

    @router.post("/oauth/token")
    async def token(
        code: Annotated[str, Form()],
        redirect_uri: Annotated[str, Form()],
        grant_type: Annotated[str, Form()] = "authorization_code",
        code_verifier: Annotated[str, Form()] = "",
    ) -> dict[str, object]:
        grant = grants.pop(code, None)  # single use
        if grant_type != "authorization_code" or grant is None:
            raise HTTPException(400, "invalid_grant")
        if grant.expires_at < time.time() or grant.redirect_uri != redirect_uri:
            raise HTTPException(400, "invalid_grant")
        if grant.code_challenge and not _pkce_matches(grant.code_challenge, code_verifier):
            raise HTTPException(400, "invalid_grant")
        access_token = mint(grant.sub, grant.role, grant.creator_id)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": settings.default_ttl_s,
        }

    return router
