"""Links that go through AutoDM: `/l/<ref>` counts the click, then redirects to the lead's
ig.me or wa.me link (services/api/http/web/links.py), so a link route has a click-through rate.

The ref is the lead's own unguessable `ref` (96 random bits). The redirect's target is the
link the router or the WhatsApp sender stored on the lead, never anything from the
request, and only an https link to ig.me or wa.me is followed: no open redirect.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.contracts.lifecycle import Route
from shared.db.models import Lead
from shared.platform.settings import get_settings

LINK_PREFIX = "/l/"
LINK_ROUTES = frozenset({Route.IG_LINK, Route.WA_LINK})
ALLOWED_HOSTS = frozenset({"ig.me", "wa.me"})


def tracked_path(lead: Lead) -> str | None:
    """`/l/<ref>` for a lead whose DM waits on a link (ig.me or wa.me), else None."""
    if lead.dm_link and lead.dm_route in LINK_ROUTES:
        return f"{LINK_PREFIX}{lead.ref}"
    return None


def tracked_link(lead: Lead, base_url: str | None = None) -> str | None:
    """The absolute tracked link (to share, copy or print as a QR code), or None."""
    path = tracked_path(lead)
    if path is None:
        return None
    return f"{(base_url or get_settings().public_base_url).rstrip('/')}{path}"


def safe_target(link: str | None) -> str | None:
    """`link` if it is an https link to ig.me or wa.me, else None (never redirect elsewhere)."""
    if not link:
        return None
    parts = urlsplit(link)
    if parts.scheme != "https" or parts.hostname not in ALLOWED_HOSTS or parts.username:
        return None
    if parts.port is not None:
        return None
    return link


def link_route(link: str) -> Route:
    """The route a link stands for (the funnel counts its opens under it)."""
    return Route.WA_LINK if urlsplit(link).hostname == "wa.me" else Route.IG_LINK
