"""Encryption of card numbers and PINs at rest, and the card key used for idempotency.

Keys come from ``DISTRIBUTOR_SECRET_KEY`` (any string of 32+ characters). Two keys are
derived from it with HKDF: a Fernet key that encrypts, and an HMAC key for ``card_key``.
``DISTRIBUTOR_PREVIOUS_SECRET_KEYS`` keeps rows written under older secrets readable
and their card keys recognisable after a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from distributor.config import Settings
from distributor.errors import ConfigError, SecretUnreadable

DERIVED_KEY_BYTES = 32


def _derive(secret: str, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=DERIVED_KEY_BYTES, salt=None, info=purpose)
    return hkdf.derive(secret.encode())


@dataclass(frozen=True, kw_only=True)
class Vault:
    """Encrypts and decrypts secrets and computes card keys for one set of secrets."""

    fernet: MultiFernet
    card_key_secrets: tuple[bytes, ...]

    def encrypt(self, plaintext: str) -> bytes:
        """Encrypt under the current secret."""
        return self.fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        """Decrypt a value written under the current or any previous secret."""
        try:
            return self.fernet.decrypt(token).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "a stored secret cannot be decrypted: DISTRIBUTOR_SECRET_KEY changed "
                "without listing the old one in DISTRIBUTOR_PREVIOUS_SECRET_KEYS"
            ) from None

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt a value under the current secret."""
        return self.fernet.rotate(token)

    def card_key(self, *, issuer: str, asset_type: str, card_number: str) -> str:
        """The card's key under the current secret (hex HMAC-SHA256)."""
        return self.card_keys(issuer=issuer, asset_type=asset_type, card_number=card_number)[0]

    def card_keys(self, *, issuer: str, asset_type: str, card_number: str) -> tuple[str, ...]:
        """The card's key under the current and each previous secret, current first."""
        message = f"{issuer}|{asset_type}|{card_number}".encode()
        return tuple(
            hmac.new(secret, message, hashlib.sha256).hexdigest()
            for secret in self.card_key_secrets
        )


@lru_cache(maxsize=4)
def make_vault(secret: str, previous: tuple[str, ...] = ()) -> Vault:
    """A vault for the current ``secret`` and the ``previous`` ones, newest first."""
    if len(secret) < DERIVED_KEY_BYTES:
        raise ConfigError("DISTRIBUTOR_SECRET_KEY must be at least 32 characters")
    secrets = (secret, *previous)
    fernets = [Fernet(base64.urlsafe_b64encode(_derive(s, b"distributor fernet"))) for s in secrets]
    return Vault(
        fernet=MultiFernet(fernets),
        card_key_secrets=tuple(_derive(s, b"distributor card key") for s in secrets),
    )


def vault_from_settings(settings: Settings) -> Vault:
    """The vault for the configured secrets; ConfigError when none is set."""
    settings.require("distributor_secret_key")
    assert settings.distributor_secret_key is not None
    return make_vault(
        settings.distributor_secret_key.get_secret_value(),
        tuple(settings.distributor_previous_secret_keys),
    )
