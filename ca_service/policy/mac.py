"""Which MACs may identify a device (see shared/domain.md, "Identity: the MAC")."""

from __future__ import annotations

from collections.abc import Sequence

from ca_service.domain import MacAddress, printable
from ca_service.errors import CAError, Kind

GENERIC_FACTORY_CN = "Einstein2"


def device_mac(text: str, oui_allowlist: Sequence[str] = (), *, label: str = "CN") -> MacAddress:
    """Parse ``text`` as the MAC of one device and apply the identity rules.

    Refuses the generic factory CN ``Einstein2``, anything that is not a MAC, the all-zero and
    broadcast addresses, multicast addresses (lowest bit of the first octet set) and, when an
    allow-list is configured, MACs outside it. Returns the canonical form. ``label`` says where
    ``text`` came from in refusals ("CN", "SAN dNSName", "identifier" ...).
    """
    if text.strip().lower() == GENERIC_FACTORY_CN.lower():
        raise CAError(
            Kind.BAD_IDENTIFIER,
            f"{label}=Einstein2 is the generic Gigaset factory name shared by many devices and "
            "identifies no device; the CN must be the device's MAC address, e.g. CN=7C2F80C6E5C2.",
        )
    try:
        mac = MacAddress.parse(text)
    except CAError as exc:
        raise CAError(
            Kind.BAD_IDENTIFIER,
            f"The {label} '{printable(text)}' is not a device MAC address; it must be 12 hex digits "
            "such as 7C2F80C6E5C2 (separators : - . are accepted).",
        ) from exc
    if mac.is_zero:
        raise CAError(Kind.BAD_IDENTIFIER, "The all-zero MAC 000000000000 identifies no device.")
    if mac.is_broadcast:
        raise CAError(Kind.BAD_IDENTIFIER, "The broadcast MAC FFFFFFFFFFFF identifies no device.")
    if mac.is_multicast:
        raise CAError(
            Kind.BAD_IDENTIFIER,
            f"{mac} is a multicast address (lowest bit of the first octet set) and identifies no device.",
        )
    if oui_allowlist and not any(mac.value.startswith(p.upper()) for p in oui_allowlist):
        raise CAError(
            Kind.REJECTED_IDENTIFIER,
            f"{mac} is outside the configured OUI allow-list ({', '.join(oui_allowlist)}).",
        )
    return mac
