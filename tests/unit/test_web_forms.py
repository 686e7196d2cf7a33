"""The public lead form's checks, its abuse limits, and the web pages' tokens."""

from __future__ import annotations

from uuid import uuid4

from pydantic import SecretStr

from services.api.web.form_limits import FormLimits, SlidingWindow
from services.api.web.lead_form_fields import NO_CONTACT, FormValues, to_lead
from services.api.web.security import WebSecurity
from shared.settings import Settings


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


def test_sliding_window_refuses_past_the_limit_and_forgets_after_a_minute() -> None:
    window = SlidingWindow(limit=2)
    assert [window.allow("ip", t) for t in (0.0, 1.0, 2.0)] == [True, True, False]
    assert window.allow("other-ip", 2.0)
    assert window.allow("ip", 60.5)


def test_form_limits_name_which_limit_refused() -> None:
    limits = FormLimits.per_minute(per_ip=1, per_creator=2)
    assert limits.refusal("1.1.1.1", "c", 0.0) is None
    assert "your network" in (limits.refusal("1.1.1.1", "c", 1.0) or "")
    assert limits.refusal("2.2.2.2", "c", 1.0) is None
    assert "a lot of messages" in (limits.refusal("3.3.3.3", "c", 1.0) or "")


def _security(ttl: int = 60) -> WebSecurity:
    settings = Settings(web_csrf_key=SecretStr("k1"), lead_form_token_ttl_s=ttl)
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
