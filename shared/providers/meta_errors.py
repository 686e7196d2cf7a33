"""Meta's error codes sorted into what AutoDM does about them (platform facts §1g, §4d, §6)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorClass(StrEnum):
    THROTTLED = "throttled"  # back off, retry later
    TOKEN = "token"  # noqa: S105 (a class name, not a secret): stop the account, reconnect
    RECIPIENT = "recipient"  # this person can't be messaged now: final, no retry
    TRANSIENT = "transient"  # network or 5xx: retry
    INVALID = "invalid"  # our request is wrong: final, a bug or bad data
    AMBIGUOUS = "ambiguous"  # the request may have reached Meta: never blindly resent


THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80006, 130429, 131056, 80007, 131057})
RECIPIENT_FINAL = frozenset(
    {
        (10, 2534022),
        (10, 2018278),
        (10, 2018065),
        (10, 2018108),
        (10, 1893063),
        (551, None),
        (551, 1545041),
        (200, 1545041),
        (200, 2534041),
        (100, 2534014),
        (100, 2534025),
        (131047, None),
        (131026, None),
        (131050, None),
        (131049, None),
    }
)
TRANSIENT_CODES = frozenset({1, 2})


@dataclass(frozen=True)
class MetaError(Exception):
    """An error answer from a Meta API, or a failure to get one."""

    error_class: ErrorClass
    message: str
    code: int | None = None
    subcode: int | None = None
    http_status: int | None = None
    retry_after_s: float | None = None

    def __str__(self) -> str:
        return f"{self.error_class}: ({self.code}/{self.subcode}) {self.message}"


def classify(code: int | None, subcode: int | None) -> ErrorClass:
    if code is None:
        return ErrorClass.TRANSIENT
    if code in THROTTLE_CODES:
        return ErrorClass.THROTTLED
    if code == 190 or code == 102:
        return ErrorClass.TOKEN
    if (code, subcode) in RECIPIENT_FINAL or (code, None) in RECIPIENT_FINAL:
        return ErrorClass.RECIPIENT
    if code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    return ErrorClass.INVALID
