"""A verified bearer token is remembered until it expires: the RSA check runs once per
token, not per request, and an expired, wrong or never-verified token is still refused."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest

from local_issuer.keys import generate_key
from services.api.http.auth import Role, TokenPolicy, TokenVerifier
from services.api.http.problems import ApiProblem
from services.api.http.token_cache import VerifiedTokens

POLICY = TokenPolicy(
    issuer="https://issuer.test",
    audience="autodm",
    service_audience="autodm-service",
    algorithms=("RS256",),
    leeway_s=0,
    role_claim="role",
    creator_claim="creator_id",
)
KEY = generate_key("RS256")


class Keys:
    """A JWKS client stand-in with the one key; counts lookups."""

    def __init__(self) -> None:
        self.lookups = 0

    def get_signing_key_from_jwt(self, token: str) -> Any:
        self.lookups += 1
        return type("Jwk", (), {"key": KEY.public_key()})()


def token(exp: float, audience: str = "autodm-service", sub: str = "svc") -> str:
    claims = {"sub": sub, "iss": POLICY.issuer, "aud": audience, "exp": int(exp)}
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return calls


def verifier() -> TokenVerifier:
    return TokenVerifier(POLICY, Keys(), key_cache_s=300)  # type: ignore[arg-type]


async def test_a_token_is_verified_once_then_served_until_it_expires(
    decodes: list[str],
) -> None:
    v, t = verifier(), token(time.time() + 60)
    first = await v.verify(t)
    again = await v.verify(t)
    assert first == again and first.role is Role.SERVICE
    assert len(decodes) == 1


async def test_an_expired_cached_token_is_verified_again_and_refused(
    decodes: list[str],
) -> None:
    exp = time.time() + 2
    v, t = verifier(), token(exp)
    await v.verify(t)
    await asyncio.sleep(exp + 0.5 - time.time())  # past exp (pyjwt reads its own clock)
    with pytest.raises(ApiProblem) as refused:
        await v.verify(t)
    assert refused.value.status == 401
    assert len(decodes) == 2


async def test_a_refused_token_is_never_remembered(decodes: list[str]) -> None:
    v, t = verifier(), token(time.time() + 60, audience="someone-else")
    for _ in range(2):
        with pytest.raises(ApiProblem):
            await v.verify(t)
    assert len(decodes) == 2


async def test_each_token_has_its_own_entry(decodes: list[str]) -> None:
    v = verifier()
    a, b = token(time.time() + 60, sub="a"), token(time.time() + 60, sub="b")
    assert (await v.verify(a)).subject == "a"
    assert (await v.verify(b)).subject == "b"
    assert (await v.verify(a)).subject == "a"
    assert len(decodes) == 2


def test_the_cache_is_bounded_and_drops_the_oldest_first() -> None:
    cache: VerifiedTokens[str] = VerifiedTokens(max_entries=2, max_age_s=300)
    until = time.time() + 60
    for name in ("a", "b", "c"):
        cache.put(name, name.upper(), until)
    assert cache.get("a") is None
    assert (cache.get("b"), cache.get("c")) == ("B", "C")


def test_no_entry_outlives_the_key_cache() -> None:
    cache: VerifiedTokens[str] = VerifiedTokens(max_age_s=0)
    cache.put("t", "T", time.time() + 3600)
    assert cache.get("t") is None
