"""Deauthorize / data-deletion `signed_request`s are accepted only while fresh, and topic
erasure truncates a partition only once every live consumer group has read past it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition

from services.webhook_ingest.callbacks import StaleSignedRequest, fresh_callback
from services.webhook_ingest.topic_erasure import consumed, decode, encode, truncation

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)


def _at(delta_s: float) -> int:
    return int((NOW + timedelta(seconds=delta_s)).timestamp())


def test_a_fresh_request_names_its_user_and_issue_time() -> None:
    signed = fresh_callback({"user_id": 218471, "issued_at": _at(-30)}, NOW, WINDOW)
    assert signed.user_id == "218471"
    assert signed.issued_at == NOW - timedelta(seconds=30)
    with_expiry = {"user_id": "1", "issued_at": _at(-30), "expires": _at(3600)}
    assert fresh_callback(with_expiry, NOW, WINDOW).user_id == "1"


@pytest.mark.parametrize(
    "data",
    [
        # The review's replay: correctly signed in 2010.
        {"user_id": "1", "issued_at": 1291836800, "expires": 1291840400},
        {"user_id": "1", "issued_at": _at(-601)},
        {"user_id": "1", "issued_at": _at(601)},  # "fresh" for as long as it likes
        {"user_id": "1", "issued_at": _at(-5), "expires": _at(-1)},
        {"user_id": "1", "issued_at": _at(-5), "expires": "later"},
        {"user_id": "1"},
        {"user_id": "1", "issued_at": "1291836800"},
        {"user_id": "1", "issued_at": True},
    ],
)
def test_old_expired_or_undated_requests_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(StaleSignedRequest):
        fresh_callback(data, NOW, WINDOW)


def test_a_request_without_user_is_not_stale_but_invalid() -> None:
    with pytest.raises(ValueError, match="user_id"):
        fresh_callback({"issued_at": _at(0)}, NOW, WINDOW)


A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def test_offsets_survive_their_json_form() -> None:
    offsets = {A0: 5, TopicPartition("dm.status", 11): 7}
    assert decode(encode(offsets)) == offsets


def test_records_are_consumed_when_every_group_reading_the_topic_is_past_them() -> None:
    targets = {A0: 10, A1: 4, B0: 3}
    start = {A0: 0, A1: 4, B0: 0}
    # g2 never read topic b: it does not hold b back. A1 holds nothing before its target.
    commits = {"g1": {A0: 10, B0: 3}, "g2": {A0: 12, A1: 2}}
    assert consumed(targets, start, commits)
    assert not consumed(targets, start, {**commits, "g3": {A0: 9}})
    # A group that reads the topic but never committed this partition has not read it.
    assert not consumed(targets, start, {**commits, "g3": {A1: 4}})
    assert consumed({B0: 3}, start, {})  # nobody reads it


def test_truncation_names_only_partitions_holding_records_before_the_target() -> None:
    assert truncation({A0: 10, A1: 4, B0: 0}, {A0: 3, A1: 4, B0: 0}) == {A0: 10}
