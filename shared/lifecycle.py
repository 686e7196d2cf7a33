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
# after accepting) but never "read"; "skipped" ends a DM that never left.
STATUS_RANK: dict[DmStatus, int] = {
    DmStatus.QUEUED: 0,
    DmStatus.AWAITING_CONTACT: 10,
    DmStatus.LINK_READY: 10,
    DmStatus.SKIPPED: 15,
    DmStatus.SENDING: 20,
    DmStatus.UNKNOWN: 25,
    DmStatus.SENT: 30,
    DmStatus.FAILED: 35,
    DmStatus.DELIVERED: 40,
    DmStatus.READ: 50,
    DmStatus.REPLIED: 60,
}


def is_forward(current: DmStatus, current_attempt: int, new: DmStatus, new_attempt: int) -> bool:
    """Whether a status event may replace the current one.

    A later attempt starts over (a retry), an older attempt is history; within one attempt
    only a strictly higher rank moves the DM on.
    """
    if new_attempt != current_attempt:
        return new_attempt > current_attempt
    return STATUS_RANK[new] > STATUS_RANK[current]
