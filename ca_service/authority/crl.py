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
from ca_service.errors import CAError, Kind

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


def read_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL from PEM or DER bytes (a file an operator hands over)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise CAError(Kind.MALFORMED, "The file is not a CRL (PEM or DER).") from exc


def check_crl_of(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> int:
    """Check that ``ca`` issued ``crl`` (issuer name, AKI when present, signature: RFC 5280
    6.3.3 (f) and (g)) and that it is a complete CRL with a number (5.2.3) and a nextUpdate;
    returns its CRL number. A refusal names what does not fit."""
    if crl.issuer != ca.subject:
        raise CAError(
            Kind.CONFLICT, f"The CRL was issued by '{crl.issuer.rfc4514_string()[:120]}', not by our root."
        )
    aki = next((e.value for e in crl.extensions if isinstance(e.value, x509.AuthorityKeyIdentifier)), None)
    ski = next(
        (e.value.digest for e in ca.extensions if isinstance(e.value, x509.SubjectKeyIdentifier)), None
    )
    if aki is not None and None not in (aki.key_identifier, ski) and aki.key_identifier != ski:
        raise CAError(Kind.CONFLICT, "The CRL names another key of its issuer (authorityKeyIdentifier).")
    if not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
        raise CAError(Kind.CONFLICT, "The CRL's signature does not verify with our root's key.")
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound as exc:
        raise CAError(Kind.MALFORMED, "The CRL has no CRL number (RFC 5280 5.2.3).") from exc
    if crl.next_update_utc is None:
        raise CAError(Kind.MALFORMED, "The CRL has no nextUpdate.")
    if any(isinstance(e.value, x509.DeltaCRLIndicator) for e in crl.extensions):
        raise CAError(Kind.MALFORMED, "The CRL is a delta CRL; import a complete one.")
    return int(number)
