"""Both directions of every service's AsyncAPI document: what it publishes is declared from
shared/contracts/channels.py, what it consumes from its subscribers; every topic of the
registry has a publisher and every published topic is one of the registry's."""

from __future__ import annotations

import json

import pytest

from scripts.export_contracts import ASYNCAPI_DIR
from shared.contracts.channels import EXTERNALLY_PUBLISHED, PUBLISHED_BY, TOPIC_EVENTS
from shared.contracts.topics import BY_NAME, TOPICS

CONSUMING_SERVICES = ("api", "instagram_sender", "whatsapp_sender", "webhook_ingest")


def _operations(service: str) -> dict[str, set[str]]:
    doc = json.loads((ASYNCAPI_DIR / f"{service}.json").read_text())
    channels = doc["channels"]
    out: dict[str, set[str]] = {"send": set(), "receive": set()}
    for op in doc["operations"].values():
        channel = channels[op["channel"]["$ref"].rsplit("/", 1)[1]]
        out[op["action"]].add(channel["address"])
    return out


def test_every_registry_topic_says_what_it_carries_and_who_publishes_it() -> None:
    assert set(TOPIC_EVENTS) == set(BY_NAME)
    published = {topic for topics in PUBLISHED_BY.values() for topic in topics}
    assert {spec.name for spec in TOPICS} <= published | set(EXTERNALLY_PUBLISHED)
    assert published <= set(BY_NAME)


@pytest.mark.parametrize("service", CONSUMING_SERVICES)
def test_asyncapi_shows_what_a_service_sends_and_what_it_receives(service: str) -> None:
    ops = _operations(service)
    assert ops["receive"], f"{service} consumes nothing in its document"
    key = "api_workers" if service == "api" else service
    assert ops["send"] == set(PUBLISHED_BY[key])


def test_token_refresher_only_sends() -> None:
    # It polls PostgreSQL for tokens to refresh; it consumes no topic.
    ops = _operations("token_refresher")
    assert ops == {"send": set(PUBLISHED_BY["token_refresher"]), "receive": set()}


def test_every_published_topic_has_a_consumer() -> None:
    consumed = set().union(*(_operations(s)["receive"] for s in CONSUMING_SERVICES))
    published = {topic for topics in PUBLISHED_BY.values() for topic in topics}
    assert published <= consumed, f"nobody reads {sorted(published - consumed)}"


def test_every_consumed_topic_has_a_publisher() -> None:
    consumed = set().union(*(_operations(s)["receive"] for s in CONSUMING_SERVICES))
    published = {topic for topics in PUBLISHED_BY.values() for topic in topics}
    assert consumed <= published | set(EXTERNALLY_PUBLISHED)
