"""OCSP responses (RFC 6960 section 4.2) signed by an issuer.

The responder (revocation/) decides the status from the database; this module only matches a
request's CertID to an issuer and builds and signs the single response.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp

from ca_service.authority.issuer import Issuer

CERT_ID_HASHES: tuple[hashes.HashAlgorithm, ...] = (
    hashes.SHA1(),  # noqa: S303 - RFC 6960 CertIDs use SHA-1 by default; it is a lookup key here
    hashes.SHA256(),
    hashes.SHA384(),
    hashes.SHA512(),
)


def _public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents that issuerKeyHash covers (RFC 6960 4.1.1)."""
    public = cert.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(public, rsa.RSAPublicKey):
        return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise TypeError("issuing CA keys are EC or RSA")


def cert_id_keys(cert: x509.Certificate) -> list[tuple[str, bytes, bytes]]:
    """(hash name, issuerNameHash, issuerKeyHash) of ``cert`` for every CertID hash we accept."""
    name_der = cert.subject.public_bytes()
    key_bits = _public_key_bits(cert)
    out = []
    for algorithm in CERT_ID_HASHES:
        name_hash, key_hash = hashes.Hash(algorithm), hashes.Hash(algorithm)
        name_hash.update(name_der)
        key_hash.update(key_bits)
        out.append((algorithm.name, name_hash.finalize(), key_hash.finalize()))
    return out


def sign_response(
    issuer: Issuer,
    request: ocsp.OCSPRequest,
    status: ocsp.OCSPCertStatus,
    this_update: datetime,
    next_update: datetime,
    revoked_at: datetime | None = None,
    reason: x509.ReasonFlags | None = None,
    *,
    by_name: bool = False,
    include_certificate: bool = False,
) -> bytes:
    """A successful response for the single CertID of ``request``, signed by ``issuer`` itself,
    echoing the request's nonce (RFC 8954). The responder ID is the hash of the issuer's key, or
    with ``by_name`` its subject (RFC 6960 4.2.2.3: GnuTLS finds a signer in its trust list
    only by name); ``include_certificate`` puts the issuer certificate into ``certs`` (4.2.1),
    for clients that know only the root."""
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            request.issuer_name_hash,
            request.issuer_key_hash,
            request.serial_number,
            request.hash_algorithm,
            status,
            this_update,
            next_update,
            revoked_at,
            reason,
        )
        .responder_id(
            ocsp.OCSPResponderEncoding.NAME if by_name else ocsp.OCSPResponderEncoding.HASH,
            issuer.certificate,
        )
    )
    if include_certificate:
        builder = builder.certificates([issuer.certificate])
    try:
        nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
        builder = builder.add_extension(nonce, critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(issuer.key, issuer.hash).public_bytes(serialization.Encoding.DER)


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned error response (RFC 6960 section 2.3)."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
