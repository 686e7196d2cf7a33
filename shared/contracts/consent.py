"""Whose consent a lead's WhatsApp number carries (docs/WEB.md, "WhatsApp consent").

A phone number typed into the public form is nobody's consent: AutoDM sends nothing to it
until its owner writes to the creator's number naming the lead (the short reference the
thank-you page's wa.me link pre-fills), which proves the number and opens the 24 h window.
A lead a creator's or a service's token created is vouched for by that caller, who records
where the opt-in came from. The router and the WhatsApp sender both ask these functions.
"""

from __future__ import annotations

import re
from datetime import datetime

FORM_ORIGIN = "form"  # leads.origin of the public lead form
API_CONSENT = "api"  # the caller's token vouches for the opt-in, no source given
PROVEN_CONSENT = "whatsapp_message"  # the owner wrote, naming the lead

# A lead's ref (secrets.token_urlsafe(12): 16 URL-safe characters) as the wa.me text
# carries it, in brackets: "Hi Ana! (ref Xy3…)". Only the bracketed form counts, so a word
# of 16 letters in someone's message is never taken for one.
_REF = re.compile(r"\((?:ref\s+)?([A-Za-z0-9_-]{16})\)")


def phone_proven(origin: str | None, contact_proven_at: datetime | None) -> bool:
    """Whether messaging the lead's number is allowed at all: vouched for by the caller,
    or proven by its owner writing."""
    return origin != FORM_ORIGIN or contact_proven_at is not None


def template_allowed(
    whatsapp_opt_in: bool, origin: str | None, contact_proven_at: datetime | None
) -> bool:
    """A template (the only message outside the 24 h window) needs an opt-in someone
    answers for."""
    return whatsapp_opt_in and phone_proven(origin, contact_proven_at)


def ref_text(ref: str) -> str:
    """How a lead's ref appears in the wa.me link's pre-filled text."""
    return f"(ref {ref})"


def refs_in(text: str) -> list[str]:
    """The lead refs a WhatsApp message names, first first."""
    return _REF.findall(text or "")
