"""HTTP plumbing shared by the Instagram and WhatsApp clients: one pooled httpx client per
consumer, Meta's error envelope decoded into MetaError, timing recorded."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from shared.platform.logs import get_logger
from shared.platform.metrics import PROVIDER_ERRORS, PROVIDER_LATENCY
from shared.platform.tracing import continued, exemplar, instrument_http, set_attributes
from shared.providers.meta_errors import ErrorClass, MetaError, classify


def meta_attributes(provider: str, operation: str) -> dict[str, str | int]:
    """What a Meta call's span says: never the URL's ids, a token, the text or the person."""
    return {"autodm.meta.provider": provider, "autodm.meta.operation": operation}


def error_attributes(error: MetaError) -> dict[str, str | int | None]:
    return {
        "autodm.meta.outcome": str(error.error_class),
        "autodm.meta.error_class": str(error.error_class),
        "autodm.meta.error_code": error.code,
        "autodm.meta.error_subcode": error.subcode,
        "http.response.status_code": error.http_status,
    }


log = get_logger(__name__)


# An idle connection is dropped before a server's common 5 s idle timeout (uvicorn's, many
# proxies'): reusing one the server is closing at that instant fails as "connection lost",
# which a send must treat as ambiguous (`unknown`). Seen after the bench's idle phase.
KEEPALIVE_EXPIRY_S = 4.0


def make_http_client(base_url: str, timeout_s: float, pool_size: int) -> httpx.AsyncClient:
    # Small pools are cheaper per request than one giant pool (measured: kafka facts).
    client = httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
        limits=httpx.Limits(
            max_connections=pool_size,
            max_keepalive_connections=pool_size,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        ),
    )
    instrument_http(client)  # HTTP client spans, only when tracing is on
    return client


async def call_graph(
    http: httpx.AsyncClient,
    provider: str,
    operation: str,
    method: str,
    url: str,
    **kwargs: Any,
) -> dict[str, Any]:
    # A span of its own (Meta's error code, the outcome) around the HTTP client's span.
    with continued(f"meta {operation}", None, attributes=meta_attributes(provider, operation)):
        return await _call(http, provider, operation, method, url, **kwargs)


async def _call(
    http: httpx.AsyncClient,
    provider: str,
    operation: str,
    method: str,
    url: str,
    **kwargs: Any,
) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        response = await http.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise _count(
            provider, MetaError(ErrorClass.TRANSIENT, f"connection failed: {exc!r}")
        ) from exc
    except httpx.TimeoutException as exc:
        # The request left: Meta may have accepted it. Resending could DM the person twice.
        raise _count(
            provider, MetaError(ErrorClass.AMBIGUOUS, f"no answer in time: {exc!r}")
        ) from exc
    except httpx.TransportError as exc:
        raise _count(
            provider, MetaError(ErrorClass.AMBIGUOUS, f"connection lost: {exc!r}")
        ) from exc
    finally:
        # The exemplar links a slow bucket on the dashboard to this call's trace.
        PROVIDER_LATENCY.labels(provider=provider, operation=operation).observe(
            time.perf_counter() - started, exemplar()
        )
    # Never the URL's query or the headers: they may carry the access token.
    log.debug("provider call", provider=provider, operation=operation, status=response.status_code)
    set_attributes({"http.response.status_code": response.status_code})
    if response.status_code < 400:
        body: dict[str, Any] = response.json()
        set_attributes({"autodm.meta.outcome": "accepted"})
        return body
    raise _count(provider, decode_error(response))


def decode_error(response: httpx.Response) -> MetaError:
    try:
        error = response.json().get("error", {})
    except (json.JSONDecodeError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    subcode = error.get("error_subcode")
    error_class = classify(code, subcode)
    if code is None and response.status_code >= 500:
        error_class = ErrorClass.TRANSIENT
    return MetaError(
        error_class=error_class,
        message=str(error.get("message") or response.reason_phrase or "error")[:500],
        code=code,
        subcode=subcode,
        http_status=response.status_code,
        retry_after_s=_retry_after(response),
    )


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait, from Retry-After or the BUC header's regain-access minutes."""
    if value := response.headers.get("retry-after"):
        try:
            return float(value)
        except ValueError:
            pass  # an HTTP date or junk: fall back to the BUC header
    usage = response.headers.get("x-business-use-case-usage")
    if not usage:
        return None
    try:
        minutes = [
            float(entry.get("estimated_time_to_regain_access", 0))
            for entries in json.loads(usage).values()
            for entry in entries
        ]
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None
    return max(minutes, default=0.0) * 60 or None


def _count(provider: str, error: MetaError) -> MetaError:
    set_attributes(error_attributes(error))
    PROVIDER_ERRORS.labels(
        provider=provider, error_class=error.error_class, code=str(error.code or "none")
    ).inc()
    return error
