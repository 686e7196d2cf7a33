"""wa.me click-to-chat links (platform facts §4a): digits in international format, no '+',
no trunk zero, text URL-encoded. Nothing is sent: the lead taps send in WhatsApp."""

from __future__ import annotations

from urllib.parse import quote

import phonenumbers


class InvalidPhoneNumber(ValueError):
    """A number phonenumbers cannot parse or validate; the message says which and why."""


def normalize_e164_digits(raw: str, default_region: str | None = None) -> str:
    """'+44 20 7946 0958' -> '442079460958'; raises InvalidPhoneNumber with the reason."""
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"cannot parse phone number {raw!r}: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def wa_me_link(phone: str, text: str, max_text_chars: int = 500) -> str:
    digits = normalize_e164_digits(phone)
    text = text[:max_text_chars]
    return (
        f"https://wa.me/{digits}?text={quote(text, safe='')}" if text else f"https://wa.me/{digits}"
    )
