from __future__ import annotations

import json

import httpx
import pytest

from shared.providers.graph_http import decode_error
from shared.providers.meta_errors import ErrorClass, classify


@pytest.mark.parametrize(
    ("code", "subcode", "expected"),
    [
        (4, None, ErrorClass.THROTTLED),
        (613, 2534040, ErrorClass.THROTTLED),
        (80002, None, ErrorClass.THROTTLED),
        (130429, None, ErrorClass.THROTTLED),
        (131056, None, ErrorClass.THROTTLED),
        (190, 463, ErrorClass.TOKEN),
        (10, 2534022, ErrorClass.RECIPIENT),
        (551, None, ErrorClass.RECIPIENT),
        (100, 2534014, ErrorClass.RECIPIENT),
        (2, None, ErrorClass.TRANSIENT),
        (100, 2534015, ErrorClass.INVALID),
    ],
)
def test_codes_are_classified(code: int, subcode: int | None, expected: ErrorClass) -> None:
    assert classify(code, subcode) is expected


def test_graph_error_envelope_is_decoded_with_buc_wait() -> None:
    usage = {
        "1784": [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 3}]
    }
    response = httpx.Response(
        400,
        json={
            "error": {
                "message": "Calls to this api have exceeded the rate limit.",
                "code": 613,
                "error_subcode": 2534040,
                "fbtrace_id": "x",
            }
        },
        headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
    )
    error = decode_error(response)
    assert (error.error_class, error.code, error.subcode) == (ErrorClass.THROTTLED, 613, 2534040)
    assert error.retry_after_s == 180


def test_bare_5xx_is_transient() -> None:
    error = decode_error(httpx.Response(503, text="<html>down</html>"))
    assert error.error_class is ErrorClass.TRANSIENT
    assert error.http_status == 503
