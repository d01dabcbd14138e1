"""Account scopes: a provisioner or ACME account may act only on MACs under its prefixes."""

from __future__ import annotations

from ca_service.domain import MacAddress, Principal, Role
from ca_service.errors import CAError, Kind


def in_scope(principal: Principal, mac: MacAddress) -> bool:
    """Admins and auditors see every MAC; a provisioner only MACs starting with one of its
    scopes (prefixes of the canonical 12-digit form). A provisioner without scopes sees none."""
    if principal.role is not Role.PROVISIONER:
        return True
    return any(mac.value.startswith(s) for s in principal.scopes)


def check_scope(principal: Principal, mac: MacAddress) -> None:
    if not in_scope(principal, mac):
        raise CAError(
            Kind.FORBIDDEN,
            f"{mac} is outside the scopes of token '{principal.name}' "
            f"({', '.join(principal.scopes) or 'none'}).",
        )


def normalize_scope(text: str) -> str:
    """A scope is a prefix of a canonical MAC: 1 to 12 hex digits, separators allowed."""
    digits = "".join(c for c in text if c not in ":-. ").upper()
    if not digits or len(digits) > 12 or any(c not in "0123456789ABCDEF" for c in digits):
        raise CAError(
            Kind.MALFORMED,
            f"Scope '{text[:20]}' is not a MAC prefix; give 1 to 12 hex digits such as 7C2F80.",
        )
    return digits
