"""Meta's two signatures (platform facts §3b, §3e), verified in constant time.

- Webhook POSTs: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>`,
  computed on the bytes exactly as received (Meta signs its escaped-unicode rendering).
- Deauthorize / data-deletion callbacks: a form field `signed_request` =
  `<base64url HMAC-SHA256 of the encoded payload>.<base64url JSON payload>`.

Several secrets are accepted so the app secret can be rotated without dropping deliveries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any
from uuid import uuid4

from fastapi import HTTPException, Request, status

from shared.platform.logs import bind_correlation_id, get_logger
from shared.platform.metrics import WEBHOOK_SIGNATURE_FAILURES

log = get_logger(__name__)

PREFIX = "sha256="
SIGNATURE_HEADER = "X-Hub-Signature-256"


class SignatureCheck(StrEnum):
    VALID = "valid"
    MISSING = "missing"  # no header, or not `sha256=<hex>`: 401
    MISMATCH = "mismatch"  # well-formed but signed with another secret or body: 403


class InvalidSignedRequest(ValueError):
    """A `signed_request` that is malformed, of another algorithm, or signed otherwise."""


def verify_signature(body: bytes, header: str | None, secrets: Sequence[str]) -> SignatureCheck:
    if not header or not header.startswith(PREFIX):
        return SignatureCheck.MISSING
    try:
        received = bytes.fromhex(header[len(PREFIX) :])
    except ValueError:
        return SignatureCheck.MISSING
    # Every secret is tried (no early exit), so timing says nothing about which matched.
    matches = [
        hmac.compare_digest(hmac.new(s.encode(), body, hashlib.sha256).digest(), received)
        for s in secrets
    ]
    return SignatureCheck.VALID if any(matches) else SignatureCheck.MISMATCH


def parse_signed_request(signed_request: str, secrets: Sequence[str]) -> dict[str, Any]:
    """The verified payload (`user_id`, `algorithm`, `issued_at`...); raises otherwise."""
    encoded_sig, sep, encoded_payload = signed_request.partition(".")
    if not sep or not encoded_sig or not encoded_payload:
        raise InvalidSignedRequest("not <signature>.<payload>")
    try:
        signature = _b64url_decode(encoded_sig)
        data = json.loads(_b64url_decode(encoded_payload))
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignedRequest("undecodable signed_request") from exc
    if not isinstance(data, dict) or str(data.get("algorithm", "")).upper() != "HMAC-SHA256":
        raise InvalidSignedRequest("unsupported algorithm")
    # The HMAC covers the *encoded* payload string, as in Meta's sample code.
    matches = [
        hmac.compare_digest(
            hmac.new(s.encode(), encoded_payload.encode(), hashlib.sha256).digest(), signature
        )
        for s in secrets
    ]
    if not any(matches):
        raise InvalidSignedRequest("signature mismatch")
    return data


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def answer_verification(
    mode: str | None, token: str | None, challenge: str | None, expected_token: str
) -> str:
    """Meta's GET subscription check: echo hub.challenge when the verify token matches."""
    token_ok = token is not None and hmac.compare_digest(token.encode(), expected_token.encode())
    if mode != "subscribe" or not token_ok or challenge is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "verification failed")
    return challenge


async def signed_json(request: Request, secrets: Sequence[str], provider: str) -> tuple[Any, str]:
    """The POST's JSON once its signature checks out (missing 401, wrong 403, not JSON 400),
    with a fresh correlation id (bound to the logs) for everything the notification causes."""
    body = await request.body()  # the raw bytes: Meta signed exactly these
    check = verify_signature(body, request.headers.get(SIGNATURE_HEADER), secrets)
    if check != SignatureCheck.VALID:
        log.warning("webhook rejected", provider=provider, signature=check)
        WEBHOOK_SIGNATURE_FAILURES.labels(provider=provider, reason=check).inc()
        code = status.HTTP_401_UNAUTHORIZED if check == SignatureCheck.MISSING else 403
        raise HTTPException(code, f"signature {check}")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not JSON") from exc
    correlation_id = str(uuid4())
    bind_correlation_id(correlation_id)
    return payload, correlation_id
