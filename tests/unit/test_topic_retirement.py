"""What retiring a topic would lose: records no group that reads it has committed past."""

from __future__ import annotations

from aiokafka import TopicPartition

from shared.contracts.topics import BY_NAME, RETIRED
from shared.messaging.topic_admin import unread_records

T0, T1 = TopicPartition("old", 0), TopicPartition("old", 1)
OTHER = TopicPartition("other", 0)


def test_an_empty_or_expired_topic_loses_nothing() -> None:
    assert unread_records("old", {T0: 0, T1: 7}, {T0: 0, T1: 7}, {}) == 0


def test_records_nobody_ever_read_are_all_unread() -> None:
    commits = {"autodm-x": {OTHER: 10}}  # a group of another topic says nothing here
    assert unread_records("old", {T0: 2, T1: 0}, {T0: 5, T1: 4}, commits) == 7


def test_the_slowest_reader_decides() -> None:
    commits = {"autodm-a": {T0: 5, T1: 4}, "autodm-b": {T0: 3}}
    # b read partition 0 up to 3 and never committed on 1: from the start there.
    assert unread_records("old", {T0: 0, T1: 1}, {T0: 5, T1: 4}, commits) == 2 + 3


def test_readers_at_the_end_lose_nothing() -> None:
    commits = {"autodm-a": {T0: 5, T1: 4}}
    assert unread_records("old", {T0: 0, T1: 0}, {T0: 5, T1: 4}, commits) == 0


def test_a_retired_topic_is_no_longer_in_the_registry() -> None:
    assert RETIRED and not set(RETIRED) & set(BY_NAME)
