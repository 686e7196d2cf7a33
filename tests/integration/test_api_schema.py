"""Schemathesis over the API's own OpenAPI document: generated requests (valid and invalid)
against the real app on a port, with real tokens (a creator's and an admin's), so
authenticated paths are exercised.

Every built-in check of schemathesis 4 runs (no 5xx, documented statuses, content types,
headers and schemas, schema-valid requests accepted and schema-invalid ones rejected,
unsupported methods answered 405 with `Allow`, auth enforced, ...), first per operation and
then in the stateful phase, which follows the document's OpenAPI links (a created lead to its
status, its retry and its DM). Failures are collected rather than raised at the first one, so
a run names every broken contract at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckContext
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from sandbox.app import create_app as create_sandbox
from sandbox.settings import SandboxSettings
from services.api.http.problems import PROBLEM_BASE
from tests.api_app import create_app
from tests.integration.issuer import Issuer
from tests.integration.served import free_port, served
from tests.settings import AllSettings

pytestmark = pytest.mark.integration

MIN_CASES = 1500
# Every /api operation documents its answers. An event stream never ends by itself: its
# contract is tests/integration/test_status_stream.py.
API = "/api/"
STREAMS = ("/api/dm/events",)
# Bounded so the whole run stays a few minutes on a busy machine.
EXAMPLES_PER_OPERATION = 25
STATEFUL_EXAMPLES = 100
STATEFUL_STEPS = 6
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Where the links from a new lead lead (a retry of a queued DM is a 409 `retry-not-allowed`).
FOLLOWED = (
    "GET /api/leads/{lead_id}",
    "GET /api/dm/status/{lead_id}",
    "POST /api/dm/retry/{lead_id}",
)


@pytest.fixture
def api_url(settings: AllSettings) -> Iterator[str]:
    # Meta is the sandbox, so connecting a WhatsApp number gets Meta's answer (a refused
    # token) rather than a 503 for Meta being unreachable.
    meta = create_sandbox(
        SandboxSettings(
            app_id=settings.instagram_app_id,
            app_secret=settings.instagram_app_secret.get_secret_value(),
        )
    )
    with served(meta, free_port()) as meta_url:
        # Thousands of cases from one creator and one admin within a minute: the per-caller
        # rate limits (tested in test_api_rate_limits.py) would answer 429 to most of them.
        unlimited = {"api_rate_limit_creator": 0, "api_rate_limit_admin": 0}
        api = create_app(settings.model_copy(update={"whatsapp_graph_url": meta_url} | unlimited))
        with served(api, free_port()) as url:
            yield url


# 422 problem types of rules no JSON Schema can state, each documented on its operations:
# they depend on the caller's role, on what the API issued or stored, or on Meta.
STATEFUL_RULES = {
    PROBLEM_BASE + kind
    for kind in (
        "creator-required",  # an admin or service token names no creator
        "invalid-cursor",  # a cursor the API did not return
        "idempotency-key-reused",  # the key came before with another body
        "whatsapp-token-refused",  # Meta refuses the access token
    )
}


def _accepts_valid_data(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """positive_data_acceptance, except for the documented 422s of STATEFUL_RULES: a
    schema-valid request can meet them as it can meet a 404 for an unknown id."""
    if response.status_code == 422 and response.json().get("type") in STATEFUL_RULES:
        return None
    return positive_data_acceptance(ctx, response, case)


ROLE_AWARE: dict[str, Any] = {
    "additional_checks": [_accepts_valid_data],
    "excluded_checks": [positive_data_acceptance],
}
# The OAuth redirect target: Meta sends browsers there with a signed `state` that no
# generated request can have (tests/integration/test_instagram_connect.py covers it).
BROWSER_ONLY = ["/api/instagram/callback"]


def _failures(exc: BaseException) -> list[Failure]:
    if isinstance(exc, FailureGroup):
        return list(exc.exceptions)
    if isinstance(exc, Failure):
        return [exc]
    raise exc


def _label(case: Case, who: str, failure: Failure) -> str:
    return f"{case.operation.label} as {who}: {failure.title}"


def _evidence(case: Case, failure: Failure, response: Any) -> str:
    answer = f"{response.status_code} {response.text[:300]}" if response is not None else ""
    return f"{case.as_curl_command()}\n  {failure.message[:600]}\n  answer: {answer}"


def _run_operation(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    who: Caller,
    found: dict[str, str],
) -> int:
    ran = 0

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        nonlocal ran
        ran += 1
        response = None
        try:
            # No `checks=`: every check schemathesis has, as its CLI's `--checks all`.
            # Redirects are answers to check, not to follow (Instagram's login page).
            response = case.call(timeout=30, allow_redirects=False)
            # The token passed again: `ignored_auth` then knows it is explicit, not generated,
            # and probes the operation without it and with a wrong one.
            case.validate_response(response, headers=who.headers, **ROLE_AWARE)
        except (AssertionError, FailureGroup) as exc:
            for failure in _failures(exc):
                found.setdefault(
                    _label(case, who.name, failure), _evidence(case, failure, response)
                )

    try:
        run()
    except Unsatisfiable:
        # Nothing of the operation can be made invalid (no parameters, no body, the token
        # supplied): it has no negative cases.
        assert mode == GenerationMode.NEGATIVE, f"no valid request for {operation.label}"
    return ran


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]


def _schemas(url: str, issuer: Issuer, creator: UUID) -> Iterator[tuple[Caller, Any]]:
    """The document once per caller, each with its token in its config: schemathesis then
    knows the bearer header is supplied (its negative cases do not count on dropping it,
    and `ignored_auth` knows what to take away)."""
    for who in (Caller("creator", issuer.creator(creator)), Caller("admin", issuer.admin())):
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        schema.config.update(base_url=url, headers=who.headers)
        yield who, schema.include(path_regex=f"^{API}").exclude(path=[*STREAMS, *BROWSER_ONLY])


def test_generated_requests_never_break_the_contract(
    api_url: str, issuer: Issuer, creator: UUID
) -> None:
    found: dict[str, str] = {}
    total = 0
    for who, schema in _schemas(api_url, issuer, creator):
        for result in schema.get_all_operations():
            for mode in MODES:
                total += _run_operation(result.ok(), mode, who, found)
    assert not found, "contract failures:\n" + "\n".join(f"- {k}\n  {v}" for k, v in found.items())
    assert total >= MIN_CASES, f"only {total} generated cases ran"


def test_linked_operations_keep_the_contract(api_url: str, issuer: Issuer, creator: UUID) -> None:
    """The stateful phase: sequences that follow the document's links (POST /api/leads's 201
    to the lead, its status, its retry and a DM send), every check on every step."""
    found: dict[str, str] = {}
    answered: set[str] = set()
    for who, schema in _schemas(api_url, issuer, creator):
        links = _link_count(schema.raw_schema)
        assert links >= 3, f"the document declares only {links} links"
        _run_stateful(schema, who, found, answered)
    assert not found, "contract failures:\n" + "\n".join(f"- {k}\n  {v}" for k, v in found.items())
    # A random id is a 404: an answer about an existing lead comes from following a link.
    followed = {f"{operation} {status}" for operation in FOLLOWED for status in (200, 409)}
    assert followed & answered, "\n".join(sorted(answered))


def _link_count(raw: dict[str, Any]) -> int:
    return sum(
        len(answer.get("links", {}))
        for operations in raw["paths"].values()
        for operation in operations.values()
        if isinstance(operation, dict)
        for answer in operation.get("responses", {}).values()
    )


def _run_stateful(schema: Any, who: Caller, found: dict[str, str], answered: set[str]) -> None:
    # The document's links only: the links schemathesis infers by itself take creator_id for
    # a reference to a resource no operation creates, and then never start from POST
    # /api/leads.
    schema.config.phases.stateful.inference.algorithms = []
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[valid-type,misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"timeout": 30, "allow_redirects": False}

        def after_call(self, response: Any, case: Case) -> None:
            super().after_call(response, case)
            answered.add(f"{case.operation.label} {response.status_code}")

        def validate_response(
            self, response: Any, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            try:
                case.validate_response(
                    response,
                    headers=who.headers,
                    transport_kwargs=kwargs,
                    recorder=self.recorder,
                    **ROLE_AWARE,
                )
            except (AssertionError, FailureGroup) as exc:
                for failure in _failures(exc):
                    found.setdefault(
                        "stateful " + _label(case, who.name, failure),
                        _evidence(case, failure, response),
                    )

    Machine.run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )


def test_unsupported_methods_are_405_with_allow(
    api_url: str, issuer: Issuer, creator: UUID
) -> None:
    """What schemathesis' `unsupported_method` and `allow_header_conformance` checks ask (its
    coverage phase, which the Python API does not run): a method a path does not document is
    405, with `Allow` naming exactly the documented ones."""
    paths = httpx.get(f"{api_url}/openapi.json").json()["paths"]
    headers = issuer.creator(creator)
    for path, operations in paths.items():
        if not path.startswith(API):
            continue
        documented = {method.upper() for method in operations}
        url = api_url + path.replace("{", "").replace("}", "")  # any value: routing only
        for method in ("OPTIONS", "TRACE", *({"GET", "POST", "PUT", "DELETE"} - documented)):
            answer = httpx.request(method, url, headers=headers)
            assert answer.status_code == 405, (method, path, answer.status_code)
            allow = {m.strip() for m in answer.headers.get("allow", "").split(",") if m.strip()}
            assert allow == documented, (method, path, allow)
