"""The OAuth `state`: signed, bound to its creator, expiring."""

from __future__ import annotations

from uuid import uuid4

import pytest

from services.api.http.connect_binding import digest_of
from services.api.http.oauth_state import InvalidState, issue_state, verify_state

KEY = b"state-key"
B = digest_of("browser-secret")


def test_a_state_names_the_creator_it_was_issued_for() -> None:
    creator = uuid4()
    state = issue_state(KEY, creator, now=1000, ttl_s=600, browser=B)
    assert verify_state(KEY, state, now=1500).creator_id == creator


def test_states_are_unique_per_connect() -> None:
    creator = uuid4()
    assert issue_state(KEY, creator, 1000, 600, browser=B) != issue_state(
        KEY, creator, 1000, 600, browser=B
    )


def test_an_expired_state_is_refused() -> None:
    state = issue_state(KEY, uuid4(), now=1000, ttl_s=600, browser=B)
    with pytest.raises(InvalidState):
        verify_state(KEY, state, now=1601)


def test_a_state_rebound_to_another_creator_is_refused() -> None:
    state = issue_state(KEY, uuid4(), now=1000, ttl_s=600, browser=B)
    _, rest = state.split(".", 1)
    with pytest.raises(InvalidState):
        verify_state(KEY, f"{uuid4().hex}.{rest}", now=1001)


@pytest.mark.parametrize("state", ["", "garbage", "a.b.c.d"])
def test_malformed_or_foreign_states_are_refused(state: str) -> None:
    with pytest.raises(InvalidState):
        verify_state(KEY, state, now=1)
    with pytest.raises(InvalidState):
        verify_state(b"other-key", issue_state(KEY, uuid4(), 1, 60, browser=B), now=1)


def test_a_state_names_its_browser_and_cannot_be_moved_to_another() -> None:
    state = issue_state(KEY, uuid4(), now=1000, ttl_s=600, browser=B)
    assert verify_state(KEY, state, now=1001).browser == B
    with pytest.raises(InvalidState):
        verify_state(KEY, state.replace(B, digest_of("another browser")), now=1001)
