"""Cookies, CSRF tokens, the signed sign-in state and the public form's tokens of the web
pages (the model: docs/WEB.md, "Session and CSRF model").

CSRF: every form of a signed-in page carries HMAC(key, the session cookie's token). The
token is tied to the session: a planted cookie or another account's token is useless, and
a new sign-in (a new session) rotates it. As a second line, a state-changing request whose
`Sec-Fetch-Site` or `Origin` says it came from another origin is refused before the token
is looked at.

The sign-in state cookie (state, PKCE verifier, where to go next) is signed and expires,
so a page cannot plant one of its own making.

The public lead form is anonymous and embeddable in a creator's site (a cross-site iframe,
where SameSite cookies are not sent), so it carries a stateless token instead: the time it
was served, signed with the creator's slug, accepted for `lead_form_token_ttl_s`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.settings import ApiSettings

SESSION_COOKIE = "autodm_session"
LOGIN_STATE_COOKIE = "autodm_login"
CSRF_FIELD = "csrf_token"
# Fetch metadata of a request a page of this site made, or the user typed.
OWN_FETCH_SITES = frozenset({"same-origin", "none"})


class CsrfRejected(Exception):
    """A form arrived without a valid CSRF token (a 403 page)."""


@dataclass(frozen=True)
class WebSecurity:
    key: bytes
    secure_cookies: bool
    form_token_ttl_s: int
    public_origin: str = ""

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> WebSecurity:
        return cls(
            key=settings.web_csrf_key.get_secret_value().encode(),
            secure_cookies=settings.web_cookie_secure,
            form_token_ttl_s=settings.lead_form_token_ttl_s,
            public_origin=origin_of(settings.public_base_url),
        )

    def cookie_name(self, name: str) -> str:
        """`__Host-` on https: the browser then takes the cookie only from this very host
        over https, never from a sibling subdomain (Domain=) or a plain-http page."""
        return f"__Host-{name}" if self.secure_cookies else name

    @property
    def session_cookie(self) -> str:
        return self.cookie_name(SESSION_COOKIE)

    @property
    def login_cookie(self) -> str:
        return self.cookie_name(LOGIN_STATE_COOKIE)

    def _sign(self, message: str) -> str:
        return hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()

    def set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            secure=self.secure_cookies,
            samesite="lax",
            path="/",
        )

    def delete_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure_cookies, httponly=True)

    def csrf_token(self, request: Request) -> str:
        """The token of this browser's session; none without a session (the only forms of
        a signed-out page are the public form, with its own token, and the sign-in link)."""
        session = request.cookies.get(self.session_cookie)
        return self._sign("csrf:" + session) if session else ""

    async def check_csrf(self, request: Request) -> None:
        self.check_origin(request)
        session = request.cookies.get(self.session_cookie)
        sent = (await request.form()).get(CSRF_FIELD)
        if not session or not isinstance(sent, str):
            raise CsrfRejected("missing CSRF token")
        if not hmac.compare_digest(sent, self._sign("csrf:" + session)):
            raise CsrfRejected("invalid CSRF token")

    def check_origin(self, request: Request) -> None:
        """The second line: a browser says where a request comes from. Another site, a
        sibling subdomain or another port of this host is refused even with a token."""
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in OWN_FETCH_SITES:
            raise CsrfRejected(f"a {fetch_site} request")
        origin = request.headers.get("origin")
        own = {self.public_origin, origin_of(str(request.base_url))}
        if origin is not None and origin not in own:
            raise CsrfRejected("a request from another origin")

    def seal(self, purpose: str, value: str, ttl_s: int, now: float | None = None) -> str:
        """`value` with its expiry, signed for `purpose`: readable, not forgeable."""
        expires = int((now if now is not None else time.time()) + ttl_s)
        payload = f"{expires}|{value}"
        return f"{payload}|{self._sign(f'{purpose}:{payload}')}"

    def unseal(self, purpose: str, sealed: str, now: float | None = None) -> str | None:
        """The value `seal` signed for `purpose`, or None if forged, altered or expired."""
        payload, _, signature = sealed.rpartition("|")
        if not payload or not hmac.compare_digest(signature, self._sign(f"{purpose}:{payload}")):
            return None
        expires, _, value = payload.partition("|")
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return None
        return value

    def form_token(self, slug: str, now: float | None = None) -> str:
        issued = str(int(now if now is not None else time.time()))
        return f"{issued}.{self._sign(f'lead-form:{slug}:{issued}')}"

    def form_token_valid(self, slug: str, token: str, now: float | None = None) -> bool:
        issued, _, signature = token.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(
            signature, self._sign(f"lead-form:{slug}:{issued}")
        ):
            return False
        age = (now if now is not None else time.time()) - int(issued)
        return 0 <= age <= self.form_token_ttl_s


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def same_origin_writes(request: Request) -> None:
    """A dependency of every signed-in page's router: a state-changing request that a
    browser says came from another origin is refused before any handler runs, whether or
    not the handler remembers `check_csrf`."""
    if request.method not in SAFE_METHODS:
        security: WebSecurity = request.app.state.web.security
        security.check_origin(request)


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, as browsers write it in `Origin`."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def security_headers(response: Response, *, embeddable: bool = False) -> None:
    """Every asset is served by the app: the policy allows nothing from elsewhere."""
    ancestors = "*" if embeddable else "'none'"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if not embeddable:
        response.headers["X-Frame-Options"] = "DENY"


class StrictTransport:
    """`Strict-Transport-Security` on every answer (pages, API, docs): once a browser has
    seen it over https it never tries plain http for this host, so the Secure cookies are
    never offered to a network attacker's downgrade. Only for a deployment behind https."""

    def __init__(self, app: ASGIApp, max_age_s: int) -> None:
        self.app = app
        self.value = f"max-age={max_age_s}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"strict-transport-security", self.value),
                ]
            await send(message)

        await self.app(scope, receive, with_header)
