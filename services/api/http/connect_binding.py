"""Binds an OAuth connect to the browser that started it (RFC 6749 §10.12, RFC 9700 §4.7).

The signed `state` alone says which creator started a connect, not who finishes it: a
creator could hand the authorization link to somebody else, whose approval would then link
*their* account to the creator. So starting a connect also sets a random secret in an
HttpOnly, SameSite=Lax cookie scoped to the callback's path, and the state carries its
digest. The callback goes on only when the browser presents the cookie whose digest the
state names; it then drops the cookie (and the state's nonce is redeemed once, in the
database). Any other browser has no such cookie and is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

INSTAGRAM_COOKIE = "autodm_ig_connect"


class ForeignBrowser(Exception):
    """The callback came to a browser that did not start this connect."""


@dataclass(frozen=True)
class BrowserBinding:
    secret: str  # only in the starting browser's cookie
    digest: str  # in the state (a URL anybody holding the link sees)

    @classmethod
    def new(cls) -> BrowserBinding:
        secret = secrets.token_urlsafe(32)
        return cls(secret, digest_of(secret))


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class BindingCookie:
    name: str
    path: str  # the callback's path: the cookie goes nowhere else
    max_age_s: int
    secure: bool

    @classmethod
    def for_callback(
        cls, name: str, redirect_uri: str, max_age_s: int, secure: bool
    ) -> BindingCookie:
        return cls(name, urlsplit(redirect_uri).path or "/", max_age_s, secure)

    def set(self, response: Response, binding: BrowserBinding) -> None:
        response.set_cookie(
            self.name,
            binding.secret,
            max_age=self.max_age_s,
            path=self.path,
            httponly=True,
            secure=self.secure,
            samesite="lax",
        )

    def check(self, request: Request, digest: str) -> None:
        """Raise ForeignBrowser unless this browser holds the secret the state names."""
        secret = request.cookies.get(self.name)
        if not secret or not digest or not hmac.compare_digest(digest_of(secret), digest):
            raise ForeignBrowser("this connect was started in another browser")

    def forget(self, response: Response) -> None:
        """Single use: the browser drops the secret with the callback's answer."""
        response.delete_cookie(
            self.name, path=self.path, httponly=True, secure=self.secure, samesite="lax"
        )
