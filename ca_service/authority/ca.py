"""Creating CA certificates: a root, an issuing CA under it, or a CSR for an external root
(RFC 5280 sections 4.2.1.9 basicConstraints and 4.2.1.3 keyUsage); verifying what an external
root signed (issuing CA certificates, CRLs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ca_service.authority.issuer import CaUrls, signature_hash
from ca_service.authority.serials import random_serial
from ca_service.domain import SigningKey
from ca_service.errors import CAError, Kind

CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def parse_subject(text: str) -> x509.Name:
    """Parse an OpenSSL-style DN such as ``/C=DE/O=Example/CN=Issuing CA`` or RFC 4514
    ``CN=Issuing CA,O=Example,C=DE``."""
    try:
        if text.startswith("/"):
            parts = [p for p in text.split("/") if p]
            rfc4514 = ",".join(reversed(parts))
        else:
            rfc4514 = text
        name = x509.Name.from_rfc4514_string(rfc4514)
    except ValueError as exc:
        raise CAError(
            Kind.MALFORMED, f"Cannot parse subject '{text[:80]}'; use /C=DE/O=Org/CN=Name."
        ) from exc
    if not name.get_attributes_for_oid(NameOID.COMMON_NAME):
        raise CAError(Kind.MALFORMED, "A CA subject needs a CN.")
    return name


def _ca_builder(
    subject: x509.Name, issuer: x509.Name, public_key: object, days: int, path_length: int | None
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(random_serial())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
    )


def create_root(key: SigningKey, subject: x509.Name, days: int = 7300) -> x509.Certificate:
    """A self-signed root CA certificate, pathLen 1."""
    builder = _ca_builder(subject, subject, key.public_key(), days, path_length=1)
    return builder.sign(key, signature_hash(key))


def create_issuing(
    root_key: SigningKey,
    root: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    subject: x509.Name,
    urls: CaUrls,
    days: int = 1825,
) -> x509.Certificate:
    """An issuing CA certificate signed by ``root``, pathLen 0, never outliving the root, with
    a CRL distribution point (``urls`` of the root: its CRL) and AIA caIssuers (the root
    certificate), so that
    clients requiring revocation data for every CA in the path find it (RFC 5280 6.3)."""
    days = min(days, max(1, (root.not_valid_after_utc - datetime.now(UTC)).days))
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    crl_dp = x509.DistributionPoint([x509.UniformResourceIdentifier(urls.crl)], None, None, None)
    aia = x509.AccessDescription(
        x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(urls.certificate)
    )
    builder = (
        _ca_builder(subject, root.subject, public_key, days, path_length=0)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.CRLDistributionPoints([crl_dp]), critical=False)
        .add_extension(x509.AuthorityInformationAccess([aia]), critical=False)
    )
    return builder.sign(root_key, signature_hash(root_key))


def issuing_csr(key: SigningKey, subject: x509.Name) -> x509.CertificateSigningRequest:
    """A CSR for the issuing CA, to be signed by an external (offline) root."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .sign(key, signature_hash(key))
    )


def verify_signed_by(cert: x509.Certificate, parent: x509.Certificate) -> None:
    """Check that ``parent`` is a CA and signed ``cert`` (names and signature)."""
    _require_ca(parent)
    try:
        cert.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CAError(Kind.CONFLICT, "The certificate was not signed by the given root.") from exc


def _require_ca(cert: x509.Certificate) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound as exc:
        raise CAError(Kind.CONFLICT, "The certificate has no basicConstraints; it is not a CA.") from exc
    if not bc.ca:
        raise CAError(Kind.CONFLICT, "The certificate is not a CA certificate (basicConstraints CA:FALSE).")


def check_issuing_import(issuing: x509.Certificate, root: x509.Certificate, key: SigningKey) -> None:
    """Before activating an externally signed issuing CA: it must match our key, be a CA,
    chain to ``root`` and be within its validity period."""
    if issuing.public_key() != key.public_key():
        raise CAError(
            Kind.CONFLICT, "The issuing certificate does not match the issuing key in the key store."
        )
    _require_ca(issuing)
    verify_signed_by(issuing, root)
    now = datetime.now(UTC)
    if not issuing.not_valid_before_utc <= now <= issuing.not_valid_after_utc:
        raise CAError(Kind.CONFLICT, "The issuing certificate is not within its validity period.")
