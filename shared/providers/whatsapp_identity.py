"""Who a WhatsApp webhook item is about (issue 19, Meta's "Business-scoped user IDs").

Meta names every WhatsApp user to a business by a business-scoped user id (BSUID,
`US.13491208655302741918`; a parent BSUID `US.ENT.…` for managed businesses) and, for a
user who adopted a username, may leave the phone number out of every webhook:

- inbound: `contacts[{user_id, wa_id?, parent_user_id?, profile{name, username?}}]` and
  `messages[{from_user_id, from?, …}]`;
- statuses: `statuses[{recipient_user_id, recipient_id?, …}]` with `contacts[]` as above;
- identity changes: a `system` message, `user_changed_user_id` (new BSUID in
  `system.user_id`, the old one in `from_user_id`) or `user_changed_number` (new phone in
  `system.wa_id`, a new BSUID beside it).

Pure functions, so the sandbox conformance test (tests/unit/test_whatsapp_conformance.py)
holds them against an independent parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IDENTITY_CHANGES = frozenset(
    {"user_changed_user_id", "user_changed_number", "customer_changed_number"}
)


@dataclass(frozen=True)
class WaUser:
    """A WhatsApp user as one webhook names them: BSUID first, phone number second."""

    user_id: str | None
    phone: str | None
    username: str | None = None
    parent_user_id: str | None = None

    @property
    def known(self) -> bool:
        return bool(self.user_id or self.phone)

    def as_contact(self) -> dict[str, str]:
        """The `contact` of a webhook event (shared.contracts.events): only what Meta sent."""
        fields = {
            "user_id": self.user_id,
            "wa_id": self.phone,
            "username": self.username,
            "parent_user_id": self.parent_user_id,
        }
        return {k: v for k, v in fields.items() if v}

    @classmethod
    def from_contact(cls, contact: dict[str, Any] | None) -> WaUser:
        contact = contact or {}
        profile = contact.get("profile")
        username = profile.get("username") if isinstance(profile, dict) else None
        return cls(
            user_id=_text(contact.get("user_id")),
            phone=_text(contact.get("wa_id")),
            username=_text(username if username is not None else contact.get("username")),
            parent_user_id=_text(contact.get("parent_user_id")),
        )


@dataclass(frozen=True)
class IdentityChange:
    """The user's BSUID or phone changed: the contact is re-keyed, its history kept."""

    kind: str
    old: WaUser
    new_user_id: str | None
    new_phone: str | None
    new_parent_user_id: str | None = None


def message_user(message: dict[str, Any], contacts: list[dict[str, Any]]) -> WaUser:
    """The sender of an inbound message, completed from its `contacts[]` entry."""
    user_id, phone = _text(message.get("from_user_id")), _text(message.get("from"))
    return _completed(WaUser(user_id, phone), contacts)


def status_user(status: dict[str, Any], contacts: list[dict[str, Any]]) -> WaUser:
    """The recipient of a sent message a status is about."""
    user_id = _text(status.get("recipient_user_id"))
    phone = _text(status.get("recipient_id"))
    return _completed(WaUser(user_id, phone), contacts)


def identity_change(message: dict[str, Any]) -> IdentityChange | None:
    """A system message saying the user's BSUID or phone number changed; else None."""
    system = message.get("system")
    if message.get("type") != "system" or not isinstance(system, dict):
        return None
    kind = str(system.get("type") or "")
    if kind not in IDENTITY_CHANGES:
        return None
    old = WaUser(_text(message.get("from_user_id")), _text(message.get("from")))
    new_phone = _text(system.get("wa_id") or system.get("new_wa_id"))
    return IdentityChange(
        kind=kind,
        old=old,
        new_user_id=_text(system.get("user_id")),
        new_phone=new_phone,
        new_parent_user_id=_text(system.get("parent_user_id")),
    )


def contact_for(item: dict[str, Any], contacts: list[dict[str, Any]], kind: str) -> WaUser:
    """Whom a `status` or `message` item is about."""
    return status_user(item, contacts) if kind == "status" else message_user(item, contacts)


def _completed(user: WaUser, contacts: list[dict[str, Any]]) -> WaUser:
    """The contacts[] entry naming this user (by BSUID, else phone) fills what the item
    itself leaves out; a lone entry is the item's when the item names nobody."""
    entries = [WaUser.from_contact(c) for c in contacts if isinstance(c, dict)]
    match = next(
        (
            e
            for e in entries
            if (user.user_id and e.user_id == user.user_id)
            or (user.phone and e.phone == user.phone)
        ),
        entries[0] if len(entries) == 1 and not user.known else None,
    )
    if match is None:
        return user
    return WaUser(
        user_id=user.user_id or match.user_id,
        phone=user.phone or match.phone,
        username=match.username,
        parent_user_id=match.parent_user_id,
    )


def _same(a: WaUser, b: WaUser) -> bool:
    return bool((a.user_id and a.user_id == b.user_id) or (a.phone and a.phone == b.phone))


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None
