"""CSR rules (design decision 3): what a device may ask for.

Only the CSR's public key and the names it asks for (subject CN, subjectAltName) are used; every
other attribute or extension requested is ignored, because the profile decides. The names follow
RFC 8555 section 7.4: the device MAC may be in the CN, in SAN dNSName entries, or both, and every
one of them must spell the same MAC. Accepts PEM or DER.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ca_service.config import CURVE_LABELS
from ca_service.domain import MacAddress, printable
from ca_service.errors import CAError, Kind
from ca_service.policy.mac import device_mac

ALLOWED_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
PEM_CSR_MARKERS = (b"-----BEGIN CERTIFICATE REQUEST-----", b"-----BEGIN NEW CERTIFICATE REQUEST-----")
PERMANENT_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.3")  # RFC 4043
# RFC 5280 section 4.2.1.6 names of the GeneralName choices, for error details
GENERAL_NAME_LABELS: dict[type, str] = {
    x509.RFC822Name: "rfc822Name",
    x509.DNSName: "dNSName",
    x509.UniformResourceIdentifier: "uniformResourceIdentifier",
    x509.DirectoryName: "directoryName",
    x509.RegisteredID: "registeredID",
    x509.IPAddress: "iPAddress",
    x509.OtherName: "otherName",
}


@dataclass(frozen=True)
class CsrRules:
    allowed_curves: tuple[str, ...] = ("secp256r1", "secp384r1")
    min_rsa_bits: int = 2048
    max_rsa_bits: int = 8192
    rsa_public_exponent: int = 65537
    oui_allowlist: tuple[str, ...] = ()


@dataclass(frozen=True)
class CsrFacts:
    """What issuance takes from an accepted CSR."""

    mac: MacAddress
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    key_type: str  # "ec-p256", "rsa-4096" ...


@dataclass(frozen=True)
class CsrName:
    """One name a CSR asks for: where it is ("CN", "SAN dNSName" ...) and its text."""

    where: str
    text: str

    def __str__(self) -> str:
        return f"{self.where} '{printable(self.text)}'"


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse a CSR from PEM or DER; any failure is a BAD_CSR CAError.

    A CSR whose version is not v1 (RFC 2986 section 4.1 knows only version 0) is refused as
    unreadable too (cryptography raises ``InvalidVersion`` for it).
    """
    raw = data.encode() if isinstance(data, str) else data
    try:
        if raw.lstrip().startswith(b"-----"):
            if not any(m in raw for m in PEM_CSR_MARKERS):
                raise ValueError("no CSR PEM block")
            return x509.load_pem_x509_csr(raw)
        return x509.load_der_x509_csr(raw)
    except x509.InvalidVersion as exc:
        raise CAError(
            Kind.BAD_CSR,
            f"The CSR has version {exc.parsed_version + 1}; only PKCS#10 version 1 requests "
            "(RFC 2986, version field 0) are accepted.",
        ) from exc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CAError(
            Kind.BAD_CSR,
            "The CSR cannot be parsed; send one PKCS#10 request as PEM "
            "('-----BEGIN CERTIFICATE REQUEST-----') or DER.",
        ) from exc


def _permanent_identifier_value(der: bytes) -> str | None:
    """The identifierValue of an RFC 4043 PermanentIdentifier (``SEQUENCE { identifierValue
    UTF8String OPTIONAL, assigner OBJECT IDENTIFIER OPTIONAL }``), or None when it has none.
    Reads short-form DER lengths only (a MAC is 12 octets); anything else is a BAD_CSR."""
    unreadable = CAError(Kind.BAD_CSR, "The CSR's PermanentIdentifier (RFC 4043) cannot be read.")
    if len(der) < 2 or der[0] != 0x30 or der[1] != len(der) - 2:
        raise unreadable
    body = der[2:]
    if not body or body[0] != 0x0C:
        return None
    if len(body) < 2 or body[1] > 0x7F or len(body) < 2 + body[1]:
        raise unreadable
    try:
        return body[2 : 2 + body[1]].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise unreadable from exc


def requested_names(csr: x509.CertificateSigningRequest) -> list[CsrName]:
    """Every name the CSR asks to be certified: subject CNs, then subjectAltName entries.

    RFC 8555 section 7.4: a ``dns`` identifier appears in the CN, in the SAN extension request,
    or both. dNSName entries and RFC 4043 PermanentIdentifier otherNames (the form we issue) are
    names a device MAC can be spelled in; any other SAN entry (an IP address, an e-mail, a URI
    ...) asks for something this CA never certifies and is refused. Subject attributes other
    than CN and extensions other than SAN are not read (the profile decides them); an extension
    request that cannot be parsed at all makes the CSR unreadable (BAD_CSR).
    """
    try:
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError as exc:
        raise CAError(Kind.BAD_CSR, "The CSR's subject cannot be read.") from exc
    names = [
        CsrName("CN", cn.value.decode("utf-8", "replace") if isinstance(cn.value, bytes) else cn.value)
        for cn in cns
    ]
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return names
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise CAError(Kind.BAD_CSR, "The CSR's extension request cannot be read.") from exc
    for entry in san:
        if isinstance(entry, x509.DNSName):
            names.append(CsrName("SAN dNSName", entry.value))
            continue
        if isinstance(entry, x509.OtherName) and entry.type_id == PERMANENT_IDENTIFIER_OID:
            value = _permanent_identifier_value(entry.value)
            if value is not None:
                names.append(CsrName("SAN PermanentIdentifier", value))
                continue
        label = GENERAL_NAME_LABELS.get(type(entry), type(entry).__name__)
        shown = entry.type_id.dotted_string if isinstance(entry, x509.OtherName) else str(entry.value)
        raise CAError(
            Kind.BAD_IDENTIFIER,
            f"The CSR's subjectAltName asks for {label} '{printable(shown)}'; only dNSName entries "
            "(or an RFC 4043 PermanentIdentifier) that spell the device MAC are accepted.",
        )
    return names


def device_identity(
    csr: x509.CertificateSigningRequest, rules: CsrRules, expected: MacAddress | None = None
) -> MacAddress:
    """The one device MAC that the CSR names (RFC 8555 section 7.4).

    Every CN and every SAN name must be a device MAC (any spelling :meth:`MacAddress.parse`
    accepts, and the identity rules of :func:`device_mac`), and all of them the same MAC: with
    ``expected`` (an ACME order's identifier) that MAC, without it (REST issuance) one MAC they
    agree on. A CSR with no name at all is refused. Details name the offending name.
    """
    names = requested_names(csr)
    if not names:
        raise CAError(
            Kind.BAD_IDENTIFIER,
            "The CSR names no device: put the device MAC in the subject CN or in a subjectAltName "
            "dNSName, e.g. CN=7C2F80C6E5C2 (RFC 8555 section 7.4).",
        )
    macs = [(name, device_mac(name.text, rules.oui_allowlist, label=name.where)) for name in names]
    reference = expected or macs[0][1]
    for name, mac in macs:
        if mac == reference:
            continue
        if expected is not None:
            raise CAError(
                Kind.BAD_IDENTIFIER,
                f"The CSR's {name} is device {mac}, but this order is for {expected}; every CN and "
                "SAN name must be the order's MAC.",
            )
        raise CAError(
            Kind.BAD_IDENTIFIER,
            f"The CSR names two devices: {macs[0][0]} is {reference} and {name} is {mac}; every CN "
            "and SAN name must be the same device MAC.",
        )
    return reference


def key_type_of(public_key: object, rules: CsrRules) -> str:
    """Classify a public key and refuse what the rules do not allow."""
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.key_size
        if bits < rules.min_rsa_bits:
            raise CAError(
                Kind.BAD_KEY,
                f"RSA keys shorter than {rules.min_rsa_bits} bits are refused (this one has {bits}).",
            )
        if bits > rules.max_rsa_bits:
            raise CAError(Kind.BAD_KEY, f"RSA keys longer than {rules.max_rsa_bits} bits are refused.")
        exponent = public_key.public_numbers().e
        if exponent != rules.rsa_public_exponent:
            raise CAError(
                Kind.BAD_KEY,
                f"RSA keys with public exponent {exponent} are refused; the exponent must be "
                f"{rules.rsa_public_exponent}.",
            )
        return f"rsa-{bits}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        if curve not in rules.allowed_curves:
            allowed = ", ".join(CURVE_LABELS.get(c, c) for c in rules.allowed_curves)
            raise CAError(
                Kind.BAD_KEY,
                f"Elliptic curve {CURVE_LABELS.get(curve, curve)} is refused; allowed curves: {allowed}.",
            )
        return "ec-" + CURVE_LABELS.get(curve, curve).replace("-", "").lower()
    allowed = ", ".join(CURVE_LABELS.get(c, c) for c in rules.allowed_curves)
    raise CAError(
        Kind.BAD_KEY,
        f"{type(public_key).__name__.removesuffix('PublicKey').lstrip('_') or 'This'} keys are refused; "
        f"allowed: ECDSA ({allowed}) or RSA of at least {rules.min_rsa_bits} bits.",
    )


def check_csr(data: bytes | str, rules: CsrRules, expected: MacAddress | None = None) -> CsrFacts:
    """Apply every CSR rule and return the MAC and key to certify.

    Order: parse, key type and size, signature algorithm (SHA-256 or stronger; SHA-1 and MD5 are
    refused because device software >= 2.57 refuses them), self-signature, then the names
    (:func:`device_identity`: CN and SAN all the device MAC, ``expected`` when given).
    """
    csr = load_csr(data)
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CAError(Kind.BAD_KEY, "The CSR's public key cannot be read.") from exc
    key_type = key_type_of(public_key, rules)
    try:
        algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm as exc:
        raise CAError(
            Kind.BAD_SIGNATURE_ALGORITHM,
            "The CSR's signature algorithm is not supported; sign it with SHA-256 or stronger.",
        ) from exc
    if not isinstance(algorithm, ALLOWED_HASHES):
        name = algorithm.name.upper() if algorithm is not None else "an unhashed algorithm"
        raise CAError(
            Kind.BAD_SIGNATURE_ALGORITHM,
            f"The CSR is signed with {name}; only SHA-256, SHA-384 or SHA-512 signatures are "
            "accepted (device software >= 2.57 refuses SHA-1).",
        )
    if not csr.is_signature_valid:
        raise CAError(
            Kind.BAD_CSR,
            "The CSR's signature does not verify with its own public key; it was altered or "
            "signed with another key.",
        )
    mac = device_identity(csr, rules, expected)
    assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return CsrFacts(mac=mac, public_key=public_key, key_type=key_type)
