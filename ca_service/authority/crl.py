"""CRLs (RFC 5280 section 5) assembled from stored entry DER and signed by an issuer in one go.

cryptography's builder costs one Python object per revoked entry (~5 s at a million entries,
shared/measurements.md). Here each entry is encoded once (:func:`entry_der`: the element of
``revokedCertificates`` in RFC 5280 section 5.1, stored when the CRL is next built) and a CRL is
the concatenation of those bytes inside a TBSCertList whose other fields come from cryptography:
it builds and signs the same CRL without entries, and that template gives the version,
signature algorithm, issuer, thisUpdate, nextUpdate and crlExtensions bytes. The TBSCertList
with the entries is then signed with the issuer's key object, so a key in a PKCS#11 token signs
as for certificates. The DER written here is that one structure only; the tests hold it byte for
byte to cryptography's builder on the same entries.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca_service.authority.issuer import Issuer
from ca_service.errors import CAError, Kind

SEQUENCE, INTEGER, UTC_TIME, GENERALIZED_TIME, BIT_STRING, CRL_EXTENSIONS = 0x30, 0x02, 0x17, 0x18, 0x03, 0xA0
# crlEntryExtensions (RFC 5280 5.3): Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE (so
# absent), extnValue OCTET STRING }; id-ce-cRLReasons 2.5.29.21, id-ce-invalidityDate 2.5.29.24
_REASON_OID = b"\x06\x03\x55\x1d\x15"
_INVALIDITY_OID = b"\x06\x03\x55\x1d\x18"
HEADROOM = 6  # the longest DER header this module writes: a tag and a 4-octet long-form length

Entry = tuple[int, datetime, x509.ReasonFlags | None, datetime | None]
"""serial, revocation date, reason (None: unspecified, RFC 5280 5.3.1 omits it), invalidity date"""


def _header(tag: int, length: int) -> bytes:
    """DER identifier and definite length (X.690 section 8.1.3: short form below 128)."""
    if length < 0x80:
        return bytes((tag, length))
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big")


def _tlv(tag: int, content: bytes) -> bytes:
    return _header(tag, len(content)) + content


def _extension(oid: bytes, value: bytes) -> bytes:
    return _tlv(SEQUENCE, oid + _tlv(0x04, value))


_REASONS = {flag: _extension(_REASON_OID, x509.CRLReason(flag).public_bytes()) for flag in x509.ReasonFlags}


def _time(value: datetime) -> bytes:
    """RFC 5280 5.1.2.4 (as 4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050; whole
    seconds, Z (fractions are dropped, as cryptography does)."""
    v = value.astimezone(UTC) if value.tzinfo else value
    if 1950 <= v.year < 2050:
        text = f"{v.year % 100:02d}{v.month:02d}{v.day:02d}{v.hour:02d}{v.minute:02d}{v.second:02d}Z"
        return _tlv(UTC_TIME, text.encode("ascii"))
    text = f"{v.year:04d}{v.month:02d}{v.day:02d}{v.hour:02d}{v.minute:02d}{v.second:02d}Z"
    return _tlv(GENERALIZED_TIME, text.encode("ascii"))


def entry_der(
    serial: int, revoked_at: datetime, reason: x509.ReasonFlags | None, invalidity: datetime | None
) -> bytes:
    """One element of ``revokedCertificates`` (RFC 5280 5.1.2.6): the serial (a positive
    INTEGER, 4.1.2.2), the revocation date, and the reason code (5.3.1) and invalidity date
    (5.3.2) entry extensions when given. Naive datetimes are read as UTC."""
    body = _tlv(INTEGER, serial.to_bytes(serial.bit_length() // 8 + 1, "big")) + _time(revoked_at)
    extensions = _REASONS[reason] if reason is not None else b""
    if invalidity is not None:
        moment = invalidity.astimezone(UTC).replace(tzinfo=None) if invalidity.tzinfo else invalidity
        extensions += _extension(_INVALIDITY_OID, x509.InvalidityDate(moment).public_bytes())
    if extensions:
        body += _tlv(SEQUENCE, extensions)
    return _tlv(SEQUENCE, body)


def _element(data: bytes, offset: int) -> tuple[int, int]:
    """(offset of the content, offset past the end) of the DER element at ``offset``."""
    first = data[offset + 1]
    if first < 0x80:
        return offset + 2, offset + 2 + first
    size = first & 0x7F
    length = int.from_bytes(data[offset + 2 : offset + 2 + size], "big")
    return offset + 2 + size, offset + 2 + size + length


def _template(
    issuer: Issuer, number: int, this_update: datetime, next_update: datetime, user_certificates: bool
) -> tuple[bytes, bytes, bytes]:
    """(TBSCertList fields before revokedCertificates, the crlExtensions field,
    signatureAlgorithm) of the CRL without entries, as cryptography builds and signs it: CRL
    number (5.2.3), AKI (5.2.1) and, for user certificates, a critical issuing distribution
    point (5.2.5) naming the URL of our certificates' CRL distribution point."""
    extensions: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(x509.oid.ExtensionOID.CRL_NUMBER, False, x509.CRLNumber(number)),
        x509.Extension(x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER, False, issuer.aki),
    ]
    if user_certificates:
        idp = x509.IssuingDistributionPoint(
            full_name=[x509.UniformResourceIdentifier(issuer.crl_url)],
            relative_name=None,
            only_contains_user_certs=True,
            only_contains_ca_certs=False,
            only_some_reasons=None,
            indirect_crl=False,
            only_contains_attribute_certs=False,
        )
        extensions.append(x509.Extension(x509.oid.ExtensionOID.ISSUING_DISTRIBUTION_POINT, True, idp))
    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer.certificate.subject,
        last_update=this_update,
        next_update=next_update,
        extensions=extensions,
    )
    der = builder.sign(issuer.key, issuer.hash).public_bytes(serialization.Encoding.DER)
    tbs_start, _ = _element(der, 0)
    content, tbs_end = _element(der, tbs_start)
    _, algorithm_end = _element(der, tbs_end)
    offset = content
    while der[offset] != CRL_EXTENSIONS:  # version, signature, issuer, thisUpdate, nextUpdate
        offset = _element(der, offset)[1]
    return der[content:offset], der[offset:tbs_end], der[tbs_end:algorithm_end]


def assemble_crl(
    issuer: Issuer,
    number: int,
    this_update: datetime,
    next_update: datetime,
    batches: Iterable[tuple[int, bytes]],
    user_certificates: bool = True,
) -> tuple[bytearray, int]:
    """The DER CRL of ``issuer`` (RFC 5280 5.1) over ``batches`` of entries (each a number of
    entries and their :func:`entry_der` concatenated, in the order given), and the number of
    entries. With ``user_certificates=False`` (a root's CRL over CA certificates, which name no
    distribution point) the IDP is left out.

    The entries are streamed into one buffer behind room for the headers, which are written
    once their lengths are known: the CRL is never copied whole. The entries are trusted to be
    well-formed (they come from :func:`entry_der` through our database)."""
    head, tail, algorithm = _template(issuer, number, this_update, next_update, user_certificates)
    start = 2 * HEADROOM + len(head) + HEADROOM  # CertificateList, TBSCertList, head, revokedCertificates
    buf = bytearray(start)
    count = 0
    for entries, der in batches:
        buf += der
        count += entries
    listed = _header(SEQUENCE, len(buf) - start) if count else b""  # omitted when empty (5.1.2.6)
    tbs_length = len(head) + len(listed) + len(buf) - start + len(tail)
    tbs_start = start - len(listed) - len(head) - len(_header(SEQUENCE, tbs_length))
    buf[tbs_start:start] = _header(SEQUENCE, tbs_length) + head + listed  # same length: in place
    buf += tail
    signature = issuer.sign(memoryview(buf)[tbs_start:])
    buf += algorithm + _tlv(BIT_STRING, b"\x00" + signature)
    outer = _header(SEQUENCE, len(buf) - tbs_start)
    del buf[: tbs_start - len(outer)]
    buf[: len(outer)] = outer
    return buf, count


def sign_crl(
    issuer: Issuer,
    number: int,
    this_update: datetime,
    next_update: datetime,
    entries: Iterable[Entry],
    user_certificates: bool = True,
) -> tuple[bytes, int]:
    """:func:`assemble_crl` over entries given as values (serial, dates, reason)."""
    der, count = assemble_crl(
        issuer, number, this_update, next_update, ((1, entry_der(*e)) for e in entries), user_certificates
    )
    return bytes(der), count


PEM_CHUNK = 48 * 1024  # DER bytes per piece of PEM: a multiple of 48 is whole 64-character lines


def crl_pem_pieces(der: Iterable[bytes | bytearray | memoryview]) -> Iterator[bytes]:
    """PEM armour (RFC 7468 section 5) around a DER CRL given in pieces of :data:`PEM_CHUNK`
    bytes (the last one shorter), without parsing it: a million-entry CRL (53 MB) is armoured
    piece by piece, never whole."""
    yield b"-----BEGIN X509 CRL-----\n"
    for piece in der:
        text = base64.b64encode(piece)
        yield b"\n".join([text[i : i + 64] for i in range(0, len(text), 64)]) + b"\n"
    yield b"-----END X509 CRL-----\n"


def der_pieces(der: bytes | bytearray | memoryview) -> Iterator[memoryview]:
    """``der`` in pieces of :data:`PEM_CHUNK` bytes, for :func:`crl_pem_pieces`."""
    view = memoryview(der)
    return (view[start : start + PEM_CHUNK] for start in range(0, len(view), PEM_CHUNK))


def crl_pem(der: bytes | bytearray | memoryview) -> bytes:
    """:func:`crl_pem_pieces` of ``der``, joined."""
    return b"".join(crl_pem_pieces(der_pieces(der)))


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
