"""The public lead form's limits on real PostgreSQL: shared by every API process, per IP and
per creator (accepted leads only), sliding over the last minute, client IPs hashed
(housekeeping purges old windows); single-use form tokens; the challenge's verification
against a local stand-in of the provider's siteverify."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs
from uuid import uuid4

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.http.web.form_challenge import PROVIDERS, Challenge
from services.api.http.web.form_limits import (
    TOO_MANY_FOR_CREATOR,
    TOO_MANY_FROM_IP,
    FormLimits,
    ip_key,
)
from services.api.http.web.form_tokens import FormTokens
from shared.db.models import FormRateCount
from shared.messaging.unit_of_work import UnitOfWorkFactory

pytestmark = pytest.mark.integration

TOKENS = FormTokens(b"test-key", ttl_s=600)

# A minute boundary far from the wall clock, so other tests' rows do not interfere.
T0 = datetime(2031, 1, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=uuid4().int % 100_000)


def _processes(
    sessions: async_sessionmaker[AsyncSession], per_ip: int, per_creator: int
) -> tuple[FormLimits, FormLimits]:
    """Two API processes: each its own FormLimits, one database."""
    return (
        FormLimits(
            UnitOfWorkFactory(sessions), per_ip=per_ip, per_creator=per_creator, tokens=TOKENS
        ),
        FormLimits(
            UnitOfWorkFactory(sessions), per_ip=per_ip, per_creator=per_creator, tokens=TOKENS
        ),
    )


async def _refusal(limits: FormLimits, ip: str, creator: str, now: datetime) -> str | None:
    """A submission that, when admitted, becomes a lead (counts against the creator)."""
    verdict = await limits.admit(ip, creator, now)
    if verdict.refusal is None:
        async with limits.uow() as work:
            await limits.accepted(work.session, creator, now)
    return verdict.refusal


async def test_the_per_ip_limit_holds_across_api_processes(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a, b = _processes(sessions, per_ip=3, per_creator=1000)
    ip, creator = f"10.0.0.{uuid4().int % 250}", str(uuid4())
    answers = [
        await _refusal(p, ip, creator, T0 + timedelta(seconds=i))
        for i, p in enumerate((a, b, a, b))
    ]
    assert answers == [None, None, None, TOO_MANY_FROM_IP]
    assert await _refusal(b, "192.0.2.7", creator, T0 + timedelta(seconds=5)) is None  # other IP


async def test_the_limit_slides_instead_of_resetting_on_the_minute(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    (a, _) = _processes(sessions, per_ip=4, per_creator=1000)
    ip, creator = f"10.1.0.{uuid4().int % 250}", str(uuid4())
    for second in (50, 52, 54, 56):  # 4 late in the first minute
        assert await _refusal(a, ip, creator, T0 + timedelta(seconds=second)) is None
    # 10 s into the next minute, 5/6 of the previous minute still counts: 3.3 + 0 < 4 ...
    assert await _refusal(a, ip, creator, T0 + timedelta(seconds=70)) is None
    # ... but now 3.3 + 1 >= 4: a fixed window would have allowed 4 more.
    assert await _refusal(a, ip, creator, T0 + timedelta(seconds=71)) == TOO_MANY_FROM_IP
    assert await _refusal(a, ip, creator, T0 + timedelta(seconds=180)) is None  # long gone


async def test_a_flooding_network_does_not_close_the_creators_form(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a, b = _processes(sessions, per_ip=2, per_creator=3)
    creator = str(uuid4())
    flood = [await _refusal(a, "198.51.100.1", creator, T0) for _ in range(10)]
    assert flood.count(None) == 2  # the refused 8 did not count against the creator
    assert await _refusal(b, "198.51.100.2", creator, T0) is None
    assert await _refusal(b, "198.51.100.3", creator, T0) == TOO_MANY_FOR_CREATOR


async def test_client_ips_are_stored_hashed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a, _ = _processes(sessions, per_ip=10, per_creator=10)
    ip, creator = "203.0.113.9", str(uuid4())
    await _refusal(a, ip, creator, T0)
    async with sessions() as session:
        keys = set(await session.scalars(select(FormRateCount.key)))
    assert ip_key(ip) in keys and not any(ip in key for key in keys)


async def test_only_accepted_leads_count_against_the_creator(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """130 bot posts from 13 addresses (honeypot, spent tokens: admitted, never accepted)
    leave the creator's form open; accepted leads close it at the limit."""
    limits, _ = _processes(sessions, per_ip=100, per_creator=3)
    creator = str(uuid4())
    for i in range(130):
        verdict = await limits.admit(f"203.0.113.{i % 13}", creator, T0)
        assert verdict.refusal is None  # admitted, then caught: nothing is accepted
    answers = [await _refusal(limits, "192.0.2.50", creator, T0) for _ in range(4)]
    assert answers == [None, None, None, TOO_MANY_FOR_CREATOR]


async def test_the_form_is_under_pressure_past_its_share_of_a_limit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    challenge = Challenge(PROVIDERS["turnstile"], "site", "secret", "http://127.0.0.1:9/")
    limits = FormLimits(
        UnitOfWorkFactory(sessions), 10, 4, TOKENS, challenge=challenge, challenge_at=0.5
    )
    creator, ip = str(uuid4()), f"10.2.0.{uuid4().int % 250}"
    assert not await limits.under_pressure(ip, creator, T0)
    assert (await limits.admit(ip, creator, T0)).pressure is False
    await _refusal(limits, "192.0.2.60", creator, T0)
    await _refusal(limits, "192.0.2.61", creator, T0)  # 2 of 4 accepted: half-way
    assert await limits.under_pressure("192.0.2.62", creator, T0)
    assert (await limits.admit("192.0.2.62", creator, T0)).pressure is True


async def test_a_form_token_brings_one_submission(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    token = TOKENS.issue("jane")
    assert TOKENS.valid("jane", token) and not TOKENS.valid("other", token)
    async with sessions.begin() as session:
        assert await TOKENS.spend(session, token, T0)
    async with sessions.begin() as session:
        assert not await TOKENS.spend(session, token, T0)
    assert TOKENS.issue("jane") != TOKENS.issue("jane")  # a nonce each: no shared token


class _SiteVerify(BaseHTTPRequestHandler):
    """A stand-in for the provider's siteverify: success for the token "human"."""

    calls: ClassVar[list[dict[str, list[str]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        self.calls.append(form)
        ok = form.get("response") == ["human"] and form.get("secret") == ["s3cret"]
        body = json.dumps({"success": ok, "error-codes": [] if ok else ["invalid"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


async def test_the_challenge_is_verified_at_the_providers_siteverify() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SiteVerify)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/siteverify"
    try:
        challenge = Challenge(PROVIDERS["hcaptcha"], "site", "s3cret", url)
        assert await challenge.passed("human", "198.51.100.9")
        assert not await challenge.passed("robot", "198.51.100.9")
        assert not await challenge.passed("", "198.51.100.9")  # no token: no call, no pass
        assert _SiteVerify.calls[0] == {
            "secret": ["s3cret"],
            "response": ["human"],
            "remoteip": ["198.51.100.9"],
        }
        assert len(_SiteVerify.calls) == 2
    finally:
        server.shutdown()
    # The provider unreachable: a refusal, never a pass.
    assert not await Challenge(PROVIDERS["turnstile"], "s", "s3cret", url).passed("human", "x")
