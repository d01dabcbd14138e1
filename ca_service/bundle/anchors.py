"""Reading certificates and checking a trust anchor before import (RFC 5280 sections 4.1.2.5,
4.2.1.9). Pure functions: no I/O.

A trust anchor must be a CA certificate (basicConstraints CA:TRUE, or a version 1 self-signed
certificate as OpenSSL treats them), parse cleanly and be within its validity period. Weak keys
and SHA-1 signatures are warnings on a root (its own signature protects nothing) and refusals on an
intermediate CA.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from ca_service.errors import CAError, Kind

PURPOSES = ("gigaset-factory", "gigaset-technologies", "other")  # what an admin may import
PRIVATE = "private"  # our own root and issuing CAs, included automatically
ALL_PURPOSES = (*PURPOSES, PRIVATE)
EXPIRY_WARNING = timedelta(days=90)
CLOCK_SKEW = timedelta(minutes=5)  # a CA made a moment ago on a host whose clock is ahead
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
MAX_CERTIFICATES = 8  # a device chain or one CA file; more is not a certificate upload


def load_certificates(data: bytes | str) -> list[x509.Certificate]:
    """Every certificate in ``data``: one or more PEM blocks (text around them is ignored) or one
    DER certificate. Anything else is a MALFORMED CAError."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if b"-----BEGIN" in raw:
            certs = x509.load_pem_x509_certificates(raw)
        else:
            certs = [x509.load_der_x509_certificate(raw)]
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CAError(
            Kind.MALFORMED,
            "No X.509 certificate could be read; send PEM ('-----BEGIN CERTIFICATE-----') or DER.",
        ) from exc
    if len(certs) > MAX_CERTIFICATES:
        raise CAError(Kind.MALFORMED, f"At most {MAX_CERTIFICATES} certificates are read from one upload.")
    return certs


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lowercase hex (``openssl x509 -fingerprint -sha256`` without colons)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def key_description(cert: x509.Certificate) -> tuple[str, int, bool]:
    """(type, bits, weak): ``("rsa", 2048, False)``, ``("ec-p256", 256, False)`` ..."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size, key.key_size < MIN_RSA_BITS
    if isinstance(key, ec.EllipticCurvePublicKey):
        label = {"secp256r1": "ec-p256", "secp384r1": "ec-p384", "secp521r1": "ec-p521"}
        return (
            label.get(key.curve.name, f"ec-{key.curve.name}"),
            key.curve.key_size,
            key.curve.key_size < MIN_EC_BITS,
        )
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256, False
    if isinstance(key, ed448.Ed448PublicKey):
        return "ed448", 456, False
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size, True
    return "unknown", 0, True


def signature_name(cert: x509.Certificate) -> str:
    """The signature algorithm as OpenSSL names it, e.g. ``sha256WithRSAEncryption``."""
    oid = cert.signature_algorithm_oid
    return getattr(oid, "_name", None) or oid.dotted_string


def signature_hash(cert: x509.Certificate) -> str | None:
    """``sha1``, ``sha256`` ... or None when the algorithm has no separate hash (Ed25519)."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return "unsupported"
    return algorithm.name if algorithm else None


def is_weak_signature(cert: x509.Certificate) -> bool:
    return signature_hash(cert) in ("sha1", "md5", "unsupported")


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and signed_by(cert, cert)


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name and key signed ``cert``. Unlike cryptography's
    ``verify_directly_issued_by`` this also checks SHA-1 signatures: old device certificates
    use them and we must say so rather than fail to read them."""
    if cert.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    try:
        algorithm = cert.signature_hash_algorithm
        params = cert.signature_algorithm_parameters
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, params, algorithm)  # type: ignore[arg-type]
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, params)  # type: ignore[arg-type]
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    """basicConstraints CA:TRUE, or a version 1 self-signed certificate (RFC 5280 section 6.1.4 (k)
    leaves v1 to local policy; OpenSSL accepts it as a root)."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return cert.version is x509.Version.v1 and is_self_signed(cert)


@dataclass(frozen=True)
class AnchorFacts:
    """What import takes from an accepted CA certificate."""

    certificate: x509.Certificate
    fingerprint: str
    subject: str
    not_before: datetime
    not_after: datetime
    self_signed: bool
    warnings: tuple[str, ...]

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


def check_anchor(cert: x509.Certificate, now: datetime) -> AnchorFacts:
    """Accept ``cert`` as a trust anchor or raise BAD_CERTIFICATE naming the rule it breaks."""
    subject = cert.subject.rfc4514_string()
    if not is_ca(cert):
        raise CAError(
            Kind.BAD_CERTIFICATE,
            f"'{subject[:120]}' is not a CA certificate (no basicConstraints CA:TRUE); import the CA "
            "that issued it, not a device certificate.",
        )
    if cert.not_valid_after_utc <= now:
        raise CAError(
            Kind.BAD_CERTIFICATE,
            f"The CA certificate '{subject[:120]}' expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
            "expired anchors are refused.",
        )
    if cert.not_valid_before_utc > now + CLOCK_SKEW:
        raise CAError(
            Kind.BAD_CERTIFICATE,
            f"The CA certificate '{subject[:120]}' is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d}; import it once it is.",
        )
    self_signed = is_self_signed(cert)
    warnings: list[str] = []
    kind, bits, weak_key = key_description(cert)
    if weak_key:
        warning = (
            f"Weak {kind} key of {bits} bits (at least RSA {MIN_RSA_BITS} or EC {MIN_EC_BITS} is wanted)."
        )
        if not self_signed:
            raise CAError(Kind.BAD_KEY, "Intermediate CA refused: " + warning)
        warnings.append(warning)
    if is_weak_signature(cert):
        warning = f"Signed with {signature_name(cert)}; device software >= 2.57 refuses SHA-1 signatures."
        if not self_signed:
            raise CAError(Kind.BAD_SIGNATURE_ALGORITHM, "Intermediate CA refused: " + warning)
        warnings.append(warning + " On a root this signature is not checked by verifiers.")
    if not self_signed:
        warnings.append(
            "Not a root: verifiers such as nginx and openssl also need the CA that issued it "
            f"('{cert.issuer.rfc4514_string()[:120]}') in the bundle."
        )
    if cert.not_valid_after_utc - now < EXPIRY_WARNING:
        warnings.append(f"Expires within 90 days, on {cert.not_valid_after_utc:%Y-%m-%d}.")
    return AnchorFacts(
        certificate=cert,
        fingerprint=fingerprint(cert),
        subject=subject,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        self_signed=self_signed,
        warnings=tuple(warnings),
    )


def check_purpose(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise CAError(
            Kind.MALFORMED,
            f"Unknown purpose '{purpose[:40]}'; use one of {', '.join(PURPOSES)} "
            f"('{PRIVATE}' is reserved for this service's own CAs).",
        )
    return purpose


def check_label(label: str) -> str:
    clean = label.strip()
    if not clean or len(clean) > 128 or not clean.isprintable():
        raise CAError(Kind.MALFORMED, "A label is 1 to 128 printable characters.")
    return clean
