"""ACME renewal information certificate identifiers (RFC 9773 section 4.1)."""

from __future__ import annotations

import base64
import binascii

from cryptography import x509

from ca_service.domain import serial_text
from ca_service.errors import CAError, Kind


def _b64url_decode(text: str) -> bytes:
    if not text or any(c in text for c in "=+/"):
        raise ValueError(text)
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_cert_id(cert_id: str) -> tuple[bytes, str]:
    """Split an RFC 9773 section 4.1 certID into (AKI keyIdentifier, serial as hex text)."""
    aki_text, sep, serial_b64 = cert_id.partition(".")
    try:
        if not sep:
            raise ValueError(cert_id)
        aki, serial = _b64url_decode(aki_text), _b64url_decode(serial_b64)
    except (ValueError, binascii.Error) as exc:
        raise CAError(
            Kind.MALFORMED,
            "A certID is base64url(authority key identifier) '.' base64url(serial DER octets), unpadded.",
        ) from exc
    if not serial or serial[0] & 0x80 or len(serial) > 21:
        raise CAError(
            Kind.MALFORMED, "The certID's serial is not a positive DER INTEGER of at most 20 octets."
        )
    return aki, serial_text(int.from_bytes(serial, "big"))


def cert_id_of(certificate: x509.Certificate) -> str:
    """The certID of a certificate (RFC 9773 section 4.1)."""
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    n = certificate.serial_number
    serial = n.to_bytes(n.bit_length() // 8 + 1, "big")  # DER INTEGER content: leading 0 when high bit set
    return f"{_b64(aki or b'')}.{_b64(serial)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
