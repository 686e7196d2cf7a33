"""Which route a lead's DM may take, by the platforms' rules (platform facts §1b, §1e, §4, §6).

Pure functions over plain facts so the rules are unit-tested without Kafka or a database.
Instagram never gets a cold DM and never a DM by username: only an IGSID inside the 24 h
window, or one private reply to a comment younger than 7 days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.contracts.lifecycle import Provider, Route


@dataclass(frozen=True)
class LeadFacts:
    has_instagram_handle: bool
    igsid: str | None
    last_inbound_at: datetime | None
    comment_id: str | None
    commented_at: datetime | None
    private_reply_sent: bool
    phone: str | None
    whatsapp_opt_in: bool
    # The lead wrote to the creator's WhatsApp number within 24 h (customer-service window).
    whatsapp_window_open: bool = False
    # The phone may be messaged at all: vouched for by the caller's token, or its owner
    # wrote naming the lead (a number typed into the public form is not: shared.contracts.consent).
    phone_proven: bool = True
    # A public-form lead whose phone or handle got a DM from this creator recently: a form
    # saying so does not message them again (docs/WEB.md, "Form limits").
    recently_messaged: bool = False
    # The BSUID that wrote naming the lead (a username user may show no phone): WhatsApp
    # sends reach it by `recipient`; a wa.me link still needs a phone (issue 19).
    whatsapp_user_id: str | None = None

    @property
    def whatsapp_reachable(self) -> bool:
        return bool(self.phone or self.whatsapp_user_id)


@dataclass(frozen=True)
class CreatorChannels:
    instagram_connected: bool
    whatsapp_template_ready: bool = False
    whatsapp_connected: bool = False


@dataclass(frozen=True)
class RoutingRules:
    dm_window: timedelta = timedelta(hours=24)
    private_reply_window: timedelta = timedelta(days=7)
    whatsapp_window: timedelta = timedelta(hours=24)
    # A public form does not message someone the creator messaged this recently (0: off).
    form_recipient_cooldown: timedelta = timedelta(hours=24)


class RouteOrder(StrEnum):
    """A creator's preference (the settings page): which provider's routes come first.
    Within a provider the order stays most direct first; link routes stay last."""

    INSTAGRAM_FIRST = "instagram_first"
    WHATSAPP_FIRST = "whatsapp_first"


RECENTLY_MESSAGED = "this person got a DM from the creator recently: not messaged again"


@dataclass(frozen=True)
class RouteDecision:
    route: Route
    reason: str


def choose_route(
    lead: LeadFacts,
    channels: CreatorChannels,
    now: datetime,
    rules: RoutingRules,
    provider: Provider | None = None,
    order: RouteOrder = RouteOrder.INSTAGRAM_FIRST,
) -> RouteDecision:
    """The first allowed route, most direct first; only `provider`'s routes if one is named."""
    if lead.recently_messaged:
        return RouteDecision(Route.NONE, RECENTLY_MESSAGED)
    for check in _CHECKS[order]:
        decision = check(lead, channels, now, rules)
        if decision is not None and provider in (None, decision.route.provider):
            return decision
    if provider is not None:
        return RouteDecision(Route.NONE, f"no allowed {provider} route for this lead")
    return RouteDecision(Route.NONE, "no allowed route: no Instagram connection and no phone")


def _ig_dm(
    lead: LeadFacts, ch: CreatorChannels, now: datetime, rules: RoutingRules
) -> RouteDecision | None:
    if not (ch.instagram_connected and lead.igsid and lead.last_inbound_at):
        return None
    if now - lead.last_inbound_at >= rules.dm_window:
        return None
    return RouteDecision(Route.IG_DM, "the lead messaged the account within 24 h")


def _ig_private_reply(
    lead: LeadFacts, ch: CreatorChannels, now: datetime, rules: RoutingRules
) -> RouteDecision | None:
    if not (ch.instagram_connected and lead.comment_id and lead.commented_at):
        return None
    if lead.private_reply_sent or now - lead.commented_at >= rules.private_reply_window:
        return None
    return RouteDecision(Route.IG_PRIVATE_REPLY, "the lead commented within 7 days")


def _wa_text(
    lead: LeadFacts, ch: CreatorChannels, now: datetime, rules: RoutingRules
) -> RouteDecision | None:
    # Inside the window the lead is waiting for an answer: free-form text, no template.
    reachable = lead.whatsapp_reachable and lead.phone_proven
    if reachable and ch.whatsapp_connected and lead.whatsapp_window_open:
        return RouteDecision(Route.WA_TEXT, "the lead wrote on WhatsApp within 24 h")
    return None


def _wa_template(
    lead: LeadFacts, ch: CreatorChannels, now: datetime, rules: RoutingRules
) -> RouteDecision | None:
    reachable = lead.whatsapp_reachable and lead.phone_proven
    if reachable and lead.whatsapp_opt_in and ch.whatsapp_template_ready:
        return RouteDecision(Route.WA_TEMPLATE, "the lead opted in to WhatsApp")
    return None


def _ig_link(
    lead: LeadFacts, ch: CreatorChannels, now: datetime, rules: RoutingRules
) -> RouteDecision | None:
    # A lead who gave an Instagram handle (or nothing better) is asked to open the thread;
    # that first message of theirs opens the 24 h window.
    no_whatsapp = not lead.whatsapp_reachable
    if ch.instagram_connected and (lead.has_instagram_handle or lead.igsid or no_whatsapp):
        return RouteDecision(Route.IG_LINK, "no open Instagram window: waiting for the lead")
    return None


def _wa_link(
    lead: LeadFacts, ch: CreatorChannels, now: datetime, rules: RoutingRules
) -> RouteDecision | None:
    if lead.phone:
        return RouteDecision(Route.WA_LINK, "phone only: a WhatsApp click-to-chat link")
    return None


Check = Callable[[LeadFacts, CreatorChannels, datetime, RoutingRules], RouteDecision | None]
_CHECKS: dict[RouteOrder, tuple[Check, ...]] = {
    RouteOrder.INSTAGRAM_FIRST: (
        _ig_dm,
        _ig_private_reply,
        _wa_text,
        _wa_template,
        _ig_link,
        _wa_link,
    ),
    RouteOrder.WHATSAPP_FIRST: (
        _wa_text,
        _wa_template,
        _ig_dm,
        _ig_private_reply,
        _wa_link,
        _ig_link,
    ),
}
