"""Secrets the service must read back (EAB HMAC keys), sealed with AES-256-GCM.

The sealing key is derived (HKDF-SHA256) from the file key store's passphrase, so a copy of the
database alone does not reveal the secrets. ``purpose`` is bound as associated data.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ca_service.config import Settings
from ca_service.errors import CAError, Kind
from ca_service.keystore.file import FileKeyStore


def _key(settings: Settings) -> bytes:
    passphrase = FileKeyStore(settings).passphrase()
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"ca-service sealed secrets v1").derive(passphrase)


def seal(settings: Settings, secret: bytes, purpose: str) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_key(settings)).encrypt(nonce, secret, purpose.encode())


def unseal(settings: Settings, sealed: bytes, purpose: str) -> bytes:
    try:
        return AESGCM(_key(settings)).decrypt(sealed[:12], sealed[12:], purpose.encode())
    except (InvalidTag, ValueError) as exc:
        raise CAError(
            Kind.UNAVAILABLE, "A sealed secret cannot be opened; check CA_SERVICE_KEY_PASSPHRASE."
        ) from exc
