"""The one error type below the web layer (design decision 7).

Code under ``ca_service`` raises :class:`CAError` with a :class:`Kind` and a fixed, readable
sentence. The web layers render it: REST as RFC 9457 problem+json, ACME as RFC 8555 section 6.7
problems; each renderer maps every kind in one exhaustive table (``api.problems``,
``acme.problems``). A detail never contains key material, passphrases or tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Kind(Enum):
    """What went wrong, independent of the protocol that reports it."""

    MALFORMED = "malformed"  # the request itself cannot be read
    BAD_CSR = "bad-csr"  # the CSR does not parse, its signature is wrong, or it is refused as a whole
    BAD_SIGNATURE_ALGORITHM = "bad-signature-algorithm"  # a CSR signed with SHA-1, MD5 ...
    BAD_KEY = "bad-key"  # a CSR's key type or size refused by policy
    BAD_IDENTIFIER = "bad-identifier"  # not a usable device MAC (Einstein2, multicast, not a MAC)
    REJECTED_IDENTIFIER = "rejected-identifier"  # a MAC this requester may not have (scope, OUI list)
    UNSUPPORTED_IDENTIFIER = "unsupported-identifier"  # an ACME identifier type we do not issue for
    BAD_CERTIFICATE = "bad-certificate"  # a certificate refused for what it is (not a CA, expired)
    BAD_REVOCATION_REASON = "bad-revocation-reason"
    INVALID_PROFILE = "invalid-profile"  # no profile of that name
    BAD_JWS_ALGORITHM = "bad-jws-algorithm"  # an ACME request signed with a refused algorithm
    BAD_PUBLIC_KEY = "bad-public-key"  # an ACME account key that cannot be read or is too weak
    BAD_NONCE = "bad-nonce"  # an ACME nonce unknown, used or expired
    INVALID_CONTACT = "invalid-contact"
    EXTERNAL_ACCOUNT_REQUIRED = "external-account-required"
    ACCOUNT_MISSING = "account-missing"  # no ACME account with this key or key id
    UNAUTHORIZED = "unauthorized"  # no or unknown credentials
    FORBIDDEN = "forbidden"  # credentials valid, action not allowed (role or scope)
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    NOT_IMPLEMENTED = "not-implemented"  # an HTTP method this service does not know (RFC 9110 15.6.2)
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
    TOO_LARGE = "too-large"  # a request body over its limit
    CONFLICT = "conflict"  # state forbids it (already exists ...)
    KEY_REUSED = "idempotency-key-reused"  # an Idempotency-Key sent again with another request
    ALREADY_REVOKED = "already-revoked"
    ALREADY_REPLACED = "already-replaced"  # a renewal names a certificate that has a successor
    ORDER_NOT_READY = "order-not-ready"
    RATE_LIMITED = "rate-limited"  # a configured issuance limit is reached (extra: retry_after seconds)
    GONE = "gone"  # existed once, no longer available (one-time URLs)
    UNAVAILABLE = "unavailable"  # a dependency (key store, database) cannot serve now
    INTERNAL = "internal"


class CAError(Exception):
    """A refusal or failure with a kind and a sentence fit for the requester.

    ``detail`` names the limit that was hit ("RSA keys shorter than 2048 bits are refused").
    ``subproblems`` are the per-item refusals of a request about several items (RFC 8555
    section 6.7.1); ``extra`` carries machine-readable members for the
    problem document (never secrets).
    """

    def __init__(
        self, kind: Kind, detail: str, *, subproblems: tuple[Subproblem, ...] = (), **extra: Any
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.subproblems = subproblems
        self.extra = extra

    def __repr__(self) -> str:
        return f"CAError({self.kind.value!r}, {self.detail!r})"


@dataclass(frozen=True)
class Subproblem:
    """One item's refusal inside a :class:`CAError`: its kind, its sentence and the item it is
    about (an ACME identifier, RFC 8555 section 6.7.1)."""

    kind: Kind
    detail: str
    identifier: dict[str, Any]
