"""The key-wrapping key: encrypts secrets the service must read back (device private keys, ACME
EAB HMAC keys) at rest. ``wrapping_key_uri`` names an AES key in a PKCS#11 token (see
``keystore.pkcs11.Pkcs11WrappingKey``); when it is empty, the ``file:`` key store's key is used:

A random 256-bit key, made once at ``<home>/keys/wrapping.key`` (mode 0600). The file itself is
sealed like the other file keys: AES-256-GCM under a key derived with scrypt (RFC 7914) from the
key store passphrase, so a copy of the home folder (a backup, a stolen disk) without the
passphrase - which may come from ``CA_SERVICE_KEY_PASSPHRASE`` rather than the disk - does not
yield it. The scrypt parameters follow ``Settings.kdf_cost`` when the file is made and are named
by the file's format marker, so reading never depends on the setting; a file sealed at the
test-only ``minimal`` cost opens only where that cost is permitted.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ca_service.config import Settings
from ca_service.errors import CAError, Kind
from ca_service.files import write_private
from ca_service.keystore import scheme_of
from ca_service.keystore.file import FileKeyStore

MAGIC = b"CASWK1"  # format marker of the sealed file (scrypt at the standard cost)
# format marker -> (kdf_cost, scrypt n, r, p); the marker is also the seal's associated data
SEALS = {
    MAGIC: ("standard", 2**15, 8, 1),  # 32 MiB, about 0.1 s
    b"CASWT1": ("minimal", 2**4, 8, 1),  # test suite only (Settings.kdf_cost)
}
MARKER_OF = {cost: marker for marker, (cost, *_) in SEALS.items()}
NONCE_BYTES = 12
SALT_BYTES = 16
KEY_BYTES = 32


@dataclass(frozen=True)
class WrappingKey:
    """A 256-bit AES key and its public label (a fingerprint; never the key)."""

    label: str
    key: bytes = field(repr=False)

    def wrap(self, plaintext: bytes, context: bytes) -> bytes:
        """AES-256-GCM (NIST SP 800-38D): random 96-bit nonce || ciphertext || tag. ``context`` is
        bound as associated data, so a blob moved to another row does not open."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, plaintext, context)

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        try:
            return AESGCM(self.key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context)
        except (InvalidTag, ValueError) as exc:
            raise CAError(
                Kind.INTERNAL, "A stored secret does not open with the wrapping key (wrong row or key)."
            ) from exc


def _kdf(passphrase: bytes, salt: bytes, marker: bytes) -> bytes:
    _, n, r, p = SEALS[marker]
    return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(passphrase)


def _create_once(path: Path, data: bytes) -> None:
    """Write ``path`` (0600) unless it exists: a hard link never replaces a file, so of two
    workers making the key at once, one wins and both then read the winner's key."""
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.new")
    write_private(tmp, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


class Wrapper(Protocol):
    """What callers need of a wrapping key: AES-256-GCM with ``context`` as associated data."""

    @property
    def label(self) -> str: ...

    def wrap(self, plaintext: bytes, context: bytes) -> bytes: ...

    def unwrap(self, blob: bytes, context: bytes) -> bytes: ...


def wrapping_key(settings: Settings) -> Wrapper:
    """The configured wrapping key: the token's AES key for a ``pkcs11:`` URI, else the file key."""
    if not settings.wrapping_key_uri:
        return file_wrapping_key(settings)
    if scheme_of(settings.wrapping_key_uri) != "pkcs11":
        raise CAError(Kind.MALFORMED, "wrapping_key_uri must be a pkcs11: URI (or empty for the file key).")
    return _pkcs11_module().Pkcs11WrappingKey(settings.wrapping_key_uri)  # type: ignore[no-any-return]


def ensure_wrapping_key(settings: Settings) -> Wrapper:
    """Make the configured wrapping key unless it exists (``ca-service init``): a token's AES key
    is generated once here, never implicitly by a worker; the file key is made on first use."""
    key = wrapping_key(settings)
    try:
        key.wrap(b"ca-service wrapping self-test", b"self-test")
    except CAError:
        if not settings.wrapping_key_uri:
            raise
        return _pkcs11_module().Pkcs11WrappingKey.create(settings.wrapping_key_uri)  # type: ignore[no-any-return]
    return key


def _pkcs11_module() -> Any:
    # imported only when configured, like the pkcs11 signing backend
    return importlib.import_module("ca_service.keystore.pkcs11")


def file_wrapping_key(settings: Settings) -> WrappingKey:
    """The file store's wrapping key, created on first use and loaded once per process (its
    scrypt unsealing is deliberately slow)."""
    return _load(settings.keys_dir / "wrapping.key", FileKeyStore(settings).passphrase(), settings.kdf_cost)


@functools.lru_cache(maxsize=4)
def _load(path: Path, passphrase: bytes, kdf_cost: str) -> WrappingKey:
    if not path.exists():
        key, salt, nonce = (
            secrets.token_bytes(KEY_BYTES),
            secrets.token_bytes(SALT_BYTES),
            secrets.token_bytes(NONCE_BYTES),
        )
        marker = MARKER_OF[kdf_cost]
        sealed = AESGCM(_kdf(passphrase, salt, marker)).encrypt(nonce, key, marker)
        _create_once(path, marker + salt + nonce + sealed)
    data = path.read_bytes()
    marker = data[: len(MAGIC)]
    if marker not in SEALS:
        raise CAError(Kind.UNAVAILABLE, "The wrapping key file is not in a known format.")
    if SEALS[marker][0] == "minimal" and kdf_cost != "minimal":
        raise CAError(
            Kind.UNAVAILABLE,
            "The wrapping key file is sealed at the test-only minimal KDF cost; a deployment never "
            "uses such a file.",
        )
    salt = data[len(MAGIC) : len(MAGIC) + SALT_BYTES]
    nonce = data[len(MAGIC) + SALT_BYTES : len(MAGIC) + SALT_BYTES + NONCE_BYTES]
    try:
        key = AESGCM(_kdf(passphrase, salt, marker)).decrypt(
            nonce, data[len(MAGIC) + SALT_BYTES + NONCE_BYTES :], marker
        )
    except InvalidTag as exc:
        raise CAError(
            Kind.UNAVAILABLE, "The wrapping key cannot be decrypted; check CA_SERVICE_KEY_PASSPHRASE."
        ) from exc
    return WrappingKey(label="file:" + hashlib.sha256(key).hexdigest()[:16], key=key)
