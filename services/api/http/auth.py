"""Who is calling: bearer JWTs verified against the identity provider's JWKS.

Three kinds of caller come out of a valid token:
- a creator (audience `jwt_audience`, role `creator`, a `creator_id` claim): own leads only;
- an admin (audience `jwt_audience`, role `admin`): every lead, and the admin endpoints;
- a service (audience `jwt_service_audience`): another AutoDM-side service acting for any
  creator, never an admin.
Anything else is 401. The algorithm is pinned before any key is looked up, so `none` and
HS256-signed-with-the-public-key tokens never reach signature verification.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt
from jwt import PyJWKClient

from services.api.http.problems import ApiProblem
from services.api.http.token_cache import VerifiedTokens
from services.api.service_layer.principals import Principal, Role
from services.api.settings import ApiSettings

__all__ = ["BEARER_CHALLENGE", "Principal", "Role", "TokenVerifier", "unauthorized"]

BEARER_CHALLENGE = 'Bearer error="invalid_token"'


def unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, "unauthorized", detail, headers={"WWW-Authenticate": BEARER_CHALLENGE})


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    audience: str
    service_audience: str
    algorithms: tuple[str, ...]
    leeway_s: int
    role_claim: str
    creator_claim: str

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> TokenPolicy:
        return cls(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            service_audience=settings.jwt_service_audience,
            algorithms=tuple(settings.jwt_algorithms),
            leeway_s=settings.jwt_leeway_s,
            role_claim=settings.jwt_role_claim,
            creator_claim=settings.jwt_creator_claim,
        )


class TokenVerifier:
    def __init__(self, policy: TokenPolicy, jwks: PyJWKClient, key_cache_s: float = 300) -> None:
        self._policy = policy
        self._jwks = jwks
        self._key_cache_s = key_cache_s
        # kid -> (key, monotonic expiry): a known key is used inline; only a miss pays the
        # thread hand-off (PyJWKClient may fetch with blocking urllib).
        self._keys: dict[str, tuple[Any, float]] = {}
        # A token verified once is trusted until its exp (never past the key cache's life).
        self._verified: VerifiedTokens[Principal] = VerifiedTokens(max_age_s=key_cache_s)

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> TokenVerifier:
        jwks = PyJWKClient(
            settings.jwks_url,
            lifespan=settings.jwks_cache_s,
            cooldown_duration=settings.jwks_refresh_cooldown_s,
            timeout=5,
        )
        return cls(TokenPolicy.from_settings(settings), jwks, settings.jwks_cache_s)

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        algorithm, kid = self._pinned_header(token)
        key = await self._key(token, kid)
        claims = self._decode(token, key, algorithm)
        principal = self._principal(claims)
        self._verified.put(token, principal, float(claims["exp"]))
        return principal

    async def _key(self, token: str, kid: str) -> Any:
        cached = self._keys.get(kid)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        # PyJWKClient fetches with blocking urllib; keep that off the event loop.
        key = await asyncio.to_thread(self._signing_key, token)
        self._keys[kid] = (key, time.monotonic() + self._key_cache_s)
        return key

    def _pinned_header(self, token: str) -> tuple[str, str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise unauthorized("the bearer token is not a JWT") from exc
        algorithm = header.get("alg")
        if algorithm not in self._policy.algorithms:
            raise unauthorized(f"token algorithm {algorithm!r} is not accepted")
        if not header.get("kid"):
            raise unauthorized("the token names no signing key (kid)")
        return str(algorithm), str(header["kid"])

    def _signing_key(self, token: str) -> Any:
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise ApiProblem(
                503, "auth-unavailable", "the identity provider's keys could not be fetched"
            ) from exc
        except (jwt.PyJWKClientError, jwt.PyJWKError, jwt.InvalidTokenError) as exc:
            raise unauthorized("the token's signing key is unknown") from exc

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        p = self._policy
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=[p.audience, p.service_audience],
                issuer=p.issuer,
                leeway=p.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise unauthorized("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise unauthorized("the token is not valid yet") from exc
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as exc:
            raise unauthorized("the token was issued for someone else") from exc
        except jwt.InvalidTokenError as exc:
            raise unauthorized("the token is invalid") from exc
        return claims

    def _principal(self, claims: dict[str, Any]) -> Principal:
        p = self._policy
        subject = str(claims["sub"])
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if p.service_audience in audiences:
            return Principal(subject, Role.SERVICE)
        role = claims.get(p.role_claim)
        if role == Role.ADMIN:
            return Principal(subject, Role.ADMIN)
        if role == Role.CREATOR:
            return Principal(subject, Role.CREATOR, _creator_id(claims.get(p.creator_claim)))
        raise unauthorized("the token carries no AutoDM role")


def _creator_id(value: object) -> UUID:
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise unauthorized("a creator token must name its creator id") from exc
