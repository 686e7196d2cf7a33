"""Access tokens at rest: Fernet (AES-128-CBC + HMAC) with key rotation via MultiFernet.

The first configured key encrypts; every key decrypts, so a new key is added in front,
`autodm tokens reencrypt` rewrites the rows, and the old key is then dropped.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, MultiFernet

from shared.settings import Settings


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
