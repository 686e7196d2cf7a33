"""Meta error envelopes and the catalogue of errors the sandbox returns.

Graph errors (graph.instagram.com, WhatsApp Cloud API) use
``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id", ...}}``;
api.instagram.com/oauth/access_token uses ``{"error_type", "code", "error_message"}``.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

_OAUTH = "OAuthException"


class GraphError(Exception):
    """An error rendered in the Graph API envelope (platform-facts §1g / §4d)."""

    def __init__(
        self,
        *,
        http_status: int,
        code: int,
        message: str,
        subcode: int | None = None,
        error_type: str = _OAUTH,
        error_data: dict[str, Any] | None = None,
        is_transient: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.subcode = subcode
        self.error_type = error_type
        self.error_data = error_data
        self.is_transient = is_transient
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def key(self) -> str:
        """`code` or `code/subcode`, used for stats."""
        return str(self.code) if self.subcode is None else f"{self.code}/{self.subcode}"

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.error_type}
        error["code"] = self.code
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.error_data is not None:
            error["error_data"] = self.error_data
        if self.is_transient is not None:
            error["is_transient"] = self.is_transient
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}


class InstagramOAuthError(Exception):
    """api.instagram.com error shape: ``{"error_type","code","error_message"}``."""

    def __init__(self, message: str, *, code: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error_type": _OAUTH, "code": self.code, "error_message": self.message}


class PlainHttpError(Exception):
    """A bare, non-JSON error page (e.g. a 502 from Meta's edge)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def fbtrace_id() -> str:
    return secrets.token_urlsafe(8)


async def graph_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GraphError)
    return JSONResponse(exc.body(), status_code=exc.http_status, headers=exc.headers)


async def oauth_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InstagramOAuthError)
    return JSONResponse(exc.body(), status_code=exc.code)


# --- catalogue -------------------------------------------------------------------------

INVALID_TOKEN_SUBCODE = 467
EXPIRED_TOKEN_SUBCODE = 463


def invalid_token(http_status: int, subcode: int | None = INVALID_TOKEN_SUBCODE) -> GraphError:
    return GraphError(
        http_status=http_status,
        code=190,
        subcode=subcode,
        message="Invalid OAuth access token.",
    )


def expired_token(http_status: int) -> GraphError:
    return GraphError(
        http_status=http_status,
        code=190,
        subcode=EXPIRED_TOKEN_SUBCODE,
        message="Error validating access token: Session has expired.",
    )


def missing_token(http_status: int) -> GraphError:
    return GraphError(
        http_status=http_status,
        code=104,
        message="An access token is required to request this resource.",
    )


def invalid_parameter(message: str) -> GraphError:
    return GraphError(http_status=400, code=100, message=message)


def unknown_node(node: str, method: str = "post") -> GraphError:
    return GraphError(
        http_status=400,
        code=100,
        subcode=33,
        error_type="GraphMethodException",
        message=(
            f"Unsupported {method} request. Object with ID '{node}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation."
        ),
    )


def missing_permission(permission: str) -> GraphError:
    return GraphError(
        http_status=403,
        code=10,
        message=f"(#10) Application does not have permission for this action: {permission}",
    )


def unexpected_error() -> GraphError:
    return GraphError(
        http_status=500,
        code=2,
        message="An unexpected error has occurred. Please retry your request later.",
        is_transient=True,
    )


# Instagram messaging (Messenger error table, platform-facts §1g).


def no_matching_user() -> GraphError:
    return GraphError(
        http_status=400, code=100, subcode=2534014, message="No matching Instagram user"
    )


def invalid_message_data(detail: str) -> GraphError:
    return GraphError(
        http_status=400, code=100, subcode=2534015, message=f"Invalid message data: {detail}"
    )


def outside_window() -> GraphError:
    return GraphError(
        http_status=400,
        code=10,
        subcode=2534022,
        message="This message is sent outside of allowed window.",
    )


def invalid_private_reply(reason: str) -> GraphError:
    return GraphError(
        http_status=400,
        code=100,
        subcode=2534025,
        message=f"The comment is invalid for a private reply: {reason}",
    )


def instagram_rate_limited(http_status: int, headers: dict[str, str]) -> GraphError:
    return GraphError(
        http_status=http_status,
        code=613,
        subcode=2534040,
        message="Calls to this api have exceeded the rate limit.",
        headers=headers,
    )


# WhatsApp Cloud API (platform-facts §4c/§4d; titles partly UNCONFIRMED there).


def whatsapp_error(code: int, title: str, details: str, http_status: int = 400) -> GraphError:
    return GraphError(
        http_status=http_status,
        code=code,
        message=f"(#{code}) {title}",
        error_data={"messaging_product": "whatsapp", "details": details},
    )
