"""The HTTP face every service shares: /metrics, /healthz, /readyz, and the broker's life.

Each service's app.py builds its broker and handlers, then hands them here; the same
FastAPI lifespan starts and stops the broker (faststream's plain-lifespan integration).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.platform.logs import get_logger

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def broker_check(broker: KafkaBroker) -> ReadinessCheck:
    async def check() -> None:
        if not await broker.ping(timeout=2.0):
            raise RuntimeError("kafka unreachable")

    return check


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check


def add_operational_routes(app: FastAPI, checks: dict[str, ReadinessCheck]) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        # Exemplars (trace ids on latency buckets) exist only in OpenMetrics, which
        # Prometheus asks for when its exemplar storage is on; others get the classic text.
        if "application/openmetrics-text" in request.headers.get("accept", ""):
            return Response(
                openmetrics.generate_latest(REGISTRY),  # type: ignore[no-untyped-call]
                media_type=openmetrics.CONTENT_TYPE_LATEST,
            )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, Any]:
        results = await asyncio.gather(*(c() for c in checks.values()), return_exceptions=True)
        failed = {name: str(r) for name, r in zip(checks, results, strict=True) if r is not None}
        response.status_code = 503 if failed else 200
        return {"status": "not ready" if failed else "ready", "failed": failed}


def broker_lifespan(
    broker: KafkaBroker | None,
    on_start: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    on_stop: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> Lifespan:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for step in on_start:
            await step()
        if broker is not None:  # the API's HTTP process has none
            await broker.start()
        tasks = [asyncio.create_task(job(), name=job.__qualname__) for job in background]
        log.info("service started")
        try:
            yield
        finally:
            await _cancel_all(tasks)
            if broker is not None:
                await broker.stop()
            for step in on_stop:
                await step()
            log.info("service stopped")

    return lifespan


async def _cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel until every task has ended: a loop that swallows one cancellation (a library
    catching it mid-call) must not keep the service from stopping."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
        if pending:
            log.warning("background task survived its cancellation; cancelling again")


def serve(factory: str, port: int, host: str, trusted_proxies: str = "") -> None:
    """Run a service's app factory under uvicorn (each service's `python -m` entrypoint).
    Forwarded headers count only from `trusted_proxies`; with none, uvicorn's own default
    (trust 127.0.0.1) must not apply, so they are not read at all."""
    import uvicorn

    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=bool(trusted_proxies.strip()),
        forwarded_allow_ips=trusted_proxies.strip() or None,
    )
