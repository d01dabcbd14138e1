"""Certificate serial numbers (RFC 5280 section 4.1.2.2, design decision 4)."""

from __future__ import annotations

import secrets

SERIAL_BYTES = 20


def random_serial() -> int:
    """20 random octets from the OS CSPRNG with the top bit cleared: positive, at most 159 bits,
    so its DER encoding never exceeds 20 octets. Uniqueness is enforced by the database."""
    value = int.from_bytes(secrets.token_bytes(SERIAL_BYTES), "big") & ((1 << 159) - 1)
    return value or 1
