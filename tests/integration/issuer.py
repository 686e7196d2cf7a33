"""The local issuer run in-process for the tests, with helpers to mint good tokens and to
forge the bad ones a verifier must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import jwt

from local_issuer.keys import KeyRing, generate_key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class Issuer:
    base_url: str
    keys: KeyRing
    audience: str
    service_audience: str

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/.well-known/jwks.json"

    def token(
        self,
        sub: str,
        role: str,
        creator_id: UUID | None = None,
        audience: str | None = None,
        ttl: int | None = None,
    ) -> str:
        body: dict[str, Any] = {"sub": sub, "role": role}
        if creator_id is not None:
            body["creator_id"] = str(creator_id)
        if audience is not None:
            body["audience"] = audience
        if ttl is not None:
            body["ttl"] = ttl
        response = httpx.post(f"{self.base_url}/token", json=body)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def creator(self, creator_id: UUID) -> dict[str, str]:
        return bearer(self.token(f"user_{creator_id.hex[:8]}", "creator", creator_id))

    def admin(self) -> dict[str, str]:
        return bearer(self.token("user_admin", "admin"))

    def service(self) -> dict[str, str]:
        return bearer(self.token("svc-forms", "service", audience=self.service_audience))

    def claims(self, **override: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.base_url,
            "aud": self.audience,
            "sub": "user_forged",
            "role": "admin",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        }
        claims.update(override)
        return claims

    def signed(self, claims: dict[str, Any], kid: str | None = None) -> str:
        key = self.keys.current
        return jwt.encode(
            claims, key.private_key, algorithm=key.algorithm, headers={"kid": kid or key.kid}
        )

    def signed_by_stranger(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, generate_key("RS256"), algorithm="RS256", headers={"kid": "x1"})

    def unsigned(self, claims: dict[str, Any]) -> str:
        header = {"alg": "none", "typ": "JWT", "kid": self.keys.current.kid}
        return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."

    def hs256_with_public_key(self, claims: dict[str, Any]) -> str:
        """The classic key-confusion forgery: HMAC keyed with the published public key."""
        header = {"alg": "HS256", "typ": "JWT", "kid": self.keys.current.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        mac = hmac.new(self.keys.current.public_pem(), signing_input.encode(), hashlib.sha256)
        return f"{signing_input}.{_b64(mac.digest())}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
