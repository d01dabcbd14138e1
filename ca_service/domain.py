"""Small frozen value types shared by every part of the service."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ca_service.errors import CAError, Kind

_SEPARATORS = re.compile(r"[:\-.]")
_MAC_CHARACTERS = re.compile(r"[0-9A-Fa-f:\-.]+")  # ASCII only: no ligatures, NBSP, control characters
_HEX12 = re.compile(r"[0-9A-F]{12}")
_AROUND = " \t\r\n"  # white space a MAC may be wrapped in (CSV cells, form fields)


@dataclass(frozen=True, order=True)
class MacAddress:
    """A device MAC in canonical form: 12 uppercase hex digits, no separators.

    :meth:`parse` accepts ``7c:2f:80:c6:e5:c2``, ``7C-2F-80-C6-E5-C2``, ``7c2f.80c6.e5c2``,
    ``7C2F80C6E5C2`` and the like: ASCII hex digits and the separators ``:`` ``-`` ``.`` only,
    optionally wrapped in ASCII white space. It checks only the spelling; whether a MAC may
    identify a device (not multicast, not all zeros) is policy (``ca_service.policy.mac``).
    """

    value: str

    def __post_init__(self) -> None:
        if not _HEX12.fullmatch(self.value):
            raise CAError(Kind.BAD_IDENTIFIER, "A MAC address is 12 hexadecimal digits.")

    @classmethod
    def parse(cls, text: str) -> MacAddress:
        if not isinstance(text, str) or len(text) > 64:
            raise CAError(Kind.BAD_IDENTIFIER, "A MAC address is 12 hexadecimal digits.")
        stripped = text.strip(_AROUND)
        groups = _SEPARATORS.split(stripped)
        # Separators must split the digits evenly: 6x2 (colon/dash), 3x4 (dot) or none.
        evenly = len(groups) == 1 or (
            {len(g) for g in groups} == {12 // len(groups)} and len(groups) in (3, 6)
        )
        digits = "".join(groups).upper()
        if not evenly or not _MAC_CHARACTERS.fullmatch(stripped) or not _HEX12.fullmatch(digits):
            raise CAError(
                Kind.BAD_IDENTIFIER,
                f"'{printable(text)}' is not a MAC address; write it as 12 hex digits, "
                "optionally separated as 7C:2F:80:C6:E5:C2, 7C-2F-80-C6-E5-C2 or 7c2f.80c6.e5c2.",
            )
        return cls(digits)

    @property
    def is_multicast(self) -> bool:
        return bool(int(self.value[:2], 16) & 1)

    @property
    def is_zero(self) -> bool:
        return self.value == "000000000000"

    @property
    def is_broadcast(self) -> bool:
        return self.value == "FFFFFFFFFFFF"

    def __str__(self) -> str:
        return self.value


def printable(text: str, limit: int = 40) -> str:
    """A short, printable echo of untrusted input for error details."""
    clean = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return clean + ("..." if len(text) > limit else "")


def escape_controls(text: str) -> str:
    """``text`` fit for an operator's terminal: control and format characters (ESC, BEL, CR,
    bidirectional overrides, line separators ...) shown as ``\\xNN``/``\\uNNNN`` escapes, so
    foreign data (certificate names, labels) cannot move the cursor, retitle the window or
    hide text. Nothing is cut off (unlike :func:`printable`)."""
    return "".join(
        c.encode("unicode_escape").decode("ascii")
        if unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")
        else c
        for c in text
    )


def in_utc(value: datetime, what: str) -> datetime:
    """``value`` in UTC (design decision 9). A naive time, or one whose UTC form falls outside
    the years 1 to 9999 (``0001-01-01T00:00:00+01:00``, ``9999-12-31T23:59:59-01:00``), is
    MALFORMED, naming ``what``, instead of an overflow deeper down."""
    if value.tzinfo is None:
        raise CAError(Kind.MALFORMED, f"{what} needs a time zone (e.g. 2026-11-01T00:00:00Z).")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise CAError(Kind.MALFORMED, f"{what} is outside the years 1 to 9999 in UTC.") from exc


def serial_text(value: int) -> str:
    """A certificate serial (RFC 5280 section 4.1.2.2) as uppercase hex with an even number of
    digits: what ``openssl x509 -serial`` prints."""
    text = format(value, "X")
    return text if len(text) % 2 == 0 else "0" + text


def parse_serial(text: str) -> str:
    """Accept ``0A:1B...``, ``0a1b...``, ``0x0A1B`` and return the canonical :func:`serial_text`."""
    raw = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    if not raw or len(raw) > 42 or any(c not in "0123456789abcdef" for c in raw):
        raise CAError(
            Kind.MALFORMED,
            f"'{printable(text, 50)}' is not a certificate serial; give it in hex as openssl prints it.",
        )
    return serial_text(int(raw, 16))


class Role(Enum):
    """What an API token may do."""

    ADMIN = "admin"
    PROVISIONER = "provisioner"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's identity, role and MAC scopes (prefixes of canonical MACs).
    ``certificate`` is set (a serial) for a requester that proved possession of that
    certificate's key (ACME revocation, RFC 8555 section 7.6): it may act on that one only.
    ``token_id`` or ``acme_account`` name the credential that rate limits count against."""

    name: str
    role: Role
    scopes: tuple[str, ...] = ()
    token_id: int | None = None
    certificate: str | None = None
    acme_account: int | None = None

    @property
    def label(self) -> str:
        return f"{self.role.value}:{self.name}"

    @property
    def mac_prefixes(self) -> tuple[str, ...] | None:
        """The MAC prefixes a listing for this principal is limited to (None: every MAC)."""
        return self.scopes if self.role is Role.PROVISIONER else None


SYSTEM = Principal(name="system", role=Role.ADMIN)


class KeyType(Enum):
    """Key algorithms the service can make or accept: the one list every part uses."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"

    @classmethod
    def parse(cls, text: str, kind: Kind = Kind.MALFORMED) -> KeyType:
        """The key type named ``text``; an unknown name is a CAError of ``kind`` naming them all."""
        try:
            return cls(text)
        except ValueError as exc:
            allowed = ", ".join(k.value for k in cls)
            raise CAError(
                kind, f"Unknown key type '{printable(str(text), 20)}'; use one of {allowed}."
            ) from exc

    @classmethod
    def of(cls, public_key: object) -> KeyType:
        """The type of an EC or RSA public key (RSA sizes outside 2048..4096 are clamped)."""
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            return cls.EC_P384 if public_key.curve.key_size >= 384 else cls.EC_P256
        if isinstance(public_key, rsa.RSAPublicKey):
            return cls(f"rsa-{max(2048, min(public_key.key_size, 4096)) // 1024 * 1024}")
        raise CAError(Kind.BAD_KEY, "Only ECDSA and RSA keys are supported.")

    def generate(self) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        """A fresh key of this type in process memory (file keys, keys made for devices)."""
        if self is KeyType.EC_P256:
            return ec.generate_private_key(ec.SECP256R1())
        if self is KeyType.EC_P384:
            return ec.generate_private_key(ec.SECP384R1())
        return rsa.generate_private_key(public_exponent=65537, key_size=int(self.value[4:]))


SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
"""What signs for a CA: a software key, or a key store's object that cryptography's builders can
use like one (design decision 5)."""

KEY_FORMATS = ("pkcs8", "traditional")  # PEM of keys made for devices: BEGIN PRIVATE KEY / BEGIN EC|RSA ...


@dataclass(frozen=True)
class Profile:
    """Everything about a certificate that is not the device's choice (design decision 3)."""

    name: str
    validity_days: int | None = None  # None: the site's ``validity_days`` (Settings fills it in)
    backdate_seconds: int = 300
    organization: str | None = None
    organizational_unit: str | None = None
    country: str | None = None
    client_auth: bool = True
    server_auth: bool = True
    san_permanent_identifier: bool = True  # the MAC as RFC 4043 PermanentIdentifier otherName
    # the MAC as SAN dNSName: the ordered ACME identifier (RFC 8555 section 7.4) and the name TLS
    # verifiers match when the device serves the certificate on SIP-TLS (RFC 9525: never the CN)
    san_dns_name: bool = True
    description: str = ""
    # Delivery of keys made by the service (provisioning): "pkcs8" (BEGIN PRIVATE KEY) or
    # "traditional" (BEGIN EC PRIVATE KEY / BEGIN RSA PRIVATE KEY); leaf only or leaf + chain.
    key_format: str = "pkcs8"
    cert_chain: bool = False

    @property
    def validity(self) -> timedelta:
        if self.validity_days is None:
            raise CAError(Kind.INTERNAL, f"Profile '{self.name}' has no validity; build it through Settings.")
        return timedelta(days=self.validity_days)

    def __post_init__(self) -> None:
        if self.key_format not in KEY_FORMATS:
            raise CAError(
                Kind.MALFORMED,
                f"Profile '{self.name}': key_format must be one of {', '.join(KEY_FORMATS)}.",
            )


class CertificateStatus(Enum):
    VALID = "valid"
    REVOKED = "revoked"


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate the service issued and committed, with its chain (leaf first excluded)."""

    serial: str
    mac: str
    profile: str
    issuer: str
    not_before: datetime
    not_after: datetime
    certificate_pem: str
    chain_pem: str
    status: CertificateStatus = CertificateStatus.VALID
    fingerprint_sha256: str = ""
    key_type: str = ""
    revoked_at: datetime | None = None
    revocation_reason: str | None = None
    replaces: str | None = None
    replaced_by: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None


class IssuerRole(Enum):
    ROOT = "root"
    ISSUING = "issuing"


class IssuerState(Enum):
    """Life of one of our CAs. Issuing CAs: ``pending`` (key made, waiting for its certificate)
    -> ``active`` (signs new certificates) -> ``retiring`` (replaced; still signs revocation data
    for what it issued) -> ``retired`` (its last certificate has expired); from any state with a
    certificate, ``revoked`` (by its root: it signs nothing any more). Roots are ``active`` (key
    in our key store) or ``external`` (offline, certificate only)."""

    PENDING = "pending"
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"
    EXTERNAL = "external"
    REVOKED = "revoked"

    @property
    def signs(self) -> bool:
        """Whether an issuing CA in this state signs (new certificates or revocation data)."""
        return self in (IssuerState.ACTIVE, IssuerState.RETIRING)


@dataclass(frozen=True)
class IssuerRecord:
    """One of our CAs as stored: names, state, certificate and the URI of its key."""

    id: int
    name: str
    role: IssuerRole
    state: IssuerState
    key_uri: str
    certificate_pem: str | None
    parent_id: int | None
    subject: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    checked_at: datetime | None = None  # the last successful 'ca-service issuer check'
    revoked_at: datetime | None = None  # revoked by its root (state ``revoked``)
    revocation_reason: str | None = None
