"""The DM vocabulary every service shares: providers, routes, statuses and their order."""

from __future__ import annotations

from enum import StrEnum


class Provider(StrEnum):
    INSTAGRAM = "instagram"
    WHATSAPP = "whatsapp"


class Route(StrEnum):
    IG_DM = "ig_dm"
    IG_PRIVATE_REPLY = "ig_private_reply"
    IG_LINK = "ig_link"
    WA_TEMPLATE = "wa_template"
    WA_TEXT = "wa_text"
    WA_LINK = "wa_link"
    NONE = "none"

    @property
    def provider(self) -> Provider | None:
        if self.value.startswith("ig_"):
            return Provider.INSTAGRAM
        if self.value.startswith("wa_"):
            return Provider.WHATSAPP
        return None


class DmStatus(StrEnum):
    QUEUED = "queued"
    AWAITING_CONTACT = "awaiting_contact"
    LINK_READY = "link_ready"
    SKIPPED = "skipped"
    SENDING = "sending"
    UNKNOWN = "unknown"
    SENT = "sent"
    FAILED = "failed"
    DELIVERED = "delivered"
    READ = "read"
    REPLIED = "replied"


# Rank decides, not arrival order: a late "sent" must never overwrite "read". Side states
# sit where they can really occur: "failed" may follow "sent" (WhatsApp reports undeliverable
# after accepting) but never "read"; "skipped" ends a DM that never left, also when Meta
# refused the send it was `sending` (Instagram's closed window), so it ranks above `sending`.
STATUS_RANK: dict[DmStatus, int] = {
    DmStatus.QUEUED: 0,
    DmStatus.AWAITING_CONTACT: 10,
    DmStatus.LINK_READY: 10,
    DmStatus.SENDING: 20,
    DmStatus.SKIPPED: 22,
    DmStatus.UNKNOWN: 25,
    DmStatus.SENT: 30,
    DmStatus.FAILED: 35,
    DmStatus.DELIVERED: 40,
    DmStatus.READ: 50,
    DmStatus.REPLIED: 60,
}

# What a re-route may show after `sending` on another route of the same attempt: the sender
# could not send on the route it tried (WhatsApp 131047: the window had closed) and fell
# back to a template (`sending` again) or to the wa.me link (`link_ready`); an Instagram
# fallback to the ig.me link would wait for the lead (`awaiting_contact`).
REROUTE_STATUSES = frozenset({DmStatus.SENDING, DmStatus.LINK_READY, DmStatus.AWAITING_CONTACT})
# Not final: the DM still needs the system to act (a send to decide or to finish).
IN_PROGRESS_STATUSES = frozenset({DmStatus.QUEUED, DmStatus.SENDING})


def is_reroute(
    current: DmStatus, current_route: str | None, new: DmStatus, new_route: str | None
) -> bool:
    """A fallback within an attempt: the DM was `sending` on one route and now shows the
    step of another (its next send, or the link the lead must open)."""
    return (
        current == DmStatus.SENDING
        and new in REROUTE_STATUSES
        and current_route is not None
        and new_route is not None
        and new_route != current_route
    )


def is_forward(
    current: DmStatus,
    current_attempt: int,
    new: DmStatus,
    new_attempt: int,
    *,
    current_route: str | None = None,
    new_route: str | None = None,
) -> bool:
    """Whether a status event may replace the current one.

    A later attempt starts over (a retry), an older attempt is history; within one attempt
    only a strictly higher rank moves the DM on, or a re-route away from `sending`
    (`is_reroute`; the routes are only known to the projection, which passes them).
    """
    if new_attempt != current_attempt:
        return new_attempt > current_attempt
    if STATUS_RANK[new] > STATUS_RANK[current]:
        return True
    return is_reroute(current, current_route, new, new_route)
