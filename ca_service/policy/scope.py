"""Who may act on what: the one role check and the MAC scopes of provisioners, ACME accounts and
holders of a certificate's key."""

from __future__ import annotations

from ca_service.domain import MacAddress, Principal, Role
from ca_service.errors import CAError, Kind

WRITERS = (Role.ADMIN, Role.PROVISIONER)


def require_role(principal: Principal, roles: tuple[Role, ...], action: str) -> None:
    """Refuse (FORBIDDEN) unless ``principal`` has one of ``roles``; ``action`` says what was
    asked, e.g. "Issuing"."""
    if principal.role not in roles:
        names = " or ".join(r.value for r in roles)
        raise CAError(Kind.FORBIDDEN, f"{action} needs an {names} token; this one is {principal.role.value}.")


def in_scope(principal: Principal, mac: MacAddress, serial: str | None = None) -> bool:
    """Admins and auditors see every MAC; a provisioner (or ACME account) only MACs starting
    with one of its scopes (prefixes of the canonical 12-digit form), none without scopes. A
    principal that proved possession of one certificate's key acts on that certificate only."""
    if principal.certificate is not None:
        return serial is not None and serial == principal.certificate
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
