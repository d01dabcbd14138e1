"""CRLs (RFC 5280 section 5): entries built cheaply, the list signed by an issuer in one go.

Entries are made with ``RevokedCertificateBuilder(serial, date, extensions).build()`` directly and
share one extension list per reason code, instead of the chained ``serial_number().revocation_date()
.add_extension()`` calls that copy the builder at every step; the whole list is handed to the
CRL builder at once (``add_revoked_certificate`` in a loop is quadratic, shared/measurements.md).
Serials are trusted to be valid (they come from our own database, checked at issuance).
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca_service.authority.issuer import Issuer

_NO_EXTENSIONS: list[x509.Extension[x509.ExtensionType]] = []
_REASON_EXTENSIONS: dict[x509.ReasonFlags, list[x509.Extension[x509.ExtensionType]]] = {
    flag: [x509.Extension(x509.oid.CRLEntryExtensionOID.CRL_REASON, False, x509.CRLReason(flag))]
    for flag in x509.ReasonFlags
}

Entry = tuple[int, datetime, x509.ReasonFlags | None, datetime | None]
"""serial, revocation date, reason (None: unspecified, RFC 5280 5.3.1 omits it), invalidity date"""


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def revoked_entry(
    serial: int, revoked_at: datetime, reason: x509.ReasonFlags | None, invalidity: datetime | None
) -> x509.RevokedCertificate:
    """One CRL entry with its reason code (5.3.1) and invalidity date (5.3.2) extensions."""
    extensions = _REASON_EXTENSIONS[reason] if reason is not None else _NO_EXTENSIONS
    if invalidity is not None:
        extensions = [
            *extensions,
            x509.Extension(
                x509.oid.CRLEntryExtensionOID.INVALIDITY_DATE,
                False,
                x509.InvalidityDate(_naive_utc(invalidity)),
            ),
        ]
    return x509.RevokedCertificateBuilder(serial, _naive_utc(revoked_at), extensions).build()


def sign_crl(
    issuer: Issuer,
    number: int,
    this_update: datetime,
    next_update: datetime,
    entries: Iterable[Entry],
    user_certificates: bool = True,
) -> tuple[bytes, int]:
    """The DER CRL of ``issuer`` and its number of entries: CRL number (5.2.3), AKI (5.2.1)
    and a critical issuing distribution point (5.2.5) naming the URL of our certificates' CRL
    distribution point, so that relying parties take it as the CRL for those (user) certificates.
    With ``user_certificates=False`` (a root's CRL over CA certificates, which name no
    distribution point) the IDP is left out."""
    revoked = [revoked_entry(*e) for e in entries]
    idp = x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(issuer.crl_url)],
        relative_name=None,
        only_contains_user_certs=True,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )
    extensions: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(x509.oid.ExtensionOID.CRL_NUMBER, False, x509.CRLNumber(number)),
        x509.Extension(x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, issuer.aki),
    ]
    if user_certificates:
        extensions.append(x509.Extension(x509.oid.ExtensionOID.ISSUING_DISTRIBUTION_POINT, True, idp))
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer.certificate.subject,
        last_update=this_update,
        next_update=next_update,
        extensions=extensions,
        revoked_certificates=revoked,
    )
    return builder.sign(issuer.key, issuer.hash).public_bytes(serialization.Encoding.DER), len(revoked)


def crl_pem(der: bytes) -> bytes:
    """PEM armour around a stored DER CRL (RFC 7468 section 5), without parsing it."""
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n".encode("ascii")
