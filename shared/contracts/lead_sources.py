"""Where a lead came from, and the words a creator reads for sources, routes and statuses.

The source is recorded on every lead (Lead.source, the `lead.created` v2 contract, the API,
the pages' filters and the funnel) and picks the creator's message for that source, if they
set one (Creator.source_templates). The public form and Comment to DM set theirs; an API
caller may say `import` or `ig_referral` (a service turning ig.me referrals into leads).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from shared.contracts.lifecycle import Route


class LeadSource(StrEnum):
    FORM = "form"
    API = "api"
    COMMENT = "comment"
    IG_REFERRAL = "ig_referral"
    IMPORT = "import"


# What an API caller may declare (the form and Comment to DM are AutoDM's own to say).
CALLER_SOURCES = (LeadSource.API, LeadSource.IMPORT, LeadSource.IG_REFERRAL)

SOURCE_LABELS: dict[str, str] = {
    LeadSource.FORM: "Lead form",
    LeadSource.API: "API",
    LeadSource.COMMENT: "Comment to DM",
    LeadSource.IG_REFERRAL: "ig.me referral",
    LeadSource.IMPORT: "Import",
}

ROUTE_LABELS: dict[str, str] = {
    Route.IG_DM: "Instagram DM",
    Route.IG_PRIVATE_REPLY: "Reply to their comment",
    Route.IG_LINK: "Instagram link",
    Route.WA_TEMPLATE: "WhatsApp template",
    Route.WA_TEXT: "WhatsApp message",
    Route.WA_LINK: "WhatsApp link",
    Route.NONE: "No route",
}


def source_of(origin: str | None, declared: str | None) -> LeadSource:
    """A new lead's source: the form says it itself, else the caller's word (AutoDM's own
    Comment to DM says `comment`), an API lead by default."""
    if origin == LeadSource.FORM:
        return LeadSource.FORM
    return LeadSource(declared) if declared in set(LeadSource) else LeadSource.API


def template_for(default: str, per_source: Mapping[str, str] | None, source: str | None) -> str:
    """The creator's message for a lead of `source`: its own if they set one, else the main."""
    own = (per_source or {}).get(source or "")
    return own or default
