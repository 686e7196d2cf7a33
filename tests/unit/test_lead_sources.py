"""Lead sources, per-source messages, tracked links, funnel steps, next steps and the funnel's
charts: the pure parts of issue 16's sections 3 to 5."""

from __future__ import annotations

import re
from datetime import date
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.api.http.schemas import CreatorSettingsIn
from services.api.http.web.creator_account import SettingsForm
from services.api.http.web.funnel_charts import day_chart, group_chart
from services.api.http.web.next_steps import next_step
from services.api.service_layer.funnel import Counts
from services.api.service_layer.funnel_stages import Stage, stages_passed
from services.api.service_layer.tracked_links import link_route, safe_target, tracked_link
from services.api.workers.lead_ingress import lead_in
from shared.contracts.events import (
    LEAD_CREATED_VERSIONS,
    LeadCreated,
    LeadCreatedPayload,
    LeadCreatedPayloadV2,
    LeadCreatedV2,
    LeadSubmitted,
    LeadSubmittedPayload,
)
from shared.contracts.lead_sources import LeadSource, source_of, template_for
from shared.contracts.lifecycle import DmStatus
from shared.db.models import Lead
from shared.delivery import reasons as dm_reasons


def test_the_router_reads_both_versions_of_lead_created() -> None:
    creator, lead = uuid4(), uuid4()
    v1 = LeadCreated(
        correlation_id="c",
        creator_id=creator,
        payload=LeadCreatedPayload(lead_id=lead, name="A", message=""),
    )
    v2 = LeadCreatedV2(
        correlation_id="c",
        creator_id=creator,
        payload=LeadCreatedPayloadV2(
            lead_id=lead, name="A", message="", source=LeadSource.COMMENT, source_post="178"
        ),
    )
    assert LEAD_CREATED_VERSIONS.validate_json(v1.model_dump_json()) == v1
    parsed = LEAD_CREATED_VERSIONS.validate_json(v2.model_dump_json())
    assert isinstance(parsed, LeadCreatedV2) and parsed.payload.source == "comment"
    without_source = v2.model_dump(mode="json")
    del without_source["payload"]["source"]
    with pytest.raises(ValidationError):  # v2 always says where the lead came from
        LEAD_CREATED_VERSIONS.validate_python(without_source)


def test_an_ingress_producer_may_say_its_lead_is_an_import() -> None:
    event = LeadSubmitted(
        correlation_id="crm-1",
        creator_id=uuid4(),
        payload=LeadSubmittedPayload(name="Imp", phone="+14155550100", source="import"),
    )
    assert lead_in(event).source == "import"
    with pytest.raises(ValidationError):  # only AutoDM says `comment`
        LeadSubmittedPayload.model_validate({"name": "X", "phone": "+1415", "source": "comment"})


def test_a_lead_source_comes_from_the_form_else_the_caller() -> None:
    assert source_of("form", "import") == LeadSource.FORM
    assert source_of(None, "import") == LeadSource.IMPORT
    assert source_of(None, None) == LeadSource.API


def test_a_source_message_replaces_the_main_template_only_for_its_source() -> None:
    per_source = {"comment": "Here is the guide, {name}!"}
    assert template_for("Hi {name}", per_source, "comment") == "Here is the guide, {name}!"
    assert template_for("Hi {name}", per_source, "form") == "Hi {name}"
    assert template_for("Hi {name}", None, "comment") == "Hi {name}"


def test_a_source_message_gets_the_main_templates_checks() -> None:
    with pytest.raises(ValidationError, match=r"\{first\}"):
        CreatorSettingsIn(dm_template="Hi {name}", source_templates={"form": "Hi {first}"})
    with pytest.raises(ValidationError):
        CreatorSettingsIn(dm_template="Hi {name}", source_templates={"form": "x" * 1001})
    with pytest.raises(ValidationError):  # not a source
        CreatorSettingsIn.model_validate({"dm_template": "Hi", "source_templates": {"tv": "Hi"}})
    ok = CreatorSettingsIn(dm_template="Hi", source_templates={"comment": " Hi {name} "})
    assert ok.source_templates == {LeadSource.COMMENT: "Hi {name}"}


@pytest.mark.parametrize(
    "link",
    [
        "http://ig.me/m/shop?ref=x",
        "https://evil.example/ig.me",
        "https://ig.me.evil.example/m/shop",
        "https://ig.me@evil.example/m/shop",
        "https://ig.me:8443/m/shop",
        "javascript:alert(1)",
        "//evil.example",
        "",
        None,
    ],
)
def test_the_redirect_follows_only_https_ig_me_and_wa_me(link: str | None) -> None:
    assert safe_target(link) is None


def test_ig_me_and_wa_me_links_are_followed_and_named_by_their_route() -> None:
    assert safe_target("https://ig.me/m/shop?ref=abc") == "https://ig.me/m/shop?ref=abc"
    assert safe_target("https://wa.me/4420?text=hi") == "https://wa.me/4420?text=hi"
    assert link_route("https://wa.me/4420") == "wa_link"
    assert link_route("https://ig.me/m/shop") == "ig_link"


def _lead(**fields: object) -> Lead:
    values: dict[str, object] = {
        "id": uuid4(),
        "name": "Jo",
        "ref": "AbCdEfGhIjKlMnOp",
        "dm_status": DmStatus.AWAITING_CONTACT,
        "dm_route": "ig_link",
        "dm_link": "https://ig.me/m/shop?ref=AbCdEfGhIjKlMnOp",
        "source": "form",
    }
    return Lead(**(values | fields))


def test_a_waiting_lead_has_a_tracked_link_and_a_link_route_only() -> None:
    assert tracked_link(_lead(), "https://autodm.example/") == (
        "https://autodm.example/l/AbCdEfGhIjKlMnOp"
    )
    assert tracked_link(_lead(dm_route="ig_dm", dm_status="sent"), "https://a") is None
    assert tracked_link(_lead(dm_link=None), "https://a") is None


def test_each_funnel_step_is_passed_once_and_a_receipt_overtaking_sent_passes_it_too() -> None:
    assert stages_passed(DmStatus.SENDING, DmStatus.SENT, True) == [Stage.SENT]
    assert stages_passed(DmStatus.SENDING, DmStatus.READ, True) == [Stage.SENT, Stage.READ]
    assert stages_passed(DmStatus.READ, DmStatus.REPLIED, True) == [Stage.REPLIED]
    assert stages_passed(DmStatus.SENT, DmStatus.DELIVERED, True) == []
    assert stages_passed(DmStatus.SENDING, DmStatus.FAILED, True) == []  # ranks above sent
    assert stages_passed(DmStatus.FAILED, DmStatus.SENT, False) == [Stage.SENT]  # a retry


def test_an_awaiting_lead_offers_its_link_with_a_qr_code() -> None:
    step = next_step(_lead(), retry_allowed=False, instagram_connected=True, base_url="https://a")
    assert (step.kind, step.link) == ("share_link", "https://a/l/AbCdEfGhIjKlMnOp")
    svg = str(step.qr_svg())
    assert svg.startswith("<svg ") and 'role="img"' in svg and "<path" in svg
    assert "script" not in svg


def test_a_comment_lead_whose_reply_is_used_says_so_and_offers_the_link() -> None:
    lead = _lead(comment_id="179", source="comment")
    step = next_step(lead, retry_allowed=False, instagram_connected=True, base_url="https://a")
    assert step.kind == "share_link" and "one reply per comment" in step.text


def test_a_disconnected_account_offers_reconnecting_and_a_retryable_dm_retry() -> None:
    gone = _lead(
        dm_status="skipped", dm_provider="instagram", dm_reason=dm_reasons.CREATOR_DISCONNECTED
    )
    step = next_step(gone, retry_allowed=True, instagram_connected=True)
    assert (step.kind, step.action_url) == ("reconnect", "/app/instagram")
    failed = _lead(dm_status="failed", dm_provider="whatsapp", dm_route="wa_template")
    assert next_step(failed, retry_allowed=True, instagram_connected=True).kind == "retry"
    assert next_step(failed, retry_allowed=False, instagram_connected=True).kind == "none"
    sent = _lead(dm_status="sent", dm_route="ig_dm")
    assert next_step(sent, retry_allowed=False, instagram_connected=False).kind == "none"


def test_the_day_chart_draws_every_step_of_every_day() -> None:
    days = [
        (date(2026, 12, 1), Counts(leads=4, sent=3, read=2, replied=1)),
        (date(2026, 12, 2), Counts()),
    ]
    svg = str(day_chart(days))
    bars = re.findall(r'data-day="([\d-]+)" data-series="(\w+)" data-value="(\d+)"', svg)
    assert len(bars) == 8
    assert ("2026-12-01", "replied", "1") in bars and ("2026-12-02", "leads", "0") in bars
    assert "<script" not in svg


def test_the_group_chart_escapes_its_labels_and_shows_the_click_through() -> None:
    rows = [("ig_link", Counts(leads=4, sent=2, clicked=2, with_link=4)), ("<b>", Counts(leads=1))]
    svg = str(group_chart(rows, {"ig_link": "Instagram link"}, "route"))
    assert "Instagram link" in svg and "50% opened the link" in svg
    assert "<b>" not in svg and "&lt;b&gt;" in svg


def test_the_settings_page_checks_each_source_message_and_keeps_blank_ones_out() -> None:
    typed = (("comment", "Here {nom}"), ("form", "  "), ("api", "Hi {name}"))
    form = SettingsForm("Hi {name}", "instagram_first", "", False, source_templates=typed)
    errors = form.errors()
    assert "{nom}" in errors["template_comment"] and "{name}" in errors["template_comment"]
    assert set(errors) == {"template_comment"}
    fixed = SettingsForm("Hi {name}", "instagram_first", "", False, source_templates=typed[1:])
    assert fixed.errors() == {}
    assert fixed.settings().source_templates == {LeadSource.API: "Hi {name}"}
