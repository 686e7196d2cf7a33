"""The public lead form's fields: checked one by one with a message a visitor can act on,
then turned into the JSON API's LeadIn (so the same rules apply to both)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from pydantic import ValidationError

from services.api.http.schemas import META_TEXT_MAX_BYTES, InstagramIn, LeadIn
from shared.providers.whatsapp_links import InvalidPhoneNumber, normalize_e164_digits

HANDLE = re.compile(r"^[A-Za-z0-9._]{1,30}$")
PHONE_CHARS = re.compile(r"^\+?[0-9 ()./-]{6,32}$")
NAME_MAX = 200
# Every field the form has; anything else in the body is ignored.
FIELDS = ("name", "instagram", "phone", "whatsapp_opt_in", "message")
NO_CONTACT = "Give your Instagram handle or a phone number, so we can reach you."


@dataclass(frozen=True)
class FormValues:
    name: str = ""
    instagram: str = ""
    phone: str = ""
    whatsapp_opt_in: bool = False
    message: str = ""

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> FormValues:
        handle = form.get("instagram", "").strip().removeprefix("@")
        return cls(
            name=form.get("name", "").strip(),
            instagram=handle,
            phone=form.get("phone", "").strip(),
            whatsapp_opt_in=form.get("whatsapp_opt_in") in ("on", "true", "1", "yes"),
            message=form.get("message", "").strip(),
        )


def field_errors(v: FormValues) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not v.name:
        errors["name"] = "Tell us your name."
    elif len(v.name) > NAME_MAX:
        errors["name"] = f"Use at most {NAME_MAX} characters."
    if v.instagram and not HANDLE.match(v.instagram):
        errors["instagram"] = "An Instagram handle has up to 30 letters, digits, dots or _."
    if v.phone:
        phone_error = _phone_error(v.phone)
        if phone_error:
            errors["phone"] = phone_error
    if v.whatsapp_opt_in and not v.phone:
        errors["whatsapp_opt_in"] = "Add a phone number to be contacted on WhatsApp."
    if len(v.message.encode()) > META_TEXT_MAX_BYTES:
        errors["message"] = (
            f"Keep the message under {META_TEXT_MAX_BYTES} bytes (about as many letters)."
        )
    if not v.instagram and not v.phone:
        errors.setdefault("instagram", NO_CONTACT)
    return errors


def _phone_error(phone: str) -> str | None:
    if not PHONE_CHARS.match(phone):
        return "Use digits with an optional + and country code, e.g. +44 20 7946 0958."
    try:
        normalize_e164_digits(phone)
    except InvalidPhoneNumber:
        return "This is not a valid phone number. Include the country code, e.g. +44."
    return None


def to_lead(v: FormValues, creator_id: UUID) -> tuple[LeadIn | None, dict[str, str]]:
    """The lead to store, or the errors to show (nothing is stored then)."""
    errors = field_errors(v)
    if errors:
        return None, errors
    try:
        lead = LeadIn(
            creator_id=creator_id,
            name=v.name,
            message=v.message,
            phone=v.phone or None,
            whatsapp_opt_in=v.whatsapp_opt_in,
            instagram=InstagramIn(username=v.instagram) if v.instagram else None,
        )
    except ValidationError as exc:  # a rule of the API the checks above don't know yet
        return None, {_form_field(e["loc"]): e["msg"] for e in exc.errors()}
    return lead, {}


def _form_field(loc: tuple[int | str, ...]) -> str:
    first = str(loc[0]) if loc else "name"
    return "instagram" if first == "instagram" else (first if first in FIELDS else "name")
