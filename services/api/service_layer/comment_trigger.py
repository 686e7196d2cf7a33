"""Which comments on a creator's posts count for Comment to DM
(services/api/workers/comment_to_dm.py):
the creator's trigger (settings page, PUT /api/settings) and keywords."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum

MAX_KEYWORDS = 20
MAX_KEYWORD_CHARS = 50


class CommentTrigger(StrEnum):
    OFF = "off"
    KEYWORDS = "keywords"
    ANY = "any"


def parse_keywords(typed: str) -> list[str]:
    """Comma- or line-separated keywords as typed on the settings page."""
    return normalize_keywords(re.split(r"[,\n]", typed))


def normalize_keywords(words: Iterable[str]) -> list[str]:
    """Trimmed and single-spaced, without blanks or repeats (case-insensitively), in order."""
    seen: dict[str, str] = {}
    for word in words:
        word = " ".join(word.split())
        if word and word.casefold() not in seen:
            seen[word.casefold()] = word
    return list(seen.values())


def counts(trigger: str, keywords: Sequence[str], text: str) -> bool:
    """Whether a comment with this text becomes a lead. A keyword matches as a whole word
    or phrase, in any case: "guide" counts in "Guide please!" but not in "guidelines"."""
    if trigger == CommentTrigger.ANY:
        return True
    if trigger != CommentTrigger.KEYWORDS:
        return False
    folded = text.casefold()
    return any(
        re.search(rf"(?<!\w){re.escape(word.casefold())}(?!\w)", folded) for word in keywords
    )
