"""Cookies, CSRF tokens and the public form's tokens of the web pages.

CSRF: a signed double-submit token. A random `autodm_csrf` cookie (HttpOnly, SameSite=Lax)
and, in every form, HMAC(key, cookie). A forged cross-site POST has neither; a cookie
planted from a sibling subdomain is useless without the key. Stateless, so any API replica
checks it, and no extra library is needed for one HMAC.

The public lead form is anonymous and embeddable in a creator's site (a cross-site iframe,
where SameSite cookies are not sent), so it carries a stateless token instead: the time it
was served, signed with the creator's slug, accepted for `lead_form_token_ttl_s`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from fastapi import Request, Response

from shared.settings import Settings

SESSION_COOKIE = "autodm_session"
CSRF_COOKIE = "autodm_csrf"
LOGIN_STATE_COOKIE = "autodm_login"
CSRF_FIELD = "csrf_token"


class CsrfRejected(Exception):
    """A form arrived without a valid CSRF token (a 403 page)."""


@dataclass(frozen=True)
class WebSecurity:
    key: bytes
    secure_cookies: bool
    form_token_ttl_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> WebSecurity:
        return cls(
            key=settings.web_csrf_key.get_secret_value().encode(),
            secure_cookies=settings.web_cookie_secure,
            form_token_ttl_s=settings.lead_form_token_ttl_s,
        )

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

    def csrf_seed(self, request: Request) -> str:
        """The browser's CSRF cookie value, or a new one (set by `remember_csrf_seed`)."""
        seed: str | None = getattr(request.state, "csrf_seed", None)
        if seed is None:
            seed = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
            request.state.csrf_seed = seed
        return seed

    def csrf_token(self, request: Request) -> str:
        return self._sign("csrf:" + self.csrf_seed(request))

    def remember_csrf_seed(self, request: Request, response: Response) -> None:
        seed = getattr(request.state, "csrf_seed", None)
        if seed is not None and request.cookies.get(CSRF_COOKIE) != seed:
            self.set_cookie(response, CSRF_COOKIE, seed, max_age=7 * 86400)

    async def check_csrf(self, request: Request) -> None:
        seed = request.cookies.get(CSRF_COOKIE)
        sent = (await request.form()).get(CSRF_FIELD)
        if not seed or not isinstance(sent, str):
            raise CsrfRejected("missing CSRF token")
        if not hmac.compare_digest(sent, self._sign("csrf:" + seed)):
            raise CsrfRejected("invalid CSRF token")

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
