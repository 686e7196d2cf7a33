"""Access tokens at rest: Fernet (AES-128-CBC + HMAC) with key rotation via MultiFernet.

The first configured key encrypts; every key decrypts, so a new key is added in front,
`autodm tokens reencrypt` rewrites the rows, and the old key is then dropped.
"""

from __future__ import annotations

import time

from cryptography.fernet import Fernet, MultiFernet

from shared.platform.settings import Settings


class TokenCipher:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one token encryption key is required")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenCipher:
        return cls([k.get_secret_value() for k in settings.token_encryption_keys])

    def encrypt(self, token: str) -> bytes:
        return self._fernet.encrypt(token.encode())

    def decrypt(self, blob: bytes) -> str:
        return self._fernet.decrypt(blob).decode()

    def rotate(self, blob: bytes) -> bytes:
        """Re-encrypt under the current (first) key."""
        return self._fernet.rotate(blob)


class DecryptedTokens:
    """Decrypted tokens kept for `ttl_s`, keyed by their ciphertext.

    A sender decrypts the same few accounts' tokens for every DM; Fernet's HMAC check and
    AES setup were ~10 % of the Instagram sender's CPU (docs/BENCHMARKS.md). Keyed by the
    ciphertext, a refreshed or re-encrypted token is a new entry at once; the TTL bounds
    how long a plaintext token outlives its use, and a dropped key stops decrypting."""

    def __init__(self, cipher: TokenCipher, ttl_s: float = 60.0, max_entries: int = 10_000) -> None:
        self._cipher = cipher
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._tokens: dict[bytes, tuple[str, float]] = {}

    def decrypt(self, blob: bytes) -> str:
        now = time.monotonic()
        cached = self._tokens.get(blob)
        if cached is not None and cached[1] > now:
            return cached[0]
        if len(self._tokens) >= self._max_entries:
            self._tokens.clear()  # rare (that many accounts in one TTL): start over
        token = self._cipher.decrypt(blob)
        self._tokens[blob] = (token, now + self._ttl_s)
        return token
