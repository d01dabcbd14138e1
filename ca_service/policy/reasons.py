"""Revocation reasons (RFC 5280 section 5.3.1), by the names RFC 5280 gives them."""

from __future__ import annotations

from cryptography import x509

from ca_service.errors import CAError, Kind

# certificateHold/removeFromCRL (no un-revoking here) and the CA/AA compromise codes (not for
# device certificates) are refused.
REASONS: dict[str, x509.ReasonFlags | None] = {
    "unspecified": None,  # 5.3.1: the reason code extension is then absent
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}


# RFC 5280 section 5.3.1 reason codes of the reasons above, as ACME's revokeCert gives them
# (RFC 8555 section 7.6).
CODES: dict[int, str] = {
    0: "unspecified",
    1: "keyCompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
    9: "privilegeWithdrawn",
}


def parse_reason(name: str) -> str:
    """The RFC 5280 name of a reason we accept; anything else is refused, naming the allowed ones."""
    if name not in REASONS:
        allowed = ", ".join(REASONS)
        raise CAError(Kind.MALFORMED, f"'{name[:40]}' is not a revocation reason; use one of: {allowed}.")
    return name


# The reasons a root gives for revoking one of our issuing CAs (RFC 5280 5.3.1: cACompromise
# instead of keyCompromise).
CA_REASONS: dict[str, x509.ReasonFlags | None] = {
    "unspecified": None,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
}
_FLAGS = {**REASONS, **CA_REASONS}
_NAMES = {flag: name for name, flag in _FLAGS.items() if flag is not None}


def parse_ca_reason(name: str) -> str:
    """The RFC 5280 name of a reason for revoking a CA; anything else is refused."""
    if name not in CA_REASONS:
        allowed = ", ".join(CA_REASONS)
        raise CAError(Kind.MALFORMED, f"'{name[:40]}' is not a reason to revoke a CA; use one of: {allowed}.")
    return name


def reason_flag(name: str | None) -> x509.ReasonFlags | None:
    """The CRL/OCSP reason code of a stored reason name (None: unspecified)."""
    return _FLAGS.get(name or "unspecified")


def reason_name(flag: x509.ReasonFlags | None) -> str:
    """The stored name of a CRL entry's reason code (an unknown or absent one: unspecified)."""
    return _NAMES.get(flag, "unspecified") if flag is not None else "unspecified"
