"""The ``pkcs11:`` key store: CA keys inside a PKCS#11 token (an HSM; SoftHSM2 in tests).

A key is named by an RFC 7512 URI, for example
``pkcs11:token=ca-service;object=issuing-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/ca-service/pin``.
Keys are generated inside the token as sensitive and non-extractable; this module only ever holds
object handles. The PIN comes from the URI's ``pin-source`` (``file:<path>`` or ``env:<VAR>``),
never from the URI itself, and never appears in errors or logs.

Sessions are per process: after a fork (gunicorn workers) the library is initialised again and a
new session is opened. When signing fails (session lost, token re-initialised, library error) the
session is dropped and the caller gets ``CAError(UNAVAILABLE)``; the next use re-initialises the
library and logs in again, so the service recovers without a restart.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import unquote

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.utils import Buffer
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import KeyType as P11KeyType
from pkcs11.exceptions import NoSuchKey, NoSuchToken, PKCS11Error, UserAlreadyLoggedIn
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import encode_named_curve_parameters

from ca_service.config import Settings
from ca_service.domain import KeyType, SigningKey
from ca_service.errors import CAError, Kind

PATH_ATTRIBUTES = ("token", "serial", "object", "id", "type")
QUERY_ATTRIBUTES = ("module-path", "pin-source")
CURVES = {KeyType.EC_P256: ec.SECP256R1(), KeyType.EC_P384: ec.SECP384R1()}


@dataclass(frozen=True)
class Pkcs11Uri:
    """The parts of an RFC 7512 URI that this store uses (section 2.3)."""

    token: str | None
    serial: str | None
    object: str | None
    id: bytes | None
    module_path: str
    pin_source: str | None

    @classmethod
    def parse(cls, uri: str) -> Pkcs11Uri:
        """Parse ``pkcs11:<path>[?<query>]``: path attributes separated by ``;``, query attributes
        by ``&``, values percent-decoded (RFC 7512 section 2.3). ``pin-value`` is refused: a PIN
        belongs in a pin-source, not in a URI that is stored and shown."""
        scheme, _, rest = uri.partition(":")
        if scheme.lower() != "pkcs11":
            raise CAError(Kind.MALFORMED, "A PKCS#11 key URI starts with 'pkcs11:'.")
        path, _, query = rest.partition("?")
        path_attrs = _attributes(path, ";", PATH_ATTRIBUTES)
        query_attrs = _attributes(query, "&", (*QUERY_ATTRIBUTES, "pin-value"))
        if "pin-value" in query_attrs:
            raise CAError(
                Kind.MALFORMED,
                "A PKCS#11 key URI must not carry the PIN (pin-value); use pin-source=file:<path> "
                "or pin-source=env:<VARIABLE>.",
            )
        if path_attrs.get("type", "private") != "private":
            raise CAError(Kind.MALFORMED, "A CA key URI names a private key (type=private or no type).")
        if not (path_attrs.get("token") or path_attrs.get("serial")):
            raise CAError(
                Kind.MALFORMED, "A PKCS#11 key URI names its token: token=<label> or serial=<serial>."
            )
        if not (path_attrs.get("object") or path_attrs.get("id")):
            raise CAError(
                Kind.MALFORMED, "A PKCS#11 key URI names its key: object=<label> or id=<%xx bytes>."
            )
        module = query_attrs.get("module-path")
        if not module:
            raise CAError(
                Kind.MALFORMED,
                "A PKCS#11 key URI names its module: module-path=/usr/lib/softhsm/libsofthsm2.so.",
            )
        raw_id = path_attrs.get("id")
        return cls(
            token=path_attrs.get("token"),
            serial=path_attrs.get("serial"),
            object=path_attrs.get("object"),
            id=raw_id.encode("latin-1") if raw_id is not None else None,
            module_path=module,
            pin_source=query_attrs.get("pin-source"),
        )

    @property
    def label(self) -> str:
        """The URI without its query (no module path, no pin-source): fit for errors and logs."""
        parts = [f"token={self.token}" if self.token else f"serial={self.serial}"]
        if self.object:
            parts.append(f"object={self.object}")
        if self.id:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        return "pkcs11:" + ";".join(parts)

    def read_pin(self) -> str | None:
        """The user PIN from ``pin-source``: ``file:<path>`` (first line) or ``env:<VARIABLE>``.
        Errors name the source, never its content."""
        source = self.pin_source
        if source is None:
            return None
        if source.startswith("env:"):
            name = source[4:]
            value = os.environ.get(name)
            if value is None:
                raise CAError(
                    Kind.UNAVAILABLE, f"The PIN variable {name[:64]} named by pin-source is not set."
                )
            return value
        if source.startswith("file:"):
            path = Path(source[5:].removeprefix("//"))
            try:
                lines = path.read_text().splitlines()
            except OSError as exc:
                raise CAError(
                    Kind.UNAVAILABLE, f"The PIN file {path} named by pin-source cannot be read."
                ) from exc
            return lines[0] if lines else ""
        raise CAError(Kind.MALFORMED, "pin-source is file:<path> or env:<VARIABLE>.")


def _attributes(text: str, separator: str, allowed: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, text.split(separator)):
        name, eq, value = part.partition("=")
        if not eq or name not in allowed:
            raise CAError(
                Kind.MALFORMED,
                f"Unsupported PKCS#11 URI attribute '{name[:30]}'; allowed: {', '.join(allowed)}.",
            )
        if name in out:
            raise CAError(Kind.MALFORMED, f"The PKCS#11 URI attribute '{name}' appears twice.")
        # ``id`` is raw bytes (%xx), the others UTF-8 text.
        out[name] = unquote(value, encoding="latin-1" if name == "id" else "utf-8")
    return out


class _Module:
    """One loaded PKCS#11 library in this process. ``generation`` counts initialisations: a
    session opened under an older generation is dead (C_Finalize closes every session)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = -1
        self.generation = 0
        self.lib: Any = None

    def ready(self) -> Any:
        if self.pid != os.getpid():  # new process (or first use): the parent's state is not ours
            self.reinitialize()
        return self.lib

    def reinitialize(self) -> None:
        """C_Finalize then C_Initialize: drops every session of this process, makes the library
        rescan its slots (a re-initialised or re-attached token)."""
        try:
            if self.lib is None:
                self.lib = pkcs11.lib(self.path)
            try:
                self.lib.finalize()
            except PKCS11Error:
                pass  # already finalised or inherited from a parent process
            self.lib.initialize()
        except PKCS11Error as exc:
            raise CAError(Kind.UNAVAILABLE, "The PKCS#11 module cannot be initialised.") from exc
        self.pid = os.getpid()
        self.generation += 1


_LOCK = threading.RLock()  # one PKCS#11 caller at a time per process: sessions are not thread-safe
_MODULES: dict[str, _Module] = {}
_SESSIONS: dict[tuple[str, str | None, str | None, str | None], _Session] = {}


def _module(path: str) -> _Module:
    if path not in _MODULES:
        if not Path(path).is_file():
            raise CAError(Kind.UNAVAILABLE, f"The PKCS#11 module {path} does not exist.")
        _MODULES[path] = _Module(path)
    return _MODULES[path]


class _Session:
    """The logged-in session of this process to one token, re-opened when it is lost."""

    def __init__(self, uri: Pkcs11Uri) -> None:
        self.uri = uri
        self.module = _module(uri.module_path)
        self.session: Any = None
        self.generation = -1
        self.pid = -1
        self.failed_at: int | None = None  # module generation when the last failure happened

    def get(self) -> Any:
        """An open session, opening (or re-opening) one when needed."""
        module = self.module
        module.ready()
        if self.failed_at == module.generation:
            module.reinitialize()  # the failure happened on the current initialisation
        if self.session is None or self.generation != module.generation or self.pid != os.getpid():
            self._open()
        return self.session

    def _open(self) -> None:
        self.session = None
        token = self._token()
        try:
            try:
                session = token.open(rw=True, user_pin=self.uri.read_pin())
            except UserAlreadyLoggedIn:  # login is per process, and this one is logged in
                session = token.open(rw=True)
        except PKCS11Error as exc:
            self.failed_at = self.module.generation
            raise CAError(
                Kind.UNAVAILABLE,
                f"Cannot log in to the token of {self.uri.label} ({type(exc).__name__}); "
                "check the PIN in its pin-source.",
            ) from exc
        self.session = session
        self.generation, self.pid, self.failed_at = self.module.generation, os.getpid(), None

    def _token(self) -> Any:
        criteria: dict[str, Any] = {"token_label": self.uri.token} if self.uri.token else {}
        if self.uri.serial:
            criteria["token_serial"] = self.uri.serial.encode()
        for attempt in range(2):
            try:
                return self.module.lib.get_token(**criteria)
            except NoSuchToken as exc:
                if attempt:
                    self.failed_at = self.module.generation
                    raise CAError(Kind.UNAVAILABLE, f"No PKCS#11 token matches {self.uri.label}.") from exc
                self.module.reinitialize()  # the library lists only tokens present at C_Initialize
            except PKCS11Error as exc:
                self.failed_at = self.module.generation
                raise CAError(
                    Kind.UNAVAILABLE, f"The PKCS#11 token of {self.uri.label} is not reachable."
                ) from exc
        raise AssertionError("unreachable")

    def drop(self) -> None:
        """Forget the session after a failure; the next :meth:`get` re-initialises the module
        (SoftHSM2 and others rescan their tokens only then) and logs in again."""
        self.failed_at = self.module.generation
        try:
            if self.session is not None:
                self.session.close()
        except PKCS11Error:
            pass
        self.session = None

    def fail(self, exc: PKCS11Error, action: str, uri: Pkcs11Uri) -> NoReturn:
        """Drop the session after ``exc`` and raise the UNAVAILABLE error callers see."""
        self.drop()
        raise CAError(
            Kind.UNAVAILABLE,
            f"The key store cannot {action} with {uri.label} ({type(exc).__name__}); "
            "the PKCS#11 session is re-opened on the next request.",
        ) from exc


def _session_for(uri: Pkcs11Uri) -> _Session:
    key = (uri.module_path, uri.token, uri.serial, uri.pin_source)
    if key not in _SESSIONS:
        _SESSIONS[key] = _Session(uri)
    return _SESSIONS[key]


def _find(session: Any, uri: Pkcs11Uri, object_class: ObjectClass) -> Any:
    criteria: dict[str, Any] = {"object_class": object_class}
    if uri.object:
        criteria["label"] = uri.object
    if uri.id:
        criteria["id"] = uri.id
    return session.get_key(**criteria)


class TokenKey:
    """A private key in a token, found again by its URI whenever the session was re-opened."""

    def __init__(self, uri: Pkcs11Uri) -> None:
        self.uri = uri
        self.link = _session_for(uri)
        self._handle: Any = None
        self._generation = -1

    def sign(self, data: bytes, mechanism: Mechanism) -> bytes:
        with _LOCK:
            session = self.link.get()
            try:
                if self._handle is None or self._generation != self.link.generation:
                    self._handle = _find(session, self.uri, ObjectClass.PRIVATE_KEY)
                    self._generation = self.link.generation
                return bytes(self._handle.sign(data, mechanism=mechanism))
            except NoSuchKey as exc:
                self._handle = None
                self.link.fail(exc, "find the key", self.uri)
            except PKCS11Error as exc:
                self._handle = None
                self.link.fail(exc, "sign", self.uri)


class Pkcs11EcKey(ec.EllipticCurvePrivateKey):
    """An ECDSA key in a token. ``sign`` hashes here and has the token sign the digest
    (CKM_ECDSA); the token's raw r||s becomes the DER ``Ecdsa-Sig-Value`` (RFC 5480 section 2.2
    via RFC 3279 section 2.2.3)."""

    def __init__(self, token_key: TokenKey, public: ec.EllipticCurvePublicKey) -> None:
        self._key = token_key
        self._public = public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise CAError(Kind.INTERNAL, "PKCS#11 EC keys sign with ECDSA only.")
        digest = _digest(bytes(data), signature_algorithm.algorithm)
        raw = self._key.sign(digest, Mechanism.ECDSA)
        half = len(raw) // 2
        r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        return utils.encode_dss_signature(r, s)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise CAError(Kind.INTERNAL, "CA keys in a PKCS#11 token only sign.")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise CAError(Kind.INTERNAL, "A key in a PKCS#11 token cannot be exported.")

    def private_bytes(self, *args: Any, **kwargs: Any) -> bytes:
        raise CAError(Kind.INTERNAL, "A key in a PKCS#11 token cannot be exported.")

    def __copy__(self) -> Pkcs11EcKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11EcKey:
        return self


RSA_MECHANISMS = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}


class Pkcs11RsaKey(rsa.RSAPrivateKey):
    """An RSA key in a token; signs RSASSA-PKCS1-v1_5 with SHA-2 (RFC 8017 section 8.2) through
    CKM_SHA256_RSA_PKCS and its siblings."""

    def __init__(self, token_key: TokenKey, public: rsa.RSAPublicKey) -> None:
        self._key = token_key
        self._public = public

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        mechanism = RSA_MECHANISMS.get(getattr(algorithm, "name", ""))
        if padding.name != "EMSA-PKCS1-v1_5" or mechanism is None:
            raise CAError(Kind.INTERNAL, "PKCS#11 RSA keys sign PKCS#1 v1.5 with SHA-256/384/512 only.")
        return self._key.sign(bytes(data), mechanism)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        raise CAError(Kind.INTERNAL, "CA keys in a PKCS#11 token only sign.")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise CAError(Kind.INTERNAL, "A key in a PKCS#11 token cannot be exported.")

    def private_bytes(self, *args: Any, **kwargs: Any) -> bytes:
        raise CAError(Kind.INTERNAL, "A key in a PKCS#11 token cannot be exported.")

    def __copy__(self) -> Pkcs11RsaKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11RsaKey:
        return self


def _digest(data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> bytes:
    if isinstance(algorithm, utils.Prehashed):
        return data
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _public_key(public: Any) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The public half as a cryptography object, from the token's public key object."""
    if public.key_type == P11KeyType.RSA:
        n = int.from_bytes(public[Attribute.MODULUS], "big")
        e = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    params = bytes(public[Attribute.EC_PARAMS])
    curve = next((c for c in CURVES.values() if encode_named_curve_parameters(c.name) == params), None)
    if curve is None:
        raise CAError(Kind.UNAVAILABLE, "The token key is on a curve other than P-256 or P-384.")
    point = bytes(public[Attribute.EC_POINT])
    if len(point) != 1 + 2 * ((curve.key_size + 7) // 8):
        point = point[2:]  # CKA_EC_POINT wrapped in a DER OCTET STRING (short form up to P-384)
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)


def _wrap(token_key: TokenKey, public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> SigningKey:
    if isinstance(public, rsa.RSAPublicKey):
        return Pkcs11RsaKey(token_key, public)
    return Pkcs11EcKey(token_key, public)


class Pkcs11KeyStore:
    """Keys in a PKCS#11 token, named by RFC 7512 URIs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def create(self, uri: str, key_type: KeyType) -> SigningKey:
        """Generate a key pair inside the token: private key sensitive, never extractable, sign
        only; public key stored beside it with the same label and CKA_ID."""
        parsed = Pkcs11Uri.parse(uri)
        with _LOCK:
            link = _session_for(parsed)
            session = link.get()
            try:
                try:
                    _find(session, parsed, ObjectClass.PRIVATE_KEY)
                except NoSuchKey:
                    pass
                else:
                    raise CAError(
                        Kind.CONFLICT, f"A key already exists at {parsed.label}; refusing to overwrite it."
                    )
                common = {
                    "id": parsed.id or secrets.token_bytes(8),
                    "label": parsed.object,
                    "store": True,
                    "public_template": {
                        Attribute.VERIFY: True,
                        Attribute.ENCRYPT: False,
                        Attribute.WRAP: False,
                    },
                    "private_template": {
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.PRIVATE: True,
                        Attribute.SIGN: True,
                        Attribute.DECRYPT: False,
                        Attribute.UNWRAP: False,
                        Attribute.DERIVE: False,
                    },
                }
                if key_type in CURVES:
                    params = session.create_domain_parameters(
                        P11KeyType.EC,
                        {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVES[key_type].name)},
                        local=True,
                    )
                    public, _ = params.generate_keypair(**common)
                else:
                    bits = int(key_type.value.split("-")[1])
                    public, _ = session.generate_keypair(P11KeyType.RSA, bits, **common)
                return _wrap(TokenKey(parsed), _public_key(public))
            except PKCS11Error as exc:
                link.fail(exc, "generate a key", parsed)

    def load(self, uri: str) -> SigningKey:
        parsed = Pkcs11Uri.parse(uri)
        with _LOCK:
            link = _session_for(parsed)
            session = link.get()
            try:
                public = _find(session, parsed, ObjectClass.PUBLIC_KEY)
                return _wrap(TokenKey(parsed), _public_key(public))
            except NoSuchKey as exc:
                link.drop()  # a token swapped or re-initialised under us: look again next time
                raise CAError(Kind.UNAVAILABLE, f"The token holds no key at {parsed.label}.") from exc
            except PKCS11Error as exc:
                link.fail(exc, "load the key", parsed)


class Pkcs11WrappingKey:
    """An AES-256 key inside the token that encrypts secrets the service reads back (device
    keys, EAB HMAC keys) with CKM_AES_GCM (NIST SP 800-38D): random 96-bit nonce || ciphertext ||
    tag, ``context`` bound as associated data. The key never leaves the token."""

    def __init__(self, uri: str) -> None:
        self.uri = Pkcs11Uri.parse(uri)
        self.link = _session_for(self.uri)
        self.label = "pkcs11:" + self.uri.label

    @classmethod
    def create(cls, uri: str) -> Pkcs11WrappingKey:
        """Generate the AES key in the token: sensitive, never extractable, encrypt/decrypt only."""
        key = cls(uri)
        with _LOCK:
            session = key.link.get()
            try:
                try:
                    _find(session, key.uri, ObjectClass.SECRET_KEY)
                except NoSuchKey:
                    pass
                else:
                    raise CAError(
                        Kind.CONFLICT, f"A key already exists at {key.uri.label}; refusing to overwrite it."
                    )
                session.generate_key(
                    P11KeyType.AES,
                    256,
                    id=key.uri.id or secrets.token_bytes(8),
                    label=key.uri.object,
                    store=True,
                    template={
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.PRIVATE: True,
                        Attribute.ENCRYPT: True,
                        Attribute.DECRYPT: True,
                        Attribute.WRAP: False,
                        Attribute.UNWRAP: False,
                        Attribute.SIGN: False,
                    },
                )
            except PKCS11Error as exc:
                key.link.fail(exc, "generate a wrapping key", key.uri)
        return key

    def _crypt(self, encrypt: bool, data: bytes, nonce: bytes, context: bytes) -> bytes:
        params = GCMParams(nonce, context, 128)
        with _LOCK:
            session = self.link.get()
            try:
                secret = _find(session, self.uri, ObjectClass.SECRET_KEY)
                if encrypt:
                    return bytes(secret.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params))
                return bytes(secret.decrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params))
            except NoSuchKey as exc:
                self.link.fail(exc, "find the wrapping key", self.uri)
            except PKCS11Error as exc:
                self.link.fail(exc, "encrypt" if encrypt else "decrypt (wrong key or altered data)", self.uri)

    def wrap(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._crypt(True, plaintext, nonce, context)

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        return self._crypt(False, blob[12:], blob[:12], context)
