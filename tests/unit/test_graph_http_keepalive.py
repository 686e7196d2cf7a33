"""The Graph API client drops idle connections before a server's common 5 s idle timeout,
so a send never reuses a connection the server is closing (which would make it `unknown`)."""

from __future__ import annotations

from shared.providers.graph_http import make_http_client


async def test_idle_connections_expire_before_five_seconds() -> None:
    client = make_http_client("http://127.0.0.1:9", timeout_s=10.0, pool_size=2)
    try:
        pool = client._transport._pool  # type: ignore[attr-defined]  # httpcore's pool
        assert pool._keepalive_expiry < 5.0
    finally:
        await client.aclose()
