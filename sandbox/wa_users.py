"""WhatsApp users as Meta names them to a business since usernames (issue 19).

Every user has a business-scoped user id (BSUID, `US.13491208655302741918`); a user who
adopted a username may hide their phone number: every webhook about them then carries the
BSUID alone (`from_user_id`, `recipient_user_id`, `contacts[].user_id`). Which users do is
the `whatsapp_username_share` setting (or the control API's `hide_phone` for one user).

Also here: when each status of an accepted message comes (`whatsapp_status_*` settings:
spacing with jitter, an occasional `delivered` missing or after `read`), unless a test
fixed the order through PUT /_sandbox/whatsapp/status_order.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.settings import SandboxSettings

if TYPE_CHECKING:
    from sandbox.state import StatusOrder


@dataclass
class WaUser:
    user_id: str
    phone: str | None  # None: known by BSUID alone (created through `recipient`)
    username: str | None = None
    hides_phone: bool = False
    parent_user_id: str | None = None

    @property
    def shown_phone(self) -> str | None:
        """The phone as webhooks show it: never for a user who hides it."""
        return None if self.hides_phone else self.phone

    def contact(self, name: str | None = None) -> dict[str, Any]:
        """The `contacts[]` entry of a webhook about this user."""
        profile: dict[str, Any] = {}
        if name:
            profile["name"] = name
        if self.username:
            profile["username"] = self.username
        entry: dict[str, Any] = {"profile": profile, "user_id": self.user_id}
        if self.shown_phone:
            entry["wa_id"] = self.shown_phone
        if self.parent_user_id:
            entry["parent_user_id"] = self.parent_user_id
        return entry


class WaUsers:
    """The registry: by BSUID and by phone number."""

    def __init__(self) -> None:
        self.by_user_id: dict[str, WaUser] = {}
        self.by_phone: dict[str, str] = {}

    def for_phone(
        self,
        settings: SandboxSettings,
        phone: str,
        *,
        hide_phone: bool | None = None,
        username: str | None = None,
    ) -> WaUser:
        """The user of this number, created on first sight (a BSUID is assigned to every
        WhatsApp user, username or not)."""
        known = self.by_phone.get(phone)
        if known is not None:
            user = self.by_user_id[known]
        else:
            hides = random.random() < settings.whatsapp_username_share
            user = WaUser(new_user_id(phone), phone, hides_phone=hides)
            if hides:
                user.username = f"user{phone[-4:]}.{secrets.token_hex(2)}"
            self.add(user)
        if hide_phone is not None:
            user.hides_phone = hide_phone
        if username:
            user.username = username
        if user.hides_phone and not user.username:
            user.username = f"user{phone[-4:]}"
        return user

    def add(self, user: WaUser) -> None:
        self.by_user_id[user.user_id] = user
        if user.phone:
            self.by_phone[user.phone] = user.user_id

    def change_user_id(self, user: WaUser, new_user_id: str | None = None) -> str:
        """The user's BSUID changes (Meta: `user_changed_user_id`): the old one is gone."""
        old = user.user_id
        del self.by_user_id[old]
        user.user_id = new_user_id or new_user_id_like(old)
        self.add(user)
        return old


def new_user_id(phone: str | None = None) -> str:
    """A BSUID: the country's ISO code, a dot, digits (only +1 and +44 are told apart)."""
    country = "GB" if (phone or "").startswith("44") else "US"
    return f"{country}.{secrets.randbelow(10**20):020d}"


def new_user_id_like(old: str) -> str:
    return f"{old.split('.')[0]}.{secrets.randbelow(10**20):020d}"


def status_plan(
    settings: SandboxSettings, order: StatusOrder, failure: bool
) -> list[tuple[str, float]]:
    """Which statuses come, each with its delay after the previous one (seconds). An order
    a test set is played exactly; the default one like Meta: spaced, and now and then
    without `delivered` (read implies it) or with `delivered` after `read`."""
    if failure:
        return [("failed", _delay(settings, order))]
    if order.explicit:
        return [(status, order.delay_ms / 1000) for status in order.order]
    statuses = list(order.order)
    roll = random.random()
    if "delivered" in statuses and "read" in statuses:
        if roll < settings.whatsapp_missing_delivered_share:
            statuses.remove("delivered")
        elif (
            roll < settings.whatsapp_missing_delivered_share + settings.whatsapp_out_of_order_share
        ):
            i, j = statuses.index("delivered"), statuses.index("read")
            statuses[i], statuses[j] = statuses[j], statuses[i]
    return [(status, _delay(settings, order)) for status in statuses]


def _delay(settings: SandboxSettings, order: StatusOrder) -> float:
    base = order.delay_ms or settings.whatsapp_status_delay_ms
    jitter = random.uniform(0, settings.whatsapp_status_jitter_ms)
    return (base + jitter) / 1000
