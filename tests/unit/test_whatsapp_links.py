from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from shared.providers.whatsapp_links import InvalidPhoneNumber, normalize_e164_digits, wa_me_link


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("+44 20 7946 0958", "442079460958"),
        ("+1 (650) 555-1234", "16505551234"),
        ("+49 030 901820", "4930901820"),  # trunk zero dropped
    ],
)
def test_numbers_are_normalised_to_international_digits(raw: str, digits: str) -> None:
    assert normalize_e164_digits(raw) == digits


@pytest.mark.parametrize("raw", ["hello", "+1 555", "0044", ""])
def test_unparseable_numbers_are_a_clear_error(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match="phone number"):
        normalize_e164_digits(raw)


def test_link_carries_url_encoded_text() -> None:
    link = wa_me_link("+44 20 7946 0958", "Hi Jane & co? 👋")
    parsed = urlparse(link)
    assert (parsed.scheme, parsed.netloc, parsed.path) == ("https", "wa.me", "/442079460958")
    assert parse_qs(parsed.query)["text"] == ["Hi Jane & co? 👋"]


def test_link_text_is_capped() -> None:
    link = wa_me_link("+442079460958", "x" * 5000, max_text_chars=100)
    assert parse_qs(urlparse(link).query)["text"] == ["x" * 100]
