"""Operators can follow one lead through every process by its correlation id, and no log
line of that flow carries a secret: the Instagram token, the app secret, encryption keys
or the caller's bearer token."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import httpx
import pytest
from demo import DemoCreator, settings_from, user_messages
from stack import Stack

from shared.contracts.events import utcnow
from shared.db.models import SocialAccount
from shared.db.session import make_engine, make_sessionmaker
from shared.platform.crypto import TokenCipher
from tests.e2e.conftest import LOG_DIR
from tests.e2e.test_backbone import settle

pytestmark = pytest.mark.e2e


def log_lines() -> list[dict[str, Any]]:
    lines = []
    for path in LOG_DIR.glob("*.log"):
        for raw in path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
    return lines


async def stored_token(stack: Stack, creator: DemoCreator) -> str:
    settings = settings_from(stack.env)
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            account = await session.get(SocialAccount, creator.account_id)
    finally:
        await engine.dispose()
    assert account is not None and account.access_token_encrypted is not None
    return TokenCipher.from_settings(settings).decrypt(account.access_token_encrypted)


async def test_one_correlation_id_from_request_to_provider_call_and_no_secret_logged(
    stack: Stack, api: httpx.AsyncClient, sandbox: httpx.AsyncClient, creator: DemoCreator
) -> None:
    igsid = await user_messages(sandbox, creator, "traced.one")
    correlation = f"trace-{uuid4()}"
    body = {
        "creator_id": str(creator.creator_id),
        "name": "Tracy",
        "instagram": {"igsid": igsid, "last_inbound_at": utcnow().isoformat()},
    }
    created = await api.post("/api/leads", json=body, headers={"X-Correlation-ID": correlation})
    assert created.status_code == 201, created.text
    assert created.headers["X-Correlation-ID"] == correlation
    await settle(api, created.json()["id"], "sent")

    traced = [line for line in log_lines() if line.get("correlation_id") == correlation]
    seen = {(line["service"], line["event"], line.get("topic")) for line in traced}
    assert ("api_workers", "record received", "leads.created") in seen  # the router
    assert ("instagram_sender", "record received", "dm.requested.instagram") in seen
    assert ("instagram_sender", "provider call", None) in seen
    assert ("api_workers", "record received", "dm.status") in seen  # the projection

    settings = settings_from(stack.env)
    secrets = {
        "instagram token": await stored_token(stack, creator),
        "app secret": settings.instagram_app_secret.get_secret_value(),
        "bearer token": api.headers["Authorization"].removeprefix("Bearer "),
        **{
            f"encryption key {i}": key.get_secret_value()
            for i, key in enumerate(settings.token_encryption_keys)
        },
    }
    everything = "\n".join(p.read_text(errors="replace") for p in LOG_DIR.glob("*.log"))
    leaked = [name for name, value in secrets.items() if value and value in everything]
    assert not leaked, f"found in {LOG_DIR}: {leaked}"
