"""Which comments become leads (Comment to DM), and the settings form that chooses it."""

from __future__ import annotations

import pytest

from services.api.http.web.creator_account import SettingsForm
from services.api.service_layer.comment_trigger import MAX_KEYWORDS, counts, parse_keywords


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GUIDE please", True),
        ("can I get the guide?", True),
        ("guide🙏", True),
        ("these guidelines are great", False),
        ("misguided", False),
        ("please send it!", True),
        ("send    it", False),  # a phrase matches as typed, single-spaced
        ("", False),
    ],
)
def test_a_keyword_counts_as_a_whole_word_or_phrase_in_any_case(text: str, expected: bool) -> None:
    assert counts("keywords", ["Guide", "send it"], text) is expected


def test_off_counts_nothing_and_any_counts_everything() -> None:
    assert not counts("off", ["guide"], "guide")
    assert counts("any", [], "nice post")
    assert not counts("keywords", [], "anything")
    assert not counts("someday", ["guide"], "guide")  # unknown: nothing, never everything


def test_keywords_are_trimmed_without_blanks_or_repeats() -> None:
    assert parse_keywords(" guide, GUIDE ,\n send   it ,, link ") == ["guide", "send it", "link"]


def _form(trigger: str, keywords: str) -> SettingsForm:
    return SettingsForm("Hi {name}", "instagram_first", "", False, trigger, keywords)


def test_the_settings_form_checks_the_comment_trigger_and_keywords() -> None:
    assert _form("keywords", "guide, link").errors() == {}
    assert _form("off", "").errors() == {}
    assert _form("any", "").errors() == {}
    assert "comment_trigger" in _form("sometimes", "").errors()
    assert "comment_keywords" in _form("keywords", " , ").errors()
    too_many = ",".join(f"k{i}" for i in range(MAX_KEYWORDS + 1))
    assert "comment_keywords" in _form("keywords", too_many).errors()
    assert "comment_keywords" in _form("keywords", "x" * 51).errors()
    assert _form("keywords", "guide, GUIDE").keywords() == ["guide"]
