"""The public event contracts stay compatible within a version (docs/EVENTS.md): the
current schemas against the released ones in schemas/released/, and the checker itself on
changes that must and must not count as breaking."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from scripts.contract_compat import RELEASED_DIR, breaking_changes, check, unreleased
from shared.contracts.topics import DM_STATUS, LEADS_SUBMITTED, TOPICS


def test_every_public_contract_is_released_and_compatible_with_its_release() -> None:
    assert unreleased() == []
    assert check() == []


def test_the_public_topics_are_the_ingress_and_the_status_events() -> None:
    assert {spec.name for spec in TOPICS if spec.public} == {LEADS_SUBMITTED, DM_STATUS}


def _released() -> dict[str, Any]:
    return json.loads((RELEASED_DIR / "dm.status.v1.json").read_text())  # type: ignore[no-any-return]


def _payload(schema: dict[str, Any]) -> dict[str, Any]:
    return schema["$defs"]["DmStatusPayload"]  # type: ignore[no-any-return]


def _changed(edit: Any) -> list[str]:
    current = copy.deepcopy(_released())
    edit(current)
    return breaking_changes(_released(), current)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: _payload(s)["properties"].pop("reason"), "reason: removed"),
        (
            lambda s: _payload(s)["properties"].__setitem__("attempt", {"type": "string"}),
            "attempt: type integer removed",
        ),
        (lambda s: _payload(s)["required"].append("route"), "route: newly required"),
        (lambda s: _payload(s)["required"].remove("status"), "status: no longer required"),
        (lambda s: s["$defs"]["DmStatus"]["enum"].remove("read"), "enum value 'read' removed"),
        (
            lambda s: _payload(s)["properties"]["reason"]["anyOf"][0].__setitem__("maxLength", 50),
            "maxLength tightened from 500 to 50",
        ),
        (lambda s: s["properties"]["type"].__setitem__("const", "dm.state"), "const changed"),
    ],
)
def test_a_field_lost_retyped_or_narrowed_is_breaking(edit: Any, expected: str) -> None:
    problems = _changed(edit)
    assert any(expected in p for p in problems), problems


def test_new_optional_fields_enum_values_and_looser_limits_are_compatible() -> None:
    def grow(schema: dict[str, Any]) -> None:
        payload = _payload(schema)
        payload["properties"]["source"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
        schema["$defs"]["DmStatus"]["enum"].append("opted_out")
        payload["properties"]["reason"]["anyOf"][0]["maxLength"] = 1000
        payload["properties"]["link"]["anyOf"].append({"type": "integer"})

    assert _changed(grow) == []
