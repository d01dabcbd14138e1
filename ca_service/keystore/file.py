"""The ``file:`` key store: CA keys as encrypted PKCS#8 files.

``file:keys/issuing.pem`` is relative to the service home, ``file:///etc/ca/issuing.pem`` is
absolute. A key is an EncryptedPrivateKeyInfo (RFC 5958 section 3) sealed with PBES2 (RFC 8018
section 6.2) whose key derivation is scrypt (RFC 7914 section 7), memory-hard, and whose cipher is
AES-256-CBC: cryptography and ``openssl pkey`` read it. The scrypt cost follows
``Settings.kdf_cost`` when a file is sealed (:data:`PKCS8_SCRYPT`) and is read from the file,
so reading never depends on the setting; a file below the standard cost opens only where the
test-only minimal cost is permitted. Files sealed by earlier versions (PBES2 with
PBKDF2-HMAC-SHA256 at 2048 rounds) still open, are sealed again with scrypt when first loaded,
and ``ca-service keys reseal`` does it for every key.

The passphrase is ``key_passphrase`` (``CA_SERVICE_KEY_PASSPHRASE``, ``..._FILE``, the systemd
credential ``key-passphrase``; see :mod:`ca_service.config`) or, for development, a secret
generated into ``<home>/keys/passphrase``. A passphrase read from a file inside the home is
logged as a warning wherever keys are opened: a copy of the home is then the CA. A passphrase an
operator chose must be strong to seal keys (:func:`check_strength`). It never appears in errors.
"""

from __future__ import annotations

import base64
import logging
import math
import secrets
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from urllib.parse import unquote, urlparse

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ca_service.config import Settings
from ca_service.domain import KeyType, SigningKey
from ca_service.errors import CAError, Kind
from ca_service.files import write_private
from ca_service.keystore import CredentialsRefused

log = logging.getLogger("ca_service.keystore")

# scrypt (N, r, p) of CA key files per Settings.kdf_cost. "standard" stays within the 32 MiB the
# openssl CLI allows itself (N = 2^14, r = 8: 16 MiB) and makes up for it with p = 4: about the
# work of N = 2^15, p = 1, some 0.2 s per seal or load. "minimal" is for the test suite only.
PKCS8_SCRYPT = {"standard": (2**14, 8, 4), "minimal": (2**4, 8, 1)}
SALT_BYTES = 16
PEM_LABEL = "ENCRYPTED PRIVATE KEY"
OID_PBES2 = "1.2.840.113549.1.5.13"  # RFC 8018 appendix A.4
OID_SCRYPT = "1.3.6.1.4.1.11591.4.11"  # RFC 7914 section 7
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"  # NIST CSOR

MIN_PASSPHRASE_CHARS = 16
MIN_PASSPHRASE_BITS = 48.0
WEAK_PASSPHRASE = (
    f"The key passphrase is too weak to seal CA keys: it needs at least {MIN_PASSPHRASE_CHARS} "
    "characters, varied, without runs such as 'aaaa' or '1234' (e.g. 'openssl rand -base64 32')."
)


# -- the PKCS#8 envelope (DER, X.690) ------------------------------------------------------------
def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    first, second, *rest = (int(p) for p in dotted.split("."))
    body = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        while arc := arc >> 7:
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _read(data: bytes, at: int = 0) -> tuple[int, bytes, int]:
    """One DER element at ``at``: (tag, contents, offset after it). Raises ValueError."""
    tag, first = data[at], data[at + 1]
    at += 2
    if first & 0x80:
        count = first & 0x7F
        size = int.from_bytes(data[at : at + count], "big")
        at += count
    else:
        size = first
    if at + size > len(data):
        raise ValueError("truncated DER")
    return tag, data[at : at + size], at + size


def _children(body: bytes) -> list[tuple[int, bytes]]:
    out, at = [], 0
    while at < len(body):
        tag, contents, at = _read(body, at)
        out.append((tag, contents))
    return out


def _oid_text(contents: bytes) -> str:
    arcs, value = [contents[0] // 40, contents[0] % 40], 0
    for octet in contents[1:]:
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(str(a) for a in arcs)


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def seal_pkcs8(key: SigningKey, passphrase: bytes, kdf_cost: str) -> bytes:
    """``key`` as a PEM EncryptedPrivateKeyInfo: PBES2 with scrypt at ``kdf_cost`` and AES-256-CBC
    (RFC 8018 section 6.2.1, RFC 7914 section 7), salt and IV fresh from the OS CSPRNG."""
    n, r, p = PKCS8_SCRYPT[kdf_cost]
    salt, iv = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(16)
    plain = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(_derive(passphrase, salt, n, r, p)), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    kdf = _seq(_oid(OID_SCRYPT), _seq(_tlv(0x04, salt), _int(n), _int(r), _int(p), _int(32)))
    algorithm = _seq(_oid(OID_PBES2), _seq(kdf, _seq(_oid(OID_AES256_CBC), _tlv(0x04, iv))))
    der = _seq(algorithm, _tlv(0x04, encrypted))
    text = base64.b64encode(der).decode("ascii")
    body = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"-----BEGIN {PEM_LABEL}-----\n{body}\n-----END {PEM_LABEL}-----\n".encode()


def scrypt_cost(pem: bytes) -> tuple[int, int, int] | None:
    """The scrypt (N, r, p) a key file is sealed with, or None when it is sealed otherwise (the
    PBKDF2 of earlier versions) or cannot be read as an EncryptedPrivateKeyInfo."""
    try:
        body = pem.decode("ascii").split(f"-----BEGIN {PEM_LABEL}-----")[1].split("-----END")[0]
        data = base64.b64decode("".join(body.split()))
        _, info, _ = _read(data)
        (_, algorithm), _ = _children(info)
        (_, pbes2), (_, params) = _children(algorithm)
        if _oid_text(pbes2) != OID_PBES2:
            return None
        (_, kdf), _ = _children(params)
        (_, kdf_oid), (_, kdf_params) = _children(kdf)
        if _oid_text(kdf_oid) != OID_SCRYPT:
            return None
        _, (_, n), (_, r), (_, p), *_ = _children(kdf_params)
        return int.from_bytes(n, "big"), int.from_bytes(r, "big"), int.from_bytes(p, "big")
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _work(cost: tuple[int, int, int]) -> int:
    n, r, p = cost
    return n * r * p


# -- passphrases -----------------------------------------------------------------------------------
def check_strength(passphrase: str) -> None:
    """Refuse an operator's passphrase that is short or made of runs: at least
    MIN_PASSPHRASE_CHARS characters, about MIN_PASSPHRASE_BITS bits by its character
    frequencies, and at most half of its neighbouring characters equal or consecutive."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise CAError(Kind.MALFORMED, WEAK_PASSPHRASE)
    counts = Counter(passphrase)
    bits = -sum(c * math.log2(c / len(passphrase)) for c in counts.values())
    runs = sum(abs(ord(a) - ord(b)) <= 1 for a, b in pairwise(passphrase))
    if bits < MIN_PASSPHRASE_BITS or runs * 2 > len(passphrase) - 1:
        raise CAError(Kind.MALFORMED, WEAK_PASSPHRASE)


@dataclass(frozen=True)
class PassphraseSource:
    """Where the key passphrase comes from: ``path`` is the file it was read from (None: the
    environment or the settings themselves); ``generated`` is the development default."""

    path: Path | None
    generated: bool

    def inside(self, home: Path) -> bool:
        if self.path is None:
            return False
        return self.path.resolve().is_relative_to(home.resolve())

    def describe(self) -> str:
        return str(self.path) if self.path else "the environment"


_warned: set[Path] = set()


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

    @property
    def generated_file(self) -> Path:
        return self.settings.keys_dir / "passphrase"

    def source(self) -> PassphraseSource:
        if self.settings.key_passphrase:
            origin = self.settings.key_passphrase_origin
            return PassphraseSource(Path(origin) if origin else None, generated=False)
        return PassphraseSource(self.generated_file, generated=True)

    def passphrase(self) -> bytes:
        """The passphrase (the development default is generated on first use, 0600). Warns,
        once per process, when it lies in a file inside the home."""
        source = self.source()
        if source.path is not None and source.inside(self.settings.home) and source.path not in _warned:
            _warned.add(source.path)
            log.warning(
                "The CA key passphrase is read from a file inside the service home: a copy of the "
                "home folder opens the CA keys. Give it as CA_SERVICE_KEY_PASSPHRASE_FILE outside "
                "the home or as the systemd credential key-passphrase.",
                extra={"passphrase_file": str(source.path), "home": str(self.settings.home)},
            )
        if self.settings.key_passphrase:
            return self.settings.key_passphrase.encode()
        if not self.generated_file.exists():
            write_private(self.generated_file, secrets.token_urlsafe(32).encode())
        return self.generated_file.read_bytes().strip()

    def require_outside_home(self) -> None:
        """Refuse (production ``ca-service init``) a passphrase that is generated into the home
        or read from a file inside it."""
        source = self.source()
        if source.generated or source.inside(self.settings.home):
            where = "generated into the home" if source.generated else f"read from {source.path}"
            raise CAError(
                Kind.MALFORMED,
                f"The CA key passphrase would be {where}: a copy of the home folder would then be the "
                "CA. Give it in CA_SERVICE_KEY_PASSPHRASE, in a file outside the home "
                "(CA_SERVICE_KEY_PASSPHRASE_FILE) or as the systemd credential key-passphrase; "
                "'ca-service init --dev' keeps a generated one in the home for development.",
            )

    def sealing_passphrase(self) -> bytes:
        """The passphrase to seal new keys with: an operator's must pass :func:`check_strength`
        (the generated one has 256 bits)."""
        if self.settings.key_passphrase:
            check_strength(self.settings.key_passphrase)
        return self.passphrase()

    def create(self, uri: str, key_type: KeyType) -> SigningKey:
        path = self.path_of(uri)
        if path.exists():
            raise CAError(Kind.CONFLICT, f"A key already exists at {uri}; refusing to overwrite it.")
        passphrase = self.sealing_passphrase()
        key = key_type.generate()
        write_private(path, seal_pkcs8(key, passphrase, self.settings.kdf_cost))
        return key

    def load(self, uri: str) -> SigningKey:
        """The key at ``uri``. A file not sealed with scrypt (the PBKDF2 of earlier versions) is
        sealed again in place, atomically; a file that cannot be written is left as it is, with
        a warning."""
        path, key, cost = self._open(uri)
        if cost is None:
            self._reseal(uri, path, key)
        return key

    def reseal(self, uri: str) -> bool:
        """Seal the key at ``uri`` again with scrypt at the current cost when it is sealed the
        old way or more cheaply (``ca-service keys reseal``); True when the file was rewritten.
        A key file that is gone (a retired CA's, removed) is skipped."""
        if not self.path_of(uri).exists():
            return False
        path, key, cost = self._open(uri)
        if cost is not None and _work(cost) >= _work(PKCS8_SCRYPT[self.settings.kdf_cost]):
            return False
        return self._reseal(uri, path, key)

    def _open(self, uri: str) -> tuple[Path, SigningKey, tuple[int, int, int] | None]:
        """(file, key, its scrypt cost or None) of the key at ``uri``."""
        path = self.path_of(uri)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CAError(Kind.UNAVAILABLE, f"The key file for {uri} cannot be read.") from exc
        cost = scrypt_cost(data)
        cheap = cost is not None and _work(cost) < _work(PKCS8_SCRYPT["standard"])
        if cheap and self.settings.kdf_cost != "minimal":
            raise CAError(
                Kind.UNAVAILABLE,
                f"The key file for {uri} is sealed at the test-only minimal KDF cost; a deployment "
                "never uses such a file.",
            )
        try:
            key = serialization.load_pem_private_key(data, self.passphrase())
        except (ValueError, TypeError) as exc:
            raise CredentialsRefused(
                f"The key file for {uri} cannot be decrypted; check CA_SERVICE_KEY_PASSPHRASE."
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise CAError(Kind.UNAVAILABLE, f"The key at {uri} is not an ECDSA or RSA key.")
        return path, key, cost

    def _reseal(self, uri: str, path: Path, key: SigningKey) -> bool:
        try:
            write_private(path, seal_pkcs8(key, self.passphrase(), self.settings.kdf_cost))
        except OSError as exc:
            log.warning(
                "CA key file not sealed with scrypt and not writable: run 'ca-service keys reseal'",
                extra={"key_uri": uri, "error": exc.strerror},
            )
            return False
        log.warning("CA key file sealed again with scrypt", extra={"key_uri": uri})
        return True
