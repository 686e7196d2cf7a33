"""The steps of the conversion funnel: lead -> DM sent (or its link opened) -> read ->
replied. One definition for the Prometheus counter (shared.platform.metrics.FUNNEL, counted as a DM
moves) and the charts (services/api/service_layer/funnel.py, read from the leads' rows)."""

from __future__ import annotations

from enum import StrEnum

from shared.contracts.lifecycle import STATUS_RANK, DmStatus
from shared.platform.metrics import FUNNEL


class Stage(StrEnum):
    LEAD = "lead"
    SENT = "sent"
    CLICKED = "clicked"
    READ = "read"
    REPLIED = "replied"


# The statuses that are a step, in order: a DM that moves from `sending` straight to `read`
# (a receipt overtook the `sent`) passes `sent` too.
STATUS_STAGES = (
    (DmStatus.SENT, Stage.SENT),
    (DmStatus.READ, Stage.READ),
    (DmStatus.REPLIED, Stage.REPLIED),
)
# Only these say the DM reached the person (`failed` ranks above `sent` but is no step).
_REACHED = frozenset({DmStatus.SENT, DmStatus.DELIVERED, DmStatus.READ, DmStatus.REPLIED})


def stages_passed(current: DmStatus, new: DmStatus, same_attempt: bool) -> list[Stage]:
    """The funnel steps a transition from `current` to `new` passes."""
    if new not in _REACHED:
        return []
    floor = STATUS_RANK[current] if same_attempt else -1
    return [
        stage for status, stage in STATUS_STAGES if floor < STATUS_RANK[status] <= STATUS_RANK[new]
    ]


def count(stage: Stage, route: str | None, source: str | None) -> None:
    FUNNEL.labels(stage=stage, route=route or "none", source=source or "api").inc()
