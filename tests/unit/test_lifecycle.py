from __future__ import annotations

import pytest

from shared.lifecycle import DmStatus, Provider, Route, is_forward


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
