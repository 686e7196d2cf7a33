"""CORS for the JSON API: another frontend on its own origin may call `/api/...` from a
browser, if its exact origin is configured (AUTODM_CORS_ALLOWED_ORIGINS).

Bearer tokens only: credentials (cookies) are never allowed cross-origin, so the web
session can't be ridden from another site. The HTML pages (`/app`, the lead form) get no
CORS headers at all. Preflights are cached by the browser for AUTODM_CORS_MAX_AGE_S.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIX = "/api/"
ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-ID"]
# What a cross-origin script may read of an answer besides the CORS-safelisted headers.
EXPOSED_HEADERS = [
    "Location",
    "X-Correlation-ID",
    "Idempotent-Replayed",
    "Retry-After",
    "ETag",
    "RateLimit",
    "RateLimit-Policy",
]


class ApiCors:
    """Starlette's CORSMiddleware, for the API's paths only."""

    def __init__(self, app: ASGIApp, origins: list[str], max_age_s: int) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            max_age=max_age_s,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
