"""A DM's text: the creator's template filled with the lead's values, and the platforms' limits.

Pure, so the API (checking a template on save), the settings page (its preview) and the
router (rendering each DM) apply one rule. Substitution is one pass over the template: a
lead's own values are never expanded again, so a name containing `{message}` stays a name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.contracts.lifecycle import Route

# What a template may name, and what each stands for (the settings page lists them).
PLACEHOLDERS: dict[str, str] = {
    "name": "the lead's name",
    "message": "what the lead wrote",
}
DEFAULT_TEMPLATE = "Hi {name}!"
TOO_LONG = "too_long"  # the error class of a DM over its platform's limit
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Instagram: "Message text must be UTF-8 and be 1,000 bytes or less" (platform facts §1).
INSTAGRAM_TEXT_MAX_BYTES = 1000
# WhatsApp Cloud API: a text message's body is at most 4,096 characters.
WHATSAPP_TEXT_MAX_CHARS = 4096


def unknown_placeholders(template: str) -> list[str]:
    """The `{names}` in `template` that are not placeholders, in order of appearance."""
    seen: dict[str, None] = {}
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) not in PLACEHOLDERS:
            seen.setdefault(match.group(0))
    return list(seen)


def placeholder_problem(template: str) -> str | None:
    """What a creator must fix in `template`'s placeholders, if anything (naming the ones
    that exist): an unknown one would reach every lead literally."""
    unknown = unknown_placeholders(template)
    if not unknown:
        return None
    known = " and ".join(f"{{{name}}} ({what})" for name, what in PLACEHOLDERS.items())
    noun = "placeholder" if len(unknown) == 1 else "placeholders"
    return f"unknown {noun} {', '.join(unknown)}: the placeholders are {known}"


def render(template: str, values: Mapping[str, str]) -> str:
    """`template` with each known placeholder replaced by its value, in a single pass."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return values.get(name, "") if name in PLACEHOLDERS else match.group(0)

    return _PLACEHOLDER.sub(value, template or DEFAULT_TEMPLATE)


@dataclass(frozen=True)
class TooLong:
    """Why a rendered DM cannot go out as it is (the creator reads `reason`)."""

    size: int
    limit: int
    unit: str
    platform: str

    @property
    def reason(self) -> str:
        return (
            f"The message would be {self.size:,} {self.unit} long once the lead's name and "
            f"message are filled in; {self.platform} allows {self.limit:,}. Shorten your "
            "message template in Settings, then retry."
        )


def too_long(text: str, route: Route) -> TooLong | None:
    """How `text` breaks the limit of the platform that would carry it on `route`, if it does.

    An ig.me link (`ig_link`) is checked too: the DM it waits for goes out on Instagram."""
    if route in (Route.IG_DM, Route.IG_PRIVATE_REPLY, Route.IG_LINK):
        size = len(text.encode())
        if size > INSTAGRAM_TEXT_MAX_BYTES:
            return TooLong(size, INSTAGRAM_TEXT_MAX_BYTES, "bytes", "Instagram")
    if route == Route.WA_TEXT and len(text) > WHATSAPP_TEXT_MAX_CHARS:
        return TooLong(len(text), WHATSAPP_TEXT_MAX_CHARS, "characters", "WhatsApp")
    return None
