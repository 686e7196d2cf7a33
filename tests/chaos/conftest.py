"""A whole stack of its own for fault injection: every service as a process (so it can be
killed with SIGKILL), the sandbox as Instagram, on the test instance of Kafka/PostgreSQL.

The delivery settings are shortened (1 s provider timeout, 3 attempts, sub-second
backoff) so storms exhaust retries within the run; the guarantees do not depend on them.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from stack import ProcessSpec, Stack, StackPorts, prepare, process_specs, stack_env  # deploy/local

from tests.conftest import ROOT
from tests.settings import AllSettings, get_all_settings

pytestmark = pytest.mark.chaos

CHAOS_ENV = {
    "AUTODM_PROVIDER_TIMEOUT_S": "1.0",
    "AUTODM_DELIVERY_MAX_ATTEMPTS": "3",
    "AUTODM_RETRY_BASE_DELAY_S": "0.5",
    "AUTODM_RETRY_MAX_DELAY_S": "4",
    "AUTODM_CIRCUIT_OPEN_S": "1",
    "AUTODM_CIRCUIT_MAX_OPEN_S": "4",
    "AUTODM_PAUSED_RECHECK_S": "1",
    "AUTODM_LOG_LEVEL": "WARNING",
}


SETTLE_BASE_S = 240.0


@dataclass(frozen=True)
class ChaosPlan:
    """Sizes from the environment: `make test` runs the small plan, `make chaos` the big one."""

    leads: int
    accounts: int
    kill_rounds: int
    restart_infra: bool

    def creator_of(self, n: int) -> int:
        """Lead n's creator. Leads go to creators in blocks of five, so each creator gets
        its share of private replies (every fifth lead): `n % accounts` put all of them on
        the accounts congruent to 4 mod gcd(5, accounts) (4 of 20), 150 replies each, which
        the 600/h pacing spreads over 13 minutes."""
        return (n // 5) % self.accounts

    def private_replies_per_account(self) -> int:
        replies = Counter(self.creator_of(n) for n in range(self.leads) if n % 5 == 4)
        return max(replies.values(), default=0)

    def settle_s(self, settings: AllSettings) -> float:
        """How long the run may take to settle after the faults: the base, plus the time
        the configured private-reply pacing needs for one account's replies past its burst
        (those legitimately wait, deferred as `rate_limited`)."""
        beyond_burst = self.private_replies_per_account() - settings.instagram_private_reply_burst
        pacing_s = max(0, beyond_burst) * 3600 / settings.instagram_private_replies_per_h
        return SETTLE_BASE_S + pacing_s

    @property
    def phases(self) -> int:
        """Waves of leads: one per fault phase (4 a round), one per infra restart (2)."""
        return self.kill_rounds * (6 if self.restart_infra else 4)

    @classmethod
    def from_env(cls) -> ChaosPlan:
        return cls(
            leads=int(os.environ.get("CHAOS_LEADS", "300")),
            accounts=int(os.environ.get("CHAOS_ACCOUNTS", "6")),
            kill_rounds=int(os.environ.get("CHAOS_KILL_ROUNDS", "1")),
            restart_infra=os.environ.get("CHAOS_RESTART_INFRA", "0") == "1",
        )


def _ports() -> StackPorts:
    settings = get_all_settings()
    offset = int(os.environ.get("CHAOS_PORT_OFFSET", "0"))
    return StackPorts(
        kafka=int(settings.kafka_bootstrap.rsplit(":", 1)[1]),
        postgres=int(settings.database_url.get_secret_value().rsplit(":", 1)[1].split("/")[0]),
        sandbox=18280 + offset,
        api=8200 + offset,
        webhook_ingest=8201 + offset,
        instagram_sender=8202 + offset,
        whatsapp_sender=8203 + offset,
        token_refresher=8204 + offset,
        api_workers=8205 + offset,
        local_issuer=18290 + offset,
    )


def chaos_specs(ports: StackPorts) -> list[ProcessSpec]:
    """Every process of the stack, the token refresher included: it once left accounts
    `reconnect_required` after an injected 5xx when stacks of several suites shared consumer
    groups; stacks are package-scoped now and it flags reconnect only on a token error."""
    return process_specs(ports)


@pytest.fixture(scope="session")
def plan() -> ChaosPlan:
    return ChaosPlan.from_env()


# Package scope: the stack stops when this folder's tests end. Its consumers share
# groups with every other suite on the test broker and must not outlive them.
@pytest.fixture(scope="package")
def chaos_stack() -> Iterator[Stack]:
    ports = _ports()
    database = get_all_settings().database_url.get_secret_value().rsplit("/", 1)[1]
    env = stack_env(ports, database) | CHAOS_ENV
    prepare(env)
    stack = Stack(env=env, ports=ports, log_dir=ROOT / ".local" / "test" / "chaos-logs")
    try:
        stack.start(chaos_specs(ports))
        yield stack
    finally:
        stack.stop()
