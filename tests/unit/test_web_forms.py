"""The public lead form's checks, its abuse limits, and the web pages' tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from pydantic import SecretStr

from services.api.http.web.form_limits import estimate, window_start
from services.api.http.web.lead_form_fields import NO_CONTACT, FormValues, to_lead
from services.api.http.web.security import WebSecurity
from tests.settings import AllSettings


def _values(**form: str) -> FormValues:
    return FormValues.from_form(form)


def test_a_good_form_becomes_the_api_lead() -> None:
    creator = uuid4()
    lead, errors = to_lead(
        _values(
            name=" Jane ",
            instagram="@jane.doe",
            phone="+44 20 7946 0958",
            whatsapp_opt_in="on",
            message="hi",
        ),
        creator,
    )
    assert errors == {}
    assert lead is not None
    assert (lead.creator_id, lead.name, lead.phone, lead.whatsapp_opt_in) == (
        creator,
        "Jane",
        "+44 20 7946 0958",
        True,
    )
    assert lead.instagram is not None and lead.instagram.username == "jane.doe"


def test_each_bad_field_gets_its_own_message() -> None:
    lead, errors = to_lead(
        _values(instagram="no spaces!", phone="+999 123", message="x" * 1001), uuid4()
    )
    assert lead is None
    assert set(errors) == {"name", "instagram", "phone", "message"}
    assert "valid phone number" in errors["phone"]


def test_a_lead_needs_a_way_to_be_reached_and_opt_in_needs_a_phone() -> None:
    _, errors = to_lead(_values(name="Jo", whatsapp_opt_in="on"), uuid4())
    assert errors == {
        "instagram": NO_CONTACT,
        "whatsapp_opt_in": "Add a phone number to be contacted on WhatsApp.",
    }


def test_message_limit_counts_bytes_like_meta() -> None:
    _, errors = to_lead(_values(name="Jo", instagram="jo", message="😀" * 251), uuid4())
    assert set(errors) == {"message"}


def test_the_last_minute_is_estimated_from_two_fixed_windows() -> None:
    assert estimate(previous=10, current=2, elapsed=0.0) == 12  # the whole previous minute
    assert estimate(previous=10, current=2, elapsed=0.75) == 4.5  # a quarter of it remains
    assert estimate(previous=0, current=0, elapsed=0.5) == 0


def test_windows_start_on_the_minute() -> None:
    now = datetime(2026, 11, 28, 13, 37, 42, 500_000, tzinfo=UTC)
    assert window_start(now) == datetime(2026, 11, 28, 13, 37, tzinfo=UTC)


def _security(ttl: int = 60) -> WebSecurity:
    settings = AllSettings(web_csrf_key=SecretStr("k1"), lead_form_token_ttl_s=ttl)
    return WebSecurity.from_settings(settings)


def test_form_token_is_bound_to_the_creator_and_expires() -> None:
    security = _security(ttl=60)
    token = security.form_token("jane", now=1000)
    assert security.form_token_valid("jane", token, now=1030)
    assert not security.form_token_valid("other", token, now=1030)
    assert not security.form_token_valid("jane", token, now=1061)
    forged = WebSecurity(b"other-key", True, 60).form_token("jane", now=1000)
    assert not security.form_token_valid("jane", forged, now=1000)
    assert not security.form_token_valid("jane", "garbage", now=1000)
