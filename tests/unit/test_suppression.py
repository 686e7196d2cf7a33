"""What counts as stop and start, how identities are keyed and matched
(shared/delivery/suppression.py), and what the webhook mapping keeps for them (a message's text, an
echo's time)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.webhook_ingest.mapping import Echo, Inbound
from shared.delivery.reasons import CREATOR_REPLIED, OPTED_OUT, reason_code
from shared.delivery.suppression import (
    Identities,
    handle_key,
    is_start,
    is_stop,
    normalize_words,
    whatsapp_key,
)
from tests.unit.test_webhook_mapping import MS, PERSON, action, messaging


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop! ",
        "STOP ALL",
        "Unsubscribe.",
        "cancel",
        "END",
        "quit",
        "ARRÊT",
        "Baja",
    ],
)
def test_stop_and_its_usual_equivalents_are_stop(text: str) -> None:
    assert is_stop(text)


@pytest.mark.parametrize(
    "text", ["don't stop sending me guides", "stopwatch", "the end is near", "", "start"]
)
def test_a_message_merely_containing_a_stop_word_is_not_stop(text: str) -> None:
    assert not is_stop(text)


def test_a_creators_own_words_count_too() -> None:
    assert not is_stop("Ya basta ya")
    assert is_stop("ya basta ya", extra=["Ya basta ya!"])
    assert normalize_words(["  Ya BASTA ya!", "ya basta ya", "", "Nein"]) == ["ya basta ya", "nein"]


def test_start_lifts() -> None:
    assert is_start("START") and is_start("unstop") and not is_start("stop")


def test_whatsapp_numbers_are_keyed_as_e164_digits_however_typed() -> None:
    assert whatsapp_key("+44 20 7946 0958") == "442079460958"
    assert whatsapp_key("442079460958") == "442079460958"  # a wa_id
    assert whatsapp_key("not a number") is None
    assert whatsapp_key(None) is None


def test_handles_are_keyed_without_at_and_case() -> None:
    assert handle_key("@Stop.One") == "stop.one"
    assert handle_key("no spaces allowed") is None


def test_any_shared_identity_is_the_same_person() -> None:
    known = Identities(igsid="1", whatsapp="442079460958", handle="ann")
    assert Identities(handle="ann").matches(known)
    assert Identities(whatsapp="442079460958").matches(known)
    assert not Identities(igsid="2", handle="bob").matches(known)
    assert not Identities().matches(Identities())
    assert Identities(igsid="1").filled_from(known) == known


def test_the_reasons_have_machine_names() -> None:
    assert reason_code(OPTED_OUT) == "opted_out"
    assert reason_code(CREATOR_REPLIED) == "creator_replied"
    assert reason_code("something else") is None and reason_code(None) is None


def test_a_message_keeps_its_text_for_the_stop_check() -> None:
    inbound = action(messaging({"message": {"mid": "m1", "text": "STOP"}}))
    assert inbound == Inbound(
        PERSON, datetime.fromtimestamp(MS / 1000, UTC), "message", None, "STOP"
    )


def test_an_echo_keeps_when_it_was_sent() -> None:
    echo = action(
        messaging(
            {"message": {"mid": "m2", "text": "hey", "is_echo": True}},
            sender="17841400000000001",
            recipient=PERSON,
        )
    )
    assert isinstance(echo, Echo) and echo.at == datetime.fromtimestamp(MS / 1000, UTC)
