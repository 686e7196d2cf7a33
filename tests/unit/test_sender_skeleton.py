"""The senders' shared skeleton on fakes (shared/delivery/intents.py, sender.py): which
intent a request may claim, what a duplicate request does, how an unanswered send is
parked, how Meta's answer feeds the delivery gate, and the fast retries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy.dialects import postgresql

from services.instagram_sender.sending import TAKEOVER as INSTAGRAM
from services.whatsapp_sender.sending import TAKEOVER as WHATSAPP
from shared.accounts.lifecycle import AccountState
from shared.contracts.events import DmRequested, DmRequestedPayload, DmStatusChanged, Recipient
from shared.contracts.lifecycle import DmStatus, Provider, Route
from shared.db.models import DmSend
from shared.delivery import intents
from shared.delivery.intents import (
    INTERRUPTED,
    IntentState,
    Previous,
    parked_state,
    previous_outcome,
)
from shared.delivery.sender import announce_previous, feed_gate, with_fast_retries
from shared.providers.meta_errors import ErrorClass, MetaError

NEVER_TAKEN = (IntentState.SENDING, IntentState.SENT, IntentState.UNKNOWN)


def _request(attempt: int = 1) -> DmRequested:
    return DmRequested(
        correlation_id="unit",
        creator_id=uuid4(),
        payload=DmRequestedPayload(
            lead_id=uuid4(),
            route=Route.IG_DM,
            provider=Provider.INSTAGRAM,
            account_id=uuid4(),
            recipient=Recipient(igsid="1"),
            text="Hi",
            attempt=attempt,
        ),
    )


def test_states_are_stored_as_the_strings_they_always_were() -> None:
    stored = {"sending", "sent", "unknown", "deferred", "failed", "skipped", "link"}
    assert {s.value for s in IntentState} == stored
    assert {s.value for s in AccountState} == {"connected", "reconnect_required", "disconnected"}
    assert IntentState.SENT == "sent"  # a row read back compares equal to the member


@pytest.mark.parametrize("takeover", [INSTAGRAM, WHATSAPP])
@pytest.mark.parametrize("state", NEVER_TAKEN)
def test_what_may_have_reached_the_person_is_never_taken_over(
    takeover: intents.Takeover, state: IntentState
) -> None:
    for attempt, new in ((1, 1), (1, 2), (1, 9), (3, 2)):
        assert not takeover.allows(state, attempt, new)


@pytest.mark.parametrize("takeover", [INSTAGRAM, WHATSAPP])
@pytest.mark.parametrize("state", [IntentState.FAILED, IntentState.SKIPPED, IntentState.LINK])
def test_a_later_attempt_takes_over_what_never_reached_the_person(
    takeover: intents.Takeover, state: IntentState
) -> None:
    assert takeover.allows(state, 1, 2)
    assert not takeover.allows(state, 2, 2)  # a redelivery of the same attempt
    assert not takeover.allows(state, 3, 2)  # a stale request


def test_a_deferred_intent_is_taken_by_its_own_attempt_in_both_senders() -> None:
    for takeover in (INSTAGRAM, WHATSAPP):
        assert takeover.allows(IntentState.DEFERRED, 2, 2)
        assert not takeover.allows(IntentState.DEFERRED, 3, 2)


def test_a_later_attempt_takes_a_deferred_intent_on_instagram_only() -> None:
    # Instagram: a replay sends and the retry then finds it done; WhatsApp: the deferred
    # row keeps the person's order, so its own attempt sends when due.
    assert INSTAGRAM.allows(IntentState.DEFERRED, 1, 2)
    assert not WHATSAPP.allows(IntentState.DEFERRED, 1, 2)


@pytest.mark.parametrize("takeover", [INSTAGRAM, WHATSAPP])
def test_the_claims_sql_is_the_same_rule(takeover: intents.Takeover) -> None:
    sql = str(
        takeover.where(DmSend.state, DmSend.attempt, 2).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    assert "'deferred'" in sql and "'failed'" in sql and "'link'" in sql
    assert "'sent'" not in sql and "'sending'" not in sql and "'unknown'" not in sql
    assert ("<= 2" in sql) == takeover.later_takes_deferred


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("sent", Previous.ANNOUNCE_SENT),
        ("sending", Previous.PARK_UNKNOWN),
        ("unknown", Previous.NOTHING),
        ("failed", Previous.NOTHING),
        ("skipped", Previous.NOTHING),
        ("deferred", Previous.NOTHING),
        ("link", Previous.NOTHING),
    ],
)
def test_what_a_duplicate_request_does(state: str, expected: Previous) -> None:
    assert previous_outcome(state) == expected


def test_an_unanswered_send_is_unknown_unless_its_id_came_first() -> None:
    assert parked_state(None) == IntentState.UNKNOWN
    assert parked_state("") == IntentState.UNKNOWN
    assert parked_state("mid.1") == IntentState.SENT


class _Announcements:
    def __init__(self) -> None:
        self.published: list[DmStatusChanged] = []
        self.parked: list[str] = []

    async def publish(self, event: DmStatusChanged) -> None:
        self.published.append(event)

    async def park(self, reason: str) -> None:
        self.parked.append(reason)


def _intent(state: str, message_id: str | None = None) -> DmSend:
    return DmSend(lead_id=uuid4(), route="ig_dm", state=state, provider_message_id=message_id)


async def test_a_duplicate_of_a_sent_dm_re_announces_it_with_its_id() -> None:
    seen = _Announcements()
    await announce_previous(seen.publish, _request(), _intent("sent", "mid.7"), seen.park)
    (event,) = seen.published
    assert event.payload.status == DmStatus.SENT
    assert event.payload.provider_message_id == "mid.7"
    assert seen.parked == []


async def test_a_duplicate_of_an_interrupted_send_parks_it_unknown_and_never_resends() -> None:
    seen = _Announcements()
    await announce_previous(seen.publish, _request(), _intent("sending"), seen.park)
    assert seen.parked == [INTERRUPTED] and seen.published == []


@pytest.mark.parametrize("state", ["failed", "skipped", "unknown", "link", "deferred"])
async def test_a_duplicate_of_an_announced_outcome_says_nothing(state: str) -> None:
    seen = _Announcements()
    await announce_previous(seen.publish, _request(), _intent(state), seen.park)
    assert seen.published == [] and seen.parked == []


class _Gate:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.until = datetime(2030, 1, 1, tzinfo=UTC)

    async def failed(self, account_id: UUID, error: MetaError) -> None:
        self.calls.append("failed")

    async def succeeded(self, account_id: UUID) -> None:
        self.calls.append("succeeded")

    async def throttled(self, account_id: UUID, error: MetaError) -> datetime:
        self.calls.append("throttled")
        return self.until


@pytest.mark.parametrize(
    ("error_class", "call"),
    [
        (ErrorClass.TRANSIENT, "failed"),
        (ErrorClass.AMBIGUOUS, "failed"),
        (ErrorClass.THROTTLED, "throttled"),
        (ErrorClass.RECIPIENT, "succeeded"),
        (ErrorClass.TOKEN, "succeeded"),
        (ErrorClass.INVALID, "succeeded"),
    ],
)
async def test_metas_answer_feeds_the_breakers(error_class: ErrorClass, call: str) -> None:
    gate: Any = _Gate()
    until = await feed_gate(gate, uuid4(), MetaError(error_class, "x"))
    assert gate.calls == [call]
    assert until == (gate.until if call == "throttled" else None)


async def test_only_transient_errors_are_retried_fast() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise MetaError(ErrorClass.TRANSIENT, "503")
        return "ok"

    assert await with_fast_retries(3, flaky) == "ok" and len(calls) == 3

    calls.clear()

    async def refused() -> str:
        calls.append(1)
        raise MetaError(ErrorClass.THROTTLED, "slow down")

    with pytest.raises(MetaError):
        await with_fast_retries(3, refused)
    assert len(calls) == 1

    calls.clear()

    async def down() -> str:
        calls.append(1)
        raise MetaError(ErrorClass.TRANSIENT, "503")

    with pytest.raises(MetaError):
        await with_fast_retries(2, down)
    assert len(calls) == 2
