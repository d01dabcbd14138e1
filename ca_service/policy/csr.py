"""CSR rules (design decision 3): what a device may ask for.

Only the CSR's public key and its CN are used; every other attribute or extension requested is
ignored, because the profile decides. Accepts PEM or DER.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ca_service.domain import MacAddress
from ca_service.errors import CAError, Kind
from ca_service.policy.mac import device_mac

ALLOWED_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
CURVE_LABELS = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
PEM_CSR_MARKERS = (b"-----BEGIN CERTIFICATE REQUEST-----", b"-----BEGIN NEW CERTIFICATE REQUEST-----")


@dataclass(frozen=True)
class CsrRules:
    allowed_curves: tuple[str, ...] = ("secp256r1", "secp384r1")
    min_rsa_bits: int = 2048
    max_rsa_bits: int = 8192
    oui_allowlist: tuple[str, ...] = ()


@dataclass(frozen=True)
class CsrFacts:
    """What issuance takes from an accepted CSR."""

    mac: MacAddress
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    key_type: str  # "ec-p256", "rsa-4096" ...


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Parse a CSR from PEM or DER; any failure is a BAD_CSR CAError."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if raw.lstrip().startswith(b"-----"):
            if not any(m in raw for m in PEM_CSR_MARKERS):
                raise ValueError("no CSR PEM block")
            return x509.load_pem_x509_csr(raw)
        return x509.load_der_x509_csr(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CAError(
            Kind.BAD_CSR,
            "The CSR cannot be parsed; send one PKCS#10 request as PEM "
            "('-----BEGIN CERTIFICATE REQUEST-----') or DER.",
        ) from exc


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


def check_csr(data: bytes | str, rules: CsrRules) -> CsrFacts:
    """Apply every CSR rule and return the MAC and key to certify.

    Order: parse, key type and size, signature algorithm (SHA-256 or stronger; SHA-1 and MD5 are
    refused because device software >= 2.57 refuses them), self-signature, CN as device MAC.
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
    try:
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError as exc:
        raise CAError(Kind.BAD_CSR, "The CSR's subject cannot be read.") from exc
    if len(cns) != 1:
        raise CAError(
            Kind.BAD_IDENTIFIER,
            f"The CSR subject must have exactly one CN, the device MAC (it has {len(cns)}).",
        )
    cn = cns[0].value
    cn_text = cn.decode("utf-8", "replace") if isinstance(cn, bytes) else cn
    mac = device_mac(cn_text, rules.oui_allowlist)
    assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return CsrFacts(mac=mac, public_key=public_key, key_type=key_type)
