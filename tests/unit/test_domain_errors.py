"""The service layer's refusals are domain errors, mapped to problem+json by the HTTP layer
alone: the same status, type and title as when the service layer raised ApiProblems."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from services.api.http.problems import PROBLEM_BASE, as_problem
from services.api.service_layer.errors import Conflict, DomainError, Forbidden, Invalid, NotFound

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("error", "status", "kind", "title"),
    [
        (NotFound("lead x not found"), 404, "not-found", "Not found"),
        (Forbidden("a creator may only act for themselves"), 403, "forbidden", "Not allowed"),
        (Conflict("taken"), 409, "conflict", "Conflict"),
        (Invalid("name creator_id", kind="creator-required"), 422, "creator-required", None),
        (
            Conflict("no", kind="retry-not-allowed", title="The DM cannot be retried"),
            409,
            "retry-not-allowed",
            "The DM cannot be retried",
        ),
    ],
)
def test_each_kind_answers_its_status_type_and_title(
    error: DomainError, status: int, kind: str, title: str | None
) -> None:
    answer = as_problem(error)
    assert (answer.status, answer.kind, answer.detail) == (status, kind, error.detail)
    assert answer.title == (title or "Invalid request")
    assert answer.headers == {}
    assert (PROBLEM_BASE + answer.kind).startswith("https://")


def test_a_busy_idempotency_key_says_when_to_try_again() -> None:
    answer = as_problem(Conflict("busy", kind="idempotency-in-flight", retry_after_s=3))
    assert (answer.status, answer.headers) == (409, {"Retry-After": "3"})


def test_the_service_layer_loads_no_http_framework() -> None:
    modules = sorted(p.stem for p in (ROOT / "services/api/service_layer").glob("*.py"))
    imports = "; ".join(f"import services.api.service_layer.{m}" for m in modules)
    check = (
        f"{imports}; import sys; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_cli_shapes_the_service_layers_result_not_the_apis_schema() -> None:
    tree = ast.parse((ROOT / "cli/status.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not any(name.startswith("services.api.http") for name in imported), imported
