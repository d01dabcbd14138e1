"""The one error type below the web layer (design decision 7).

Code under ``ca_service`` raises :class:`CAError` with a :class:`Kind` and a fixed, readable
sentence. The web layers render it: REST as RFC 9457 problem+json, ACME as RFC 8555 section 6.7
problems. A detail never contains key material, passphrases or tracebacks.
"""

from __future__ import annotations

from enum import Enum


class Kind(Enum):
    """What went wrong, independent of the protocol that reports it."""

    MALFORMED = "malformed"  # the request itself cannot be read
    BAD_CSR = "bad-csr"  # the CSR does not parse or its signature is wrong
    BAD_SIGNATURE_ALGORITHM = "bad-signature-algorithm"  # SHA-1, MD5 ...
    BAD_KEY = "bad-key"  # key type or size refused by policy
    BAD_IDENTIFIER = "bad-identifier"  # CN is not a usable device MAC
    BAD_CERTIFICATE = "bad-certificate"  # a certificate refused for what it is (not a CA, expired)
    UNAUTHORIZED = "unauthorized"  # no or unknown credentials
    FORBIDDEN = "forbidden"  # credentials valid, action not allowed (role or scope)
    NOT_FOUND = "not-found"
    CONFLICT = "conflict"  # state forbids it (already exists, already revoked ...)
    GONE = "gone"  # existed once, no longer available (one-time URLs)
    UNAVAILABLE = "unavailable"  # a dependency (key store, database) cannot serve now
    INTERNAL = "internal"


class CAError(Exception):
    """A refusal or failure with a kind and a sentence fit for the requester.

    ``detail`` names the limit that was hit ("RSA keys shorter than 2048 bits are refused").
    ``extra`` carries machine-readable members for the problem document (never secrets).
    """

    def __init__(self, kind: Kind, detail: str, **extra: object) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.extra = extra

    def __repr__(self) -> str:
        return f"CAError({self.kind.value!r}, {self.detail!r})"
