"""The chaos plan itself (no stack): the big run failed because its plan put every private
reply on 4 of its 20 accounts (150 each: 13 minutes of 600/h pacing) and allowed 240 s."""

from __future__ import annotations

from collections import Counter

from tests.chaos.conftest import SETTLE_BASE_S, ChaosPlan
from tests.settings import AllSettings

BIG = ChaosPlan(leads=3000, accounts=20, kill_rounds=3, restart_infra=True)


def test_private_replies_are_spread_over_every_account() -> None:
    replies = Counter(BIG.creator_of(n) for n in range(BIG.leads) if n % 5 == 4)
    assert set(replies) == set(range(BIG.accounts))
    assert BIG.private_replies_per_account() == 30


def test_the_settle_time_covers_the_configured_private_reply_pacing() -> None:
    settings = AllSettings(instagram_private_replies_per_h=600, instagram_private_reply_burst=20)
    # 30 replies on one account: 20 at once, the other 10 at one per 6 s.
    assert BIG.settle_s(settings) == SETTLE_BASE_S + 60
    slow = AllSettings(instagram_private_replies_per_h=60, instagram_private_reply_burst=20)
    assert BIG.settle_s(slow) == SETTLE_BASE_S + 600
