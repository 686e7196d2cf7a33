"""Meta's webhook signature and signed_request, verified like Meta signs them (§3b, §3e)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from services.webhook_ingest.signatures import (
    InvalidSignedRequest,
    SignatureCheck,
    parse_signed_request,
    verify_signature,
)

BODY = json.dumps({"object": "instagram", "text": "\u00e4\u00f6\u00e5"}, ensure_ascii=True).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_request(data: dict[str, object], secret: str) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() + "." + payload


def test_a_body_signed_with_the_app_secret_is_valid() -> None:
    assert verify_signature(BODY, sign(BODY, "s1"), ["s1"]) == SignatureCheck.VALID


def test_the_previous_secret_is_accepted_during_rotation() -> None:
    assert verify_signature(BODY, sign(BODY, "old"), ["new", "old"]) == SignatureCheck.VALID


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, SignatureCheck.MISSING),
        ("", SignatureCheck.MISSING),
        ("sha1=abcd", SignatureCheck.MISSING),
        ("sha256=not-hex", SignatureCheck.MISSING),
        (sign(BODY, "other-secret"), SignatureCheck.MISMATCH),
        (sign(BODY + b" ", "s1"), SignatureCheck.MISMATCH),
    ],
)
def test_missing_malformed_or_forged_signatures_are_refused(
    header: str | None, expected: SignatureCheck
) -> None:
    assert verify_signature(BODY, header, ["s1"]) == expected


def test_the_signature_covers_the_raw_bytes_not_the_decoded_json() -> None:
    reencoded = json.dumps(json.loads(BODY), ensure_ascii=False).encode()
    assert verify_signature(reencoded, sign(BODY, "s1"), ["s1"]) == SignatureCheck.MISMATCH


def test_a_signed_request_yields_its_payload() -> None:
    data = {"user_id": "218471", "algorithm": "HMAC-SHA256", "issued_at": 1291836800}
    assert parse_signed_request(signed_request(data, "s1"), ["s1"]) == data


@pytest.mark.parametrize(
    "value",
    [
        signed_request({"user_id": "1", "algorithm": "HMAC-SHA256"}, "wrong"),
        signed_request({"user_id": "1", "algorithm": "none"}, "s1"),
        "no-dot-here",
        "!!!.???",
        "." + signed_request({"user_id": "1", "algorithm": "HMAC-SHA256"}, "s1").split(".")[1],
    ],
)
def test_forged_or_malformed_signed_requests_are_refused(value: str) -> None:
    with pytest.raises(InvalidSignedRequest):
        parse_signed_request(value, ["s1"])
