"""The ``file:`` key store: encrypted PKCS#8 PEM files.

``file:keys/issuing.pem`` is relative to the service home, ``file:///etc/ca/issuing.pem`` is
absolute. The passphrase comes from ``CA_SERVICE_KEY_PASSPHRASE`` or, when unset, from
``<home>/keys/passphrase`` (created with mode 0600 on first use). It never appears in errors.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import unquote, urlparse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ca_service.config import Settings
from ca_service.domain import KeyType, SigningKey
from ca_service.errors import CAError, Kind
from ca_service.files import write_private
from ca_service.keystore import CredentialsRefused


class FileKeyStore:
    """Keys as passphrase-encrypted PKCS#8 PEM files under the service home."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def path_of(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise CAError(Kind.MALFORMED, "A file key URI starts with 'file:'.")
        raw = unquote(parsed.path if parsed.netloc in ("", "localhost") else "")
        if not raw:
            raise CAError(Kind.MALFORMED, "A file key URI names a path, e.g. file:keys/issuing.pem.")
        path = Path(raw)
        return path if path.is_absolute() else self.settings.home / path

    def passphrase(self) -> bytes:
        if self.settings.key_passphrase:
            return self.settings.key_passphrase.encode()
        pfile = self.settings.keys_dir / "passphrase"
        if not pfile.exists():
            write_private(pfile, secrets.token_urlsafe(32).encode())
        return pfile.read_bytes().strip()

    def create(self, uri: str, key_type: KeyType) -> SigningKey:
        path = self.path_of(uri)
        if path.exists():
            raise CAError(Kind.CONFLICT, f"A key already exists at {uri}; refusing to overwrite it.")
        key = key_type.generate()
        # PKCS#8 PBES2 with AES-256-CBC (cryptography's best available). Its PBKDF2 round count
        # is modest, so the default passphrase is a generated 256-bit secret, not a word.
        encryption = serialization.BestAvailableEncryption(self.passphrase())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        write_private(path, pem)
        return key

    def load(self, uri: str) -> SigningKey:
        path = self.path_of(uri)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CAError(Kind.UNAVAILABLE, f"The key file for {uri} cannot be read.") from exc
        try:
            key = serialization.load_pem_private_key(data, self.passphrase())
        except (ValueError, TypeError) as exc:
            raise CredentialsRefused(
                f"The key file for {uri} cannot be decrypted; check CA_SERVICE_KEY_PASSPHRASE."
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise CAError(Kind.UNAVAILABLE, f"The key at {uri} is not an ECDSA or RSA key.")
        return key
