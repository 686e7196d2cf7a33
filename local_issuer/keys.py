"""Signing keys of the local issuer and the JWKS that publishes their public halves."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

SigningPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: SigningPrivateKey

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = json.loads(RSAAlgorithm.to_jwk(public))
        else:
            jwk = json.loads(ECAlgorithm.to_jwk(public))
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def generate_key(algorithm: str) -> SigningPrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_or_create(path: Path | None, algorithm: str) -> SigningPrivateKey:
    """The key in `path` (written on first use, owner-only), or a fresh one if no path."""
    if path is None:
        return generate_key(algorithm)
    if path.exists():
        return _as_signing_key(serialization.load_pem_private_key(path.read_bytes(), None))
    key = generate_key(algorithm)
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return key


def _as_signing_key(key: PrivateKeyTypes) -> SigningPrivateKey:
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key
    raise ValueError(f"unsupported key type {type(key).__name__}")


def kid_for(key: SigningPrivateKey) -> str:
    """A kid that stays the same for a persisted key: a hash of its public key."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode().rstrip("=")


@dataclass
class KeyRing:
    """The current signing key first; older keys stay published until tokens expire."""

    keys: list[SigningKey] = field(default_factory=list)

    @property
    def current(self) -> SigningKey:
        return self.keys[0]

    def rotate(self, algorithm: str) -> SigningKey:
        private = generate_key(algorithm)
        key = SigningKey(kid_for(private), algorithm, private)
        self.keys.insert(0, key)
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}
