"""Certificate serial numbers (RFC 5280 section 4.1.2.2, design decision 4)."""

from __future__ import annotations

import secrets

from ca_service.errors import CAError, Kind

SERIAL_BYTES = 20


def random_serial() -> int:
    """20 random octets from the OS CSPRNG with the top bit cleared: positive, at most 159 bits,
    so its DER encoding never exceeds 20 octets. Uniqueness is enforced by the database."""
    value = int.from_bytes(secrets.token_bytes(SERIAL_BYTES), "big") & ((1 << 159) - 1)
    return value or 1


def serial_text(value: int) -> str:
    """Uppercase hex, even number of digits: what ``openssl x509 -serial`` prints."""
    text = format(value, "X")
    return text if len(text) % 2 == 0 else "0" + text


def parse_serial(text: str) -> str:
    """Accept ``0A:1B...``, ``0a1b...``, ``0x0A1B`` and return the canonical :func:`serial_text`."""
    raw = text.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    if not raw or len(raw) > 42 or any(c not in "0123456789abcdef" for c in raw):
        raise CAError(
            Kind.MALFORMED,
            f"'{text[:50]}' is not a certificate serial; give it in hex as openssl prints it.",
        )
    return serial_text(int(raw, 16))
