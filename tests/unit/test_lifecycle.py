from __future__ import annotations

import pytest

from shared.contracts.lifecycle import DmStatus, Provider, Route, is_forward


@pytest.mark.parametrize(
    ("current", "new", "forward"),
    [
        (DmStatus.QUEUED, DmStatus.SENDING, True),
        (DmStatus.SENDING, DmStatus.SENT, True),
        (DmStatus.SENT, DmStatus.READ, True),
        (DmStatus.READ, DmStatus.SENT, False),  # a late "sent" never overwrites "read"
        (DmStatus.REPLIED, DmStatus.READ, False),
        (DmStatus.SENT, DmStatus.SENT, False),  # a duplicate changes nothing
        (DmStatus.SENT, DmStatus.FAILED, True),  # WhatsApp: accepted, then undeliverable
        (DmStatus.READ, DmStatus.FAILED, False),
        (DmStatus.AWAITING_CONTACT, DmStatus.SENDING, True),
        (DmStatus.SENDING, DmStatus.SKIPPED, True),  # Meta refused: the DM never left
        (DmStatus.SKIPPED, DmStatus.SENDING, False),
        (DmStatus.SENT, DmStatus.SKIPPED, False),
    ],
)
def test_forward_only_within_an_attempt(current: DmStatus, new: DmStatus, forward: bool) -> None:
    assert is_forward(current, 1, new, 1) is forward


def test_a_new_attempt_starts_over_and_an_old_one_is_history() -> None:
    assert is_forward(DmStatus.FAILED, 1, DmStatus.QUEUED, 2)
    assert not is_forward(DmStatus.QUEUED, 2, DmStatus.READ, 1)


def test_route_names_its_provider() -> None:
    assert Route.IG_PRIVATE_REPLY.provider is Provider.INSTAGRAM
    assert Route.WA_LINK.provider is Provider.WHATSAPP
    assert Route.NONE.provider is None


def test_a_re_route_away_from_sending_shows_within_the_attempt() -> None:
    def forward(new: DmStatus, current_route: str, new_route: str) -> bool:
        return is_forward(
            DmStatus.SENDING, 1, new, 1, current_route=current_route, new_route=new_route
        )

    assert forward(DmStatus.LINK_READY, Route.WA_TEXT, Route.WA_LINK)  # 131047, no opt-in
    assert forward(DmStatus.SENDING, Route.WA_TEXT, Route.WA_TEMPLATE)  # 131047, opt-in
    assert not forward(DmStatus.LINK_READY, Route.WA_TEXT, Route.WA_TEXT)
    assert not forward(DmStatus.QUEUED, Route.WA_TEXT, Route.WA_LINK)
    # Without routes (the router's own transitions) the rank alone decides.
    assert not is_forward(DmStatus.SENDING, 1, DmStatus.LINK_READY, 1)
    assert not is_forward(
        DmStatus.SENT, 1, DmStatus.LINK_READY, 1, current_route="wa_text", new_route="wa_link"
    )
