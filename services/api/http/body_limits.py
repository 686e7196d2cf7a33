"""The API's request body limits (shared/platform/body_limits.py), refused as problem documents.

One limit for every route, JSON and HTML forms alike (the public lead form, the settings
and admin pages, the connect flows): no route of the API takes a body near it. The OAuth
callbacks are GETs; a body sent to them anyway is held to the same limit.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response

from services.api.http.problems import DEFAULT_KINDS, problem
from services.api.settings import ApiSettings
from shared.platform.body_limits import BodyLimits


def _problem(status: int, detail: str) -> Response:
    kind, title = DEFAULT_KINDS.get(status, ("http-error", "Error"))
    return problem(status, kind, title, detail)


def install_body_limits(app: FastAPI, settings: ApiSettings) -> None:
    app.add_middleware(BodyLimits, default_max_bytes=settings.api_max_body_bytes, respond=_problem)
