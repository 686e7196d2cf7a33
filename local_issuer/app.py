"""The local issuer's HTTP face: the JWKS AutoDM verifies against, and a token mint.

`POST /token` hands out any role to anyone who asks: that is the point of a development
issuer, and why it binds to loopback and is never deployed.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal
from uuid import UUID

import jwt
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from local_issuer.keys import KeyRing, SigningKey, kid_for, load_or_create
from local_issuer.settings import IssuerSettings
from local_issuer.sign_in import make_router


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sub: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    role: Literal["creator", "admin", "service"]
    creator_id: UUID | None = None
    audience: str | None = Field(default=None, description="Defaults to the issuer's audience")
    ttl: int | None = Field(default=None, ge=1, description="Seconds; capped by max_ttl_s")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (the OAuth scheme name)
    expires_in: int
    kid: str


def mint(
    settings: IssuerSettings, key: SigningKey, request: TokenRequest, now: int
) -> TokenResponse:
    ttl = min(request.ttl or settings.default_ttl_s, settings.max_ttl_s)
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": request.audience or settings.audience,
        "sub": request.sub,
        "role": request.role,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    if request.creator_id is not None:
        claims["creator_id"] = str(request.creator_id)
    token = jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})
    return TokenResponse(access_token=token, expires_in=ttl, kid=key.kid)


def create_app(settings: IssuerSettings | None = None) -> FastAPI:
    settings = settings or IssuerSettings()
    private = load_or_create(settings.key_file, settings.algorithm)
    ring = KeyRing([SigningKey(kid_for(private), settings.algorithm, private)])
    app = FastAPI(title="AutoDM local issuer (development only)", version="1.0.0")
    app.state.keys = ring

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        return ring.jwks()

    @app.post("/token")
    async def token(request: TokenRequest) -> TokenResponse:
        return mint(settings, ring.current, request, int(time.time()))

    def mint_for(sub: str, role: str, creator_id: UUID | None) -> str:
        request = TokenRequest.model_validate({"sub": sub, "role": role, "creator_id": creator_id})
        return mint(settings, ring.current, request, int(time.time())).access_token

    app.include_router(make_router(settings, mint_for))

    @app.post("/keys/rotate")
    async def rotate() -> dict[str, str]:
        """A new current key; the old one stays in the JWKS so its tokens stay valid."""
        return {"kid": ring.rotate(settings.algorithm).kid}

    return app
