"""The batch's echo look-up (services/webhook_ingest/echoes.py) writes the unsettled states
as literals, for the partial index on them: they must be UNSETTLED's."""

from __future__ import annotations

from services.webhook_ingest.echoes import MATCH_ECHOES
from shared.delivery.ambiguous_sends import UNSETTLED


def test_the_echo_look_up_names_exactly_the_unsettled_states() -> None:
    literal = "s.state IN (" + ", ".join(f"'{state}'" for state in UNSETTLED) + ")"
    assert literal in MATCH_ECHOES.text
