"""What the creator can do about a DM that waits, was skipped or failed, offered where they
look (the lead's page, the leads list): share the lead's link (copy it, or show its QR code)
while it waits for the lead to open it, message them on WhatsApp, reconnect Instagram, or
retry. The links are AutoDM's tracked ones (/l/<ref>), so every open counts in the funnel.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import segno
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.service_layer.tracked_links import tracked_link
from shared.contracts.lifecycle import DmStatus, Route
from shared.db.models import Lead, SocialAccount
from shared.delivery import reasons as dm_reasons

# The reasons that mean Instagram must be connected (again) before anything goes out.
RECONNECT_REASONS = frozenset(
    {
        dm_reasons.ACCESS_EXPIRED,
        dm_reasons.ACCESS_REFUSED,
        dm_reasons.CREATOR_DISCONNECTED,
        dm_reasons.DEAUTHORIZED,
        dm_reasons.DATA_DELETED,
        dm_reasons.NOT_CONNECTED,
    }
)
RECONNECT_URL = "/app/instagram"
STUCK = frozenset({DmStatus.SKIPPED, DmStatus.FAILED, DmStatus.UNKNOWN})


@dataclass(frozen=True)
class NextStep:
    kind: str  # share_link | whatsapp_link | reconnect | retry | none
    text: str
    link: str | None = None  # the tracked link to copy, open or scan
    action_url: str | None = None  # where the offered action is (reconnect)

    def qr_svg(self) -> Markup:
        """The link as a QR code, inline SVG (no image request; the page's CSP allows it)."""
        if self.link is None:
            return Markup("")
        code = segno.make(self.link, error="m")
        svg = code.svg_inline(scale=4, border=2, dark="#111", light="#fff", svgclass="qr")
        svg = svg.replace("<svg ", '<svg role="img" aria-label="QR code of the link" ', 1)
        # Safe as markup: segno writes only sizes and path data, no text of the link.
        return Markup(svg)  # noqa: S704


def next_step(
    lead: Lead, *, retry_allowed: bool, instagram_connected: bool, base_url: str | None = None
) -> NextStep:
    """The one thing the creator can do now for this lead's DM, in words, with the action."""
    status = DmStatus(lead.dm_status)
    link = tracked_link(lead, base_url)
    if status == DmStatus.AWAITING_CONTACT and link:
        if lead.comment_id:
            text = (
                "Instagram allows one reply per comment, and this comment's was used. Send "
                "them this link (or let them scan the code): your DM goes out as soon as "
                "they open it."
            )
        else:
            text = (
                "Instagram does not allow the first message to them. Share this link (or "
                "let them scan the code): your DM goes out as soon as they open it."
            )
        return NextStep("share_link", text, link)
    if status == DmStatus.LINK_READY and lead.dm_route == Route.WA_LINK and link:
        text = "Message them on WhatsApp yourself: the link opens a chat with your message."
        return NextStep("whatsapp_link", text, link)
    if status not in STUCK:
        return NextStep("none", "")
    if lead.dm_reason in RECONNECT_REASONS or (
        lead.dm_provider == "instagram" and not instagram_connected
    ):
        text = "Reconnect Instagram, then retry this DM."
        return NextStep("reconnect", text, action_url=RECONNECT_URL)
    if retry_allowed:
        return NextStep("retry", "Try again: a new attempt starts now.")
    return NextStep("none", "")


async def instagram_connected(session: AsyncSession, creator_id: UUID | None) -> bool:
    """Whether the creator has an Instagram account AutoDM can send from now."""
    found = await session.scalar(
        select(SocialAccount.id)
        .where(
            SocialAccount.creator_id == creator_id,
            SocialAccount.provider == "instagram",
            SocialAccount.status == "connected",
        )
        .limit(1)
    )
    return found is not None
