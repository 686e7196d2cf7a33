"""The DM lifecycle's order, checked over every route change the router and the senders can
make (hypothesis): whatever path a DM takes and however the receipts interleave with the
sender's own events, the projection never leaves it `queued` or `sending` once nothing is
pending any more, and a DM that reached the person has its `sent_at`.

The model below mirrors services/api/service_layer/lead_routing.py,
services/instagram_sender/sending.py and services/whatsapp_sender/sending.py: which statuses
each step publishes, on which route, in which order. The projection applied is the real one
(services/api/service_layer/dm_state.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from services.api.service_layer.dm_state import apply_status_event, record_transition, start_attempt
from shared.contracts.events import DmStatusPayload
from shared.contracts.lifecycle import DmStatus, Route
from shared.db.models import Lead

S = DmStatus
RETRYABLE = (S.FAILED, S.SKIPPED)
REACHED = (S.SENT, S.DELIVERED, S.READ, S.REPLIED)
IN_PROGRESS = (S.QUEUED, S.SENDING)  # the system still has to act


@dataclass(frozen=True)
class Step:
    """One status as the projection receives it; `router` steps are the router's own
    transitions (in its transaction), `retry` a creator's retry (the API's)."""

    status: DmStatus
    route: Route | None
    attempt: int
    kind: str = "event"  # event | router | retry


@dataclass
class Attempt:
    number: int
    sender: list[Step] = field(default_factory=list)
    # Receipts (Meta's webhooks: sent/delivered/read/failed, echoes, replies) from other
    # producers: each may come anywhere after the `sending` of its message.
    receipts: list[tuple[int, Step]] = field(default_factory=list)
    pending: bool = False  # the path stopped while a deferred send waits: not stuck

    def emit(self, status: DmStatus, route: Route | None, kind: str = "event") -> None:
        self.sender.append(Step(status, route, self.number, kind))

    def receipt(self, status: DmStatus, route: Route) -> None:
        sending = max(i for i, s in enumerate(self.sender) if s.status == S.SENDING)
        self.receipts.append((sending, Step(status, route, self.number)))


class Paths:
    """Draws one DM's path through the router and a sender."""

    def __init__(self, data: st.DataObject) -> None:
        self.draw = data.draw

    def choose(self, *options: str) -> str:
        return self.draw(st.sampled_from(options))

    def route(self, a: Attempt) -> None:
        route = Route(self.choose(*(r.value for r in Route)))
        if route == Route.NONE:
            a.emit(S.SKIPPED, Route.NONE, "router")
        elif route == Route.IG_LINK:
            a.emit(S.AWAITING_CONTACT, Route.IG_LINK, "router")
            if self.draw(st.booleans()):  # the lead opens the link: the router re-routes
                self.instagram(a, Route.IG_DM)
        elif route == Route.WA_LINK:
            self.wa_link(a)
        elif route.provider is not None and route.provider.value == "instagram":
            self.instagram(a, route)
        else:
            self.whatsapp(a, route, fallback=False)

    def deferred(self, a: Attempt) -> bool:
        """A deferral: the path may stop here (still pending) or the send comes back."""
        if self.draw(st.booleans()):
            a.pending = True
            return True
        return False

    def instagram(self, a: Attempt, route: Route) -> None:
        outcome = self.choose(
            "not_connected", "deferred", "sent", "window_closed", "failed", "unknown", "retry"
        )
        if outcome == "not_connected":
            a.emit(S.SKIPPED, route)
            return
        if outcome == "deferred":
            if not self.deferred(a):
                self.instagram(a, route)
            return
        a.emit(S.SENDING, route)
        if outcome == "sent":
            a.emit(S.SENT, route)
            self.instagram_receipts(a, route)
        elif outcome == "window_closed":  # 10/2534022: nothing left
            a.emit(S.SKIPPED, route)
        elif outcome == "failed":
            a.emit(S.FAILED, route)
        elif outcome == "unknown":
            a.emit(S.UNKNOWN, route)
            if self.draw(st.booleans()):  # the echo settles it
                a.receipt(S.SENT, route)
        elif not self.deferred(a):  # transient or throttled: the retry topic
            self.instagram(a, route)

    def instagram_receipts(self, a: Attempt, route: Route) -> None:
        if self.draw(st.booleans()):
            a.receipt(S.READ, route)
            if self.draw(st.booleans()):
                a.receipt(S.REPLIED, route)

    def wa_link(self, a: Attempt) -> None:
        if self.draw(st.booleans()):
            a.emit(S.LINK_READY, Route.WA_LINK)
        else:  # an unparseable phone
            a.emit(S.FAILED, Route.WA_LINK)

    def whatsapp(self, a: Attempt, route: Route, *, fallback: bool) -> None:
        plan = self.choose("link", "invalid", "deferred", "send")
        if plan == "link":  # no opt-in or no template outside the window, no number
            self.wa_link(a)
        elif plan == "invalid":
            a.emit(S.FAILED, route)
        elif plan == "deferred":
            if not self.deferred(a):
                self.whatsapp(a, route, fallback=fallback)
        else:
            self.whatsapp_send(a, route, fallback=fallback)

    def whatsapp_send(self, a: Attempt, route: Route, *, fallback: bool) -> None:
        window = route == Route.WA_TEXT and self.draw(st.booleans())
        sent_as = Route.WA_TEXT if window else Route.WA_TEMPLATE
        a.emit(S.SENDING, sent_as)
        outcome = self.choose("accepted", "131047", "unknown", "throttled", "refused")
        if outcome == "131047" and sent_as == Route.WA_TEXT:
            # The window had closed after all: the template rules apply (opt-in or link).
            self.whatsapp(a, Route.WA_TEMPLATE, fallback=True)
        elif outcome == "accepted":
            a.emit(S.SENT, sent_as)
            self.whatsapp_receipts(a, sent_as)
        elif outcome == "unknown":
            a.emit(S.UNKNOWN, route)
            if self.draw(st.booleans()):  # its status webhooks settle it
                self.whatsapp_receipts(a, sent_as, settles=True)
        elif outcome == "throttled":
            if not self.deferred(a):
                self.whatsapp(a, route, fallback=fallback)
        else:
            a.emit(S.FAILED, route)

    def whatsapp_receipts(self, a: Attempt, route: Route, *, settles: bool = False) -> None:
        statuses = self.draw(
            st.lists(st.sampled_from((S.SENT, S.DELIVERED, S.READ, S.FAILED)), max_size=4)
        )
        if settles and S.SENT not in statuses:
            statuses.insert(0, S.SENT)
        for status in statuses:
            a.receipt(status, route)
        if self.draw(st.booleans()):
            a.receipt(S.REPLIED, route)


def arrival_order(data: st.DataObject, attempts: list[Attempt]) -> list[Step]:
    """The attempts' steps in one possible order of arrival at the projection: each
    producer's own steps in order, receipts anywhere after their message's `sending`
    (also after a later attempt began), and a retry after its attempt's last step."""
    stream: list[Step] = []
    late: list[Step] = []
    for a in attempts:
        start = len(stream)
        stream.extend(a.sender)
        for after, step in a.receipts:
            if a is not attempts[-1] and data.draw(st.booleans()):
                late.append(step)  # a webhook that comes after the retry began
                continue
            lo = start + after + 1
            stream.insert(data.draw(st.integers(lo, len(stream))), step)
    return stream + late


def project(stream: list[Step]) -> Lead:
    lead = Lead(
        id=uuid4(),
        creator_id=uuid4(),
        dm_status=S.QUEUED.value,
        dm_attempt=1,
        dm_attempts=0,
        dm_route=None,
    )
    session = _Session()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for i, step in enumerate(stream):
        when = at + timedelta(seconds=i)
        if step.kind == "retry":
            start_attempt(session, lead, uuid4(), when, "creator")  # type: ignore[arg-type]
        elif step.kind == "router":
            lead.dm_route = step.route
            record_transition(
                session,  # type: ignore[arg-type]
                lead,
                step.status,
                attempt=step.attempt,
                event_id=uuid4(),
                occurred_at=when,
                detail={},
            )
        else:
            payload = DmStatusPayload(
                lead_id=lead.id,
                status=step.status,
                attempt=step.attempt,
                route=step.route,
                link="https://wa.me/1" if step.status == S.LINK_READY else None,
            )
            apply_status_event(session, lead, payload, uuid4(), when)  # type: ignore[arg-type]
    return lead


class _Session:
    def add(self, _: Any) -> None:
        """The projection only adds log rows; they are not under test here."""


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_no_path_leaves_a_dm_in_progress_with_nothing_pending(data: st.DataObject) -> None:
    paths = Paths(data)
    attempts = [Attempt(1)]
    paths.route(attempts[0])
    while (
        len(attempts) < 3
        and not attempts[-1].pending
        and attempts[-1].sender
        and attempts[-1].sender[-1].status in RETRYABLE
        and data.draw(st.booleans())
    ):
        attempt = Attempt(attempts[-1].number + 1)
        attempt.emit(S.QUEUED, None, "retry")
        paths.route(attempt)
        attempts.append(attempt)
    last = attempts[-1]

    lead = project(arrival_order(data, attempts))

    assert lead.dm_attempt == last.number
    if not last.pending:
        assert lead.dm_status not in IN_PROGRESS, (lead.dm_status, last)
    ended = last.sender[-1].status if last.sender else None
    if ended == S.LINK_READY and not last.pending:
        # The fallback shows: the lead has its wa.me link to open.
        assert (lead.dm_status, lead.dm_route, lead.dm_link) == (
            S.LINK_READY,
            Route.WA_LINK,
            "https://wa.me/1",
        )
    if lead.dm_status in REACHED:
        assert lead.sent_at is not None


def test_a_fallback_from_free_text_to_the_link_shows() -> None:
    """The case of issue 21: 131047 on free text, no opt-in: the lead ends `link_ready`."""
    lead = project(
        [
            Step(S.SENDING, Route.WA_TEXT, 1),
            Step(S.LINK_READY, Route.WA_LINK, 1),
        ]
    )
    assert (lead.dm_status, lead.dm_route, lead.dm_link) == (
        S.LINK_READY,
        Route.WA_LINK,
        "https://wa.me/1",
    )


def test_a_late_link_never_undoes_a_send_on_the_same_route_or_a_sent_dm() -> None:
    same_route = project(
        [Step(S.SENDING, Route.WA_TEMPLATE, 1), Step(S.LINK_READY, Route.WA_TEMPLATE, 1)]
    )
    assert same_route.dm_status == S.SENDING
    sent = project(
        [
            Step(S.SENDING, Route.WA_TEMPLATE, 1),
            Step(S.SENT, Route.WA_TEMPLATE, 1),
            Step(S.LINK_READY, Route.WA_LINK, 1),
        ]
    )
    assert sent.dm_status == S.SENT


def test_a_read_that_overtakes_the_send_leaves_sent_at_set() -> None:
    """Issue 14: read before sent; the late `sent` gives its earlier time and message id."""
    lead = project([Step(S.SENDING, Route.IG_DM, 1), Step(S.READ, Route.IG_DM, 1)])
    assert lead.dm_status == S.READ
    read_time = lead.sent_at
    assert read_time is not None

    session = _Session()
    earlier = read_time - timedelta(seconds=1)
    late_sent = DmStatusPayload(
        lead_id=lead.id,
        status=S.SENT,
        attempt=1,
        route=Route.IG_DM,
        provider_message_id="m_1",
    )
    assert not apply_status_event(session, lead, late_sent, uuid4(), earlier)  # type: ignore[arg-type]
    assert (lead.dm_status, lead.sent_at, lead.provider_message_id) == (S.READ, earlier, "m_1")
