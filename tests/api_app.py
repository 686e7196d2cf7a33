"""The API's two processes (HTTP and event workers) as one app, for in-process tests.

Production runs them apart (services/api/http/app.py, services/api/workers/app.py); a test
that posts a lead and waits for its DM needs both, so the HTTP app's lifespan here also
runs the workers' (their consumers, relay and loops)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.api.http.app import create_app as create_http_app
from services.api.workers.app import create_app as create_workers_app
from tests.settings import AllSettings


def create_app(settings: AllSettings) -> FastAPI:
    http = create_http_app(settings)
    workers = create_workers_app(settings)
    http_lifespan = http.router.lifespan_context
    workers_lifespan = workers.router.lifespan_context

    @asynccontextmanager
    async def both(app: FastAPI) -> AsyncIterator[None]:
        async with workers_lifespan(workers), http_lifespan(app):
            yield

    http.router.lifespan_context = both
    http.state.workers = workers
    return http
