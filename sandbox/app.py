"""ASGI app factory: wires the Graph, OAuth, WhatsApp and control routes."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox import control, control_instagram, graph, oauth
from sandbox.errors import (
    GraphError,
    InstagramOAuthError,
    PlainHttpError,
    graph_error_handler,
    oauth_error_handler,
)
from sandbox.settings import SandboxSettings
from sandbox.state import SandboxState

CONTROL_PREFIX = "/_sandbox"


class GraphVersionConvertor(Convertor[str]):
    """Matches `v23.0`-style path segments, so `/{version}/...` never shadows other
    routes (e.g. `/_sandbox/...` or `/oauth/...`)."""

    regex = r"v\d+\.\d+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("graphversion", GraphVersionConvertor())


async def _plain_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, PlainHttpError)
    return PlainTextResponse(exc.text, status_code=exc.status)


async def _not_found_handler(request: Request, exc: Exception) -> Response:
    """Control API keeps FastAPI's errors; Graph paths answer like Graph does."""
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith(CONTROL_PREFIX) or exc.status_code != 404:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    body = GraphError(
        http_status=400,
        code=2500,
        message=f"Unknown path components: {request.url.path}",
    ).body()
    return JSONResponse(body, status_code=400)


def _include_graph_routes(app: FastAPI) -> None:
    # Bare and versioned forms of every Graph route; token routes first so `/{node}`
    # does not swallow `/access_token`.
    for prefix in ("", "/{version:graphversion}"):
        app.include_router(oauth.versioned_router, prefix=prefix)
        app.include_router(graph.router, prefix=prefix)


def create_app(
    settings: SandboxSettings | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build a sandbox. `webhook_transport` lets tests capture webhook POSTs in-process."""
    settings = settings or SandboxSettings()
    app = FastAPI(
        title="AutoDM Meta sandbox",
        docs_url=f"{CONTROL_PREFIX}/docs",
        openapi_url=f"{CONTROL_PREFIX}/openapi.json",
        redoc_url=None,
    )
    app.state.sandbox = SandboxState(settings, webhook_transport)
    handlers: dict[Any, Any] = {
        GraphError: graph_error_handler,
        InstagramOAuthError: oauth_error_handler,
        PlainHttpError: _plain_error_handler,
        StarletteHTTPException: _not_found_handler,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)
    app.include_router(control.router)
    app.include_router(control_instagram.link_router)
    app.include_router(oauth.router)
    _include_graph_routes(app)
    return app
