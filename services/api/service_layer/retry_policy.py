"""When a creator may retry a DM: only if it ended without reaching the person, for a cause
that can have changed since. Pure, so every rule is unit-tested without a database.

A retry never risks a second message: `unknown` (it may have arrived) and anything that
reached the person are refused, and the sender's send intent enforces the same below us.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.api.service_layer.message_text import TOO_LONG
from shared.contracts.lifecycle import DmStatus, Route

IN_PROGRESS = frozenset({DmStatus.QUEUED, DmStatus.SENDING})
WAITING = frozenset({DmStatus.AWAITING_CONTACT, DmStatus.LINK_READY})
DONE = frozenset({DmStatus.SENT, DmStatus.DELIVERED, DmStatus.READ, DmStatus.REPLIED})


@dataclass(frozen=True)
class RetryFacts:
    status: DmStatus
    error_class: str | None
    reached_person: bool
    # The account the failed attempt used is connected (again) now.
    account_connected: bool
    # The lead wrote to the account after the failure: the 24 h window is open again.
    contacted_since_failure: bool
    route_now: Route
    route_reason: str


@dataclass(frozen=True)
class RetryVerdict:
    allowed: bool
    detail: str


def refuse(detail: str) -> RetryVerdict:
    return RetryVerdict(False, detail)


def retry_verdict(f: RetryFacts) -> RetryVerdict:
    blocked = status_block(f.status)
    if blocked is not None:
        return blocked
    if f.reached_person:
        return refuse("the message already reached the person: one DM per lead")
    if f.route_now == Route.NONE:
        return refuse(f"no route is available now ({f.route_reason})")
    if f.status == DmStatus.SKIPPED:
        return RetryVerdict(True, f"a route is available now: {f.route_now}")
    return _failure_verdict(f)


def status_block(status: DmStatus) -> RetryVerdict | None:
    """The verdict the status alone decides (none for a DM that ended without reaching the
    person), so a caller need not read the other facts for it."""
    if status == DmStatus.UNKNOWN:
        return refuse("the DM may have reached the person; it is reconciled, never resent")
    if status in DONE:
        return refuse("the DM was already sent")
    if status in IN_PROGRESS:
        return refuse("the DM is still on its way")
    if status in WAITING:
        return refuse("the DM is waiting for the lead to open the link; nothing failed")
    return None


def _failure_verdict(f: RetryFacts) -> RetryVerdict:
    if f.error_class == "token":
        if f.account_connected:
            return RetryVerdict(True, "the account has been reconnected since")
        return refuse("the Instagram connection expired: reconnect the account first")
    if f.error_class == "recipient":
        if f.contacted_since_failure:
            return RetryVerdict(True, "the lead has written since: the window is open")
        return refuse("Instagram allows no message to this person until they write first")
    if f.error_class in ("throttled", "transient"):
        return RetryVerdict(True, "the provider was unavailable; a new attempt may succeed")
    if f.error_class == TOO_LONG:
        return RetryVerdict(True, "the message is written again from your current template")
    if f.error_class == "invalid":
        return refuse("the provider rejected the message as invalid; it would fail again")
    return refuse("this failure is permanent")
