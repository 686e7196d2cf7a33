"""Business Login for Instagram: code exchange, long-lived tokens, refresh, /me and the
webhook subscription (platform facts §2, §3c).

Tokens travel in the Authorization header, never in a URL: URLs end up in proxy logs and
in exception messages. Errors never quote a token back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from shared.providers.graph_http import call_graph
from shared.providers.meta_errors import ErrorClass, MetaError

SCOPES = (
    "instagram_business_basic",
    "instagram_business_manage_messages",
    "instagram_business_manage_comments",
)


@dataclass(frozen=True)
class AppCredentials:
    app_id: str
    app_secret: str
    redirect_uri: str


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int | None

    def expires_at(self, now: datetime) -> datetime | None:
        return now + timedelta(seconds=self.expires_in) if self.expires_in else None

    def __repr__(self) -> str:  # a token must never reach a log line through a repr
        return f"IssuedToken(access_token='[redacted]', expires_in={self.expires_in})"


@dataclass(frozen=True)
class InstagramProfile:
    ig_user_id: str  # professional account id: webhook entry.id, /{ig_id}/messages
    app_scoped_id: str  # /me `id`: what deauthorize and data-deletion requests name
    username: str | None


def parse_code_exchange(body: dict[str, Any]) -> str:
    """The short-lived token from either the documented `{"data": [{...}]}` shape or the flat
    `{access_token, user_id, ...}` one that live implementations report (§2, UNCONFIRMED)."""
    item = body
    data = body.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        item = data[0]
    token = item.get("access_token")
    if not isinstance(token, str) or not token:
        raise MetaError(ErrorClass.INVALID, "code exchange answered without an access_token")
    return token


class InstagramAuthClient:
    def __init__(
        self,
        graph: httpx.AsyncClient,
        oauth: httpx.AsyncClient,
        api_version: str,
        credentials: AppCredentials,
    ) -> None:
        self._graph = graph
        self._oauth = oauth
        self._version = api_version
        self._app = credentials

    async def exchange_code(self, code: str) -> str:
        """Authorization code -> short-lived token (1 h)."""
        response = await self._oauth.post(
            "/oauth/access_token",
            data={
                "client_id": self._app.app_id,
                "client_secret": self._app.app_secret,
                "grant_type": "authorization_code",
                "redirect_uri": self._app.redirect_uri,
                "code": code,
            },
        )
        if response.status_code >= 400:
            raise _oauth_error(response)
        return parse_code_exchange(response.json())

    async def long_lived(self, short_lived: str) -> IssuedToken:
        body = await call_graph(
            self._graph,
            "instagram",
            "long_lived_token",
            "GET",
            "/access_token",
            params={"grant_type": "ig_exchange_token", "client_secret": self._app.app_secret},
            headers=_bearer(short_lived),
        )
        return _issued(body)

    async def refresh(self, long_lived: str) -> IssuedToken:
        body = await call_graph(
            self._graph,
            "instagram",
            "refresh_token",
            "GET",
            "/refresh_access_token",
            params={"grant_type": "ig_refresh_token"},
            headers=_bearer(long_lived),
        )
        return _issued(body)

    async def me(self, token: str) -> InstagramProfile:
        body = await call_graph(
            self._graph,
            "instagram",
            "me",
            "GET",
            f"/{self._version}/me",
            params={"fields": "id,user_id,username"},
            headers=_bearer(token),
        )
        return InstagramProfile(
            ig_user_id=str(body.get("user_id") or body["id"]),
            app_scoped_id=str(body["id"]),
            username=body.get("username"),
        )

    async def subscribe(self, ig_user_id: str, token: str, fields: str) -> None:
        await call_graph(
            self._graph,
            "instagram",
            "subscribe",
            "POST",
            f"/{self._version}/{ig_user_id}/subscribed_apps",
            params={"subscribed_fields": fields},
            headers=_bearer(token),
        )

    async def unsubscribe(self, ig_user_id: str, token: str) -> None:
        await call_graph(
            self._graph,
            "instagram",
            "unsubscribe",
            "DELETE",
            f"/{self._version}/{ig_user_id}/subscribed_apps",
            headers=_bearer(token),
        )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _issued(body: dict[str, Any]) -> IssuedToken:
    expires_in = body.get("expires_in")
    return IssuedToken(
        access_token=str(body["access_token"]),
        expires_in=int(expires_in) if expires_in is not None else None,
    )


def _oauth_error(response: httpx.Response) -> MetaError:
    """api.instagram.com answers `{"error_type", "code", "error_message"}` (§1g)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = str(body.get("error_message") or response.reason_phrase or "oauth error")[:500]
    error_class = ErrorClass.TRANSIENT if response.status_code >= 500 else ErrorClass.INVALID
    return MetaError(error_class, message, code=body.get("code"), http_status=response.status_code)
