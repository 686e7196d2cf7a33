"""Token buckets and circuit breakers: the rules that keep an account within its limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from shared.delivery.circuit import Circuit, CircuitPolicy, CircuitState
from shared.delivery.gate import DeliveryGate
from shared.delivery.kill_switch import creator_scope
from shared.delivery.pacing import Rate, RateLimiter, SendKind
from shared.messaging.delayed_retries import backoff_s
from tests.settings import AllSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = CircuitPolicy(failure_threshold=3, open_s=2.0, max_open_s=8.0)
CREATOR = uuid4()


def test_a_bucket_allows_its_burst_then_paces_at_its_rate() -> None:
    limiter = RateLimiter({SendKind.INSTAGRAM_SEND: Rate(per_second=10, burst=2)})
    limits = [(SendKind.INSTAGRAM_SEND, ("acct",))]
    for _ in range(2):
        assert limiter.wait_s(limits, 0.0) == 0
        limiter.take(limits, 0.0)
    assert limiter.wait_s(limits, 0.0) == 0.1  # one token per 1/10 s
    assert limiter.wait_s(limits, 0.1) == 0


def test_buckets_are_per_account() -> None:
    limiter = RateLimiter({SendKind.INSTAGRAM_SEND: Rate(per_second=1, burst=1)})
    limiter.take([(SendKind.INSTAGRAM_SEND, ("a",))], 0.0)
    assert limiter.wait_s([(SendKind.INSTAGRAM_SEND, ("b",))], 0.0) == 0


def test_private_replies_stay_under_750_in_any_hour() -> None:
    # 600/h with a burst of 20: at most 620 in the first hour, under Meta's 750.
    limiter = RateLimiter({SendKind.INSTAGRAM_PRIVATE_REPLY: Rate(600 / 3600, 20)})
    limits = [(SendKind.INSTAGRAM_PRIVATE_REPLY, ("a",))]
    sent, now = 0, 0.0
    while now < 3600:
        wait = limiter.wait_s(limits, now)
        if wait == 0:
            limiter.take(limits, now)
            sent += 1
        now += max(wait, 0.001)
    assert sent <= 750


def test_a_throttle_blocks_until_the_signalled_time_then_one_probe_goes() -> None:
    circuit = Circuit("instagram:a", "instagram", None, POLICY)
    circuit.on_throttle(T0 + timedelta(seconds=60), "80002", 80002)
    assert not circuit.admits(T0 + timedelta(seconds=59))
    assert circuit.admits(T0 + timedelta(seconds=60))  # the probe
    assert circuit.state == CircuitState.HALF_OPEN
    assert not circuit.admits(T0 + timedelta(seconds=60))  # one probe at a time
    circuit.on_success()
    assert circuit.state == CircuitState.CLOSED and circuit.admits(T0)


def test_a_later_throttle_never_shortens_the_block() -> None:
    circuit = Circuit("instagram:a", "instagram", None, POLICY)
    circuit.on_throttle(T0 + timedelta(seconds=60), "x", 4)
    circuit.on_throttle(T0 + timedelta(seconds=5), "x", 4)
    assert circuit.blocked_until == T0 + timedelta(seconds=60)


def test_a_burst_of_failures_opens_and_a_failed_probe_doubles_the_wait() -> None:
    circuit = Circuit("instagram", "instagram", None, POLICY)
    assert not circuit.on_failure(T0, "5xx", 2)
    assert not circuit.on_failure(T0, "5xx", 2)
    assert circuit.on_failure(T0, "5xx", 2)
    assert circuit.blocked_until == T0 + timedelta(seconds=2)
    probe_at = T0 + timedelta(seconds=2)
    assert circuit.admits(probe_at)
    assert circuit.on_failure(probe_at, "5xx", 2)
    assert circuit.blocked_until == probe_at + timedelta(seconds=4)


def test_backoff_grows_and_is_capped() -> None:
    assert 0.5 <= backoff_s(1, 1.0, 10.0) <= 1.0
    assert 4.0 <= backoff_s(4, 1.0, 10.0) <= 8.0
    assert backoff_s(20, 1.0, 10.0) <= 10.0


def test_a_probe_whose_send_broke_off_frees_its_slot() -> None:
    # The big chaos run: a half-open breaker's probe hit the database restart (no outcome
    # recorded), the slot stayed taken, and the account's DMs waited `circuit_open` forever.
    gate = DeliveryGate(None, "instagram", AllSettings())  # type: ignore[arg-type]
    account = uuid4()
    breaker = gate._breakers(account)[1]
    breaker.on_throttle(datetime.now(UTC) - timedelta(seconds=1), "80002", 80002)
    assert gate.check(account, [], creator_id=CREATOR).go  # the probe
    assert not gate.check(account, [], creator_id=CREATOR).go  # one probe at a time
    with pytest.raises(ConnectionError), gate.outcome_pending(account):
        raise ConnectionError("PostgreSQL restarting")
    assert gate.check(account, [], creator_id=CREATOR).go  # the next probe may go


def _gate() -> DeliveryGate:
    return DeliveryGate(None, "instagram", AllSettings())  # type: ignore[arg-type]


def test_a_creator_pause_holds_every_account_of_theirs_even_one_connected_later() -> None:
    gate = _gate()
    gate._paused = {creator_scope(CREATOR)}
    connected_later = uuid4()
    assert gate.check(connected_later, [], creator_id=CREATOR).why == "paused"
    assert gate.check(uuid4(), [], creator_id=uuid4()).go  # another creator sends


def test_the_creators_pacing_spaces_their_dms_and_is_named_as_the_reason() -> None:
    gate = _gate()
    gate._paces = {CREATOR: 360}  # one DM per 10 s per account
    account = uuid4()
    assert gate.check(account, [], creator_id=CREATOR).go
    held = gate.check(account, [], creator_id=CREATOR)
    assert (held.go, held.why) == (False, "paced")
    assert 9.0 < held.wait_s <= 10.0
    assert gate.check(uuid4(), [], creator_id=CREATOR).go  # per account, not per creator
    assert gate.check(uuid4(), [], creator_id=uuid4()).go  # no pacing: unaffected


def test_a_platform_limit_tighter_than_the_pacing_is_named_rate_limited() -> None:
    settings = AllSettings(instagram_send_per_s=1, instagram_send_burst=1)
    gate = DeliveryGate(None, "instagram", settings)  # type: ignore[arg-type]
    gate._paces = {CREATOR: 7200}  # 2 per second: looser than the operator's 1 per second
    account = uuid4()
    limits = [(SendKind.INSTAGRAM_SEND, (str(account),))]
    assert gate.check(account, limits, creator_id=CREATOR).go
    held = gate.check(account, limits, creator_id=CREATOR)
    assert (held.why, round(held.wait_s)) == ("rate_limited", 1)


def test_a_changed_pacing_applies_at_once_without_a_burst() -> None:
    limiter = RateLimiter({})
    key = ("a",)
    limiter.set_rate(SendKind.CREATOR_PACE, key, Rate(per_second=100, burst=1), 0.0)
    limits = [(SendKind.CREATOR_PACE, key)]
    limiter.take(limits, 0.0)
    limiter.set_rate(SendKind.CREATOR_PACE, key, Rate(per_second=0.1, burst=1), 0.0)
    assert limiter.wait_s(limits, 0.0) == pytest.approx(10.0)
    limiter.set_rate(SendKind.CREATOR_PACE, key, Rate(per_second=0.1, burst=1), 100.0)
    assert limiter.wait_s(limits, 100.0) == 0  # refilled, but never beyond one token
    limiter.take(limits, 100.0)
    assert limiter.wait_s(limits, 100.0) > 0
