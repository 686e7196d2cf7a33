"""The production shape (docs/RELIABILITY.md, "Failover drills"): topics replicated as the
settings say, every broker of a cluster handed to the clients, and the two failures a
cluster adds (no primary yet during a promotion, too few in-sync replicas) ridden out as
outages instead of parked as dead letters."""

from __future__ import annotations

from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from aiokafka import errors as kafka_errors

from shared.contracts.topics import TOPICS
from shared.messaging import topic_admin
from shared.messaging.broker import bootstrap_servers
from shared.platform.outages import is_outage
from shared.platform.settings import Settings
from tests.drills.drill import _longest_gap
from tests.drills.soak import slope_per_min


class _FakeAdmin:
    created: list[Any] = []

    def __init__(self, **_: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return []

    async def create_topics(self, topics: list[Any]) -> Any:
        _FakeAdmin.created = topics

        class Response:
            topic_errors = [(t.name, 0) for t in topics]

        return Response()


async def test_topics_are_provisioned_with_the_replication_the_settings_ask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(topic_admin, "AIOKafkaAdminClient", _FakeAdmin)
    await topic_admin.provision_topics("b:9092", replication_factor=3, min_insync_replicas=2)
    assert len(_FakeAdmin.created) == len(TOPICS)
    for topic in _FakeAdmin.created:
        assert topic.replication_factor == 3
        assert topic.topic_configs["min.insync.replicas"] == "2"
    with pytest.raises(ValueError, match=r"min\.insync"):
        await topic_admin.provision_topics("b:9092", replication_factor=1, min_insync_replicas=2)


def test_the_single_broker_defaults_stay_for_make_run_and_make_test() -> None:
    fields = Settings.model_fields
    assert fields["kafka_replication_factor"].default == 1
    assert fields["kafka_min_insync_replicas"].default == 1
    settings = Settings(kafka_bootstrap=fields["kafka_bootstrap"].default)
    assert bootstrap_servers(settings) == ["127.0.0.1:19092"]


def test_every_broker_of_a_cluster_reaches_faststream_as_its_own_host() -> None:
    """faststream passed "h1,h2,h3" to aiokafka as one host name: the services could not
    start against the drills' cluster ("Name or service not known")."""
    settings = Settings(kafka_bootstrap="127.0.0.1:41101, 127.0.0.1:41103,127.0.0.1:41105")
    assert bootstrap_servers(settings) == [
        "127.0.0.1:41101",
        "127.0.0.1:41103",
        "127.0.0.1:41105",
    ]


def test_a_standby_not_yet_promoted_and_too_few_replicas_are_outages() -> None:
    no_primary = asyncpg.exceptions.TargetServerAttributeNotMatched("no read-write host")
    assert is_outage(no_primary)
    assert is_outage(kafka_errors.NotEnoughReplicasError())
    assert not is_outage(ValueError("a bad record"))


def test_the_drills_measure_the_longest_pause_and_the_memory_trend() -> None:
    assert _longest_gap(100.0, [90.0, 101.0, 103.0, 125.0, 126.0]) == 22.0
    assert _longest_gap(100.0, []) == 0.0
    flat = [(t * 10.0, 200.0 + (t % 2)) for t in range(30)]
    growing = [(t * 10.0, 200.0 + t) for t in range(30)]  # 1 MB per 10 s
    assert abs(slope_per_min(flat)) < 0.1
    assert slope_per_min(growing) == pytest.approx(6.0)
