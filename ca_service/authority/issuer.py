"""Issuers and the device certificate profile (RFC 5280 section 4.2, design decision 3).

An :class:`Issuer` pairs a CA certificate with a signing key from the key store. It precomputes
what is the same for every certificate it signs (AKI, CRL distribution point, AIA), so signing a
device certificate builds only the per-device parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ca_service.domain import MacAddress, Profile, SigningKey
from ca_service.errors import CAError, Kind

PERMANENT_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.3")  # RFC 4043


def permanent_identifier(mac: MacAddress) -> x509.OtherName:
    """RFC 4043 PermanentIdentifier ::= SEQUENCE { identifierValue UTF8String OPTIONAL, ... }
    carrying the canonical MAC, DER-encoded by hand (12 ASCII octets, short-form lengths)."""
    value = mac.value.encode("ascii")
    utf8 = b"\x0c" + bytes([len(value)]) + value
    return x509.OtherName(PERMANENT_IDENTIFIER_OID, b"\x30" + bytes([len(utf8)]) + utf8)


def signature_hash(key: SigningKey | x509.Certificate) -> hashes.SHA256 | hashes.SHA384:
    """SHA-384 for P-384 (and larger) EC keys, SHA-256 otherwise."""
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


@dataclass(frozen=True)
class CaUrls:
    """Where relying parties find a CA's CRL and its certificate: what the certificates it signs
    point at (RFC 5280 4.2.1.13 cRLDistributionPoints, 4.2.2.1 caIssuers)."""

    crl: str
    certificate: str

    @classmethod
    def of(cls, public_url: str, ca_name: str) -> CaUrls:
        base = public_url.rstrip("/")
        return cls(f"{base}/crl/{ca_name}.crl", f"{base}/ca/issuers/{ca_name}.crt")


@dataclass
class Issuer:
    """A CA that signs: its certificate and its key (from any key store). Certificates and
    chains for readers come from ``ca_service.issuers.directory``, which needs no key."""

    name: str
    certificate: x509.Certificate
    key: SigningKey
    public_url: str
    _aki: x509.AuthorityKeyIdentifier = field(init=False, repr=False)
    _crl_dp: x509.CRLDistributionPoints = field(init=False, repr=False)
    _aia: x509.AuthorityInformationAccess = field(init=False, repr=False)

    def __post_init__(self) -> None:
        base = self.public_url.rstrip("/")
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            self._aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
        except x509.ExtensionNotFound:
            self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.certificate.public_key()  # type: ignore[arg-type]
            )
        urls = CaUrls.of(self.public_url, self.name)
        self._crl_dp = x509.CRLDistributionPoints(
            [x509.DistributionPoint([x509.UniformResourceIdentifier(urls.crl)], None, None, None)]
        )
        self._aia = x509.AuthorityInformationAccess(
            [
                x509.AccessDescription(
                    x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(f"{base}/ocsp")
                ),
                x509.AccessDescription(
                    x509.AuthorityInformationAccessOID.CA_ISSUERS,
                    x509.UniformResourceIdentifier(urls.certificate),
                ),
            ]
        )
        self.hash = signature_hash(self.certificate)

    def sign(self, data: bytes | memoryview) -> bytes:
        """A signature over ``data`` as cryptography's builders make it with this key and hash:
        ECDSA (RFC 5758 section 3.2) or RSASSA-PKCS1-v1_5 (RFC 8017 section 8.2); raises on a
        key store failure."""
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return self.key.sign(data, ec.ECDSA(self.hash))
        if isinstance(self.key, rsa.RSAPrivateKey):
            # typed as bytes, but cryptography (and our PKCS#11 key) take any buffer
            return self.key.sign(data, padding.PKCS1v15(), self.hash)  # type: ignore[arg-type]
        raise CAError(Kind.UNAVAILABLE, f"The key of issuer {self.name} is neither ECDSA nor RSA.")

    def self_test(self) -> None:
        """Sign and verify a fixed message: proves the key store can sign with this key and
        that the key matches the certificate (raises on any failure)."""
        message = b"ca-service signing self-test"
        public = self.certificate.public_key()
        signature = self.sign(message)
        if isinstance(self.key, ec.EllipticCurvePrivateKey) and isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(self.hash))
        elif isinstance(self.key, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, padding.PKCS1v15(), self.hash)
        else:
            raise CAError(Kind.UNAVAILABLE, f"The key of issuer {self.name} does not match its certificate.")

    @property
    def aki(self) -> x509.AuthorityKeyIdentifier:
        """The authority key identifier of what this issuer signs (certificates and CRLs)."""
        return self._aki

    @property
    def crl_url(self) -> str:
        return CaUrls.of(self.public_url, self.name).crl

    def sign_device_certificate(
        self,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        mac: MacAddress,
        profile: Profile,
        serial: int,
        now: datetime | None = None,
    ) -> x509.Certificate:
        """Build and sign a device certificate: subject CN=<MAC> (+ profile O/OU/C), validity
        from the profile with notBefore backdated, never beyond the issuer's own notAfter.

        The subjectAltName carries the canonical MAC as a dNSName (``profile.san_dns_name``: the
        identifier an ACME client ordered, RFC 8555 section 7.4, and the DNS-ID a TLS verifier
        matches when the device serves this certificate on SIP-TLS: RFC 9525 verifiers never
        read the CN) and as an RFC 4043 PermanentIdentifier (``profile.san_permanent_identifier``);
        with neither, there is no SAN. Nothing else from the CSR enters the certificate."""
        now = now or datetime.now(UTC)
        not_before = now - timedelta(seconds=profile.backdate_seconds)
        not_after = min(now + profile.validity, self.certificate.not_valid_after_utc)
        key_usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        usages = []
        if profile.client_auth:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if profile.server_auth:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(device_subject(mac, profile))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._aki, critical=False)
            .add_extension(self._crl_dp, critical=False)
            .add_extension(self._aia, critical=False)
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        san = device_san(mac, profile)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(self.key, self.hash)


def device_san(mac: MacAddress, profile: Profile) -> list[x509.GeneralName]:
    """The subjectAltName entries of a device certificate (RFC 5280 section 4.2.1.6): the MAC
    as dNSName and as PermanentIdentifier, each when the profile asks for it."""
    names: list[x509.GeneralName] = []
    if profile.san_dns_name:
        names.append(x509.DNSName(mac.value))
    if profile.san_permanent_identifier:
        names.append(permanent_identifier(mac))
    return names


def device_subject(mac: MacAddress, profile: Profile) -> x509.Name:
    attrs = []
    if profile.country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, profile.country))
    if profile.organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, profile.organization))
    if profile.organizational_unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, profile.organizational_unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, mac.value))
    return x509.Name(attrs)
