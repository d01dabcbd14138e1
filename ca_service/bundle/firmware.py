"""Which certificate a Gigaset device uses for what, by device software version: the table of
Gigaset's FAQ "Client certificates" (shared/domain.md) as data. Pure functions: no I/O.

Versions are the FAQ's numbering: ``2.59``, ``2.59.1``, or the device's own ``83.V2.59.1``
(User-Agent and web UI spelling; a ``+build...`` suffix is ignored, also as `` build...``
when an unencoded ``+`` in a URL query became a space).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ca_service.bundle.anchors import PRIVATE
from ca_service.errors import CAError, Kind

_VERSION = re.compile(r"(?:\d{1,4}\.[vV])?(\d{1,3})\.(\d{1,3})(?:\.(\d{1,4}))?(?:[+ ][0-9A-Za-z.\-]{0,64})?")

FACTORY = "factory"  # the factory-installed certificate under the Gigaset.net CA
SECOND = "second"  # the "2nd cert" with up-to-date security (software >= 2.57)
NEW = "new"  # device-generated ECDSA P-256 under the Gigaset Technologies CAs (>= 2.61)
CERTIFICATES = {
    FACTORY: "Factory-installed certificate (issuer CN=Gigaset.net; CN=<MAC> or the generic CN=Einstein2).",
    SECOND: "Second client certificate with up-to-date security, added with software 2.57.",
    NEW: "New device-generated ECDSA P-256 certificate under the Gigaset Technologies CA certificates.",
}
# Which anchor purpose a provisioning server needs for each certificate a device presents to it.
TRUST_FOR = {FACTORY: "gigaset-factory", NEW: "gigaset-technologies"}
SERVICES = ("auto-provisioning", "firmware-update", "sip")


@dataclass(frozen=True)
class Generation:
    """One row of the FAQ table: software versions from ``since`` up to (excluding) ``until``."""

    label: str
    since: tuple[int, int]
    until: tuple[int, int] | None
    auto_provisioning: str
    firmware_update: str
    sip: str
    note: str


TABLE: tuple[Generation, ...] = (
    Generation(
        "< 2.57", (0, 0), (2, 57), FACTORY, FACTORY, FACTORY, "The factory certificate serves everything."
    ),
    Generation(
        "2.57",
        (2, 57),
        (2, 59),
        FACTORY,
        SECOND,
        SECOND,
        "OpenSSL 1.1.1 -> 3.0: SHA-1 signed certificates are refused from now on.",
    ),
    Generation(
        "2.59, 2.60",
        (2, 59),
        (2, 61),
        FACTORY,
        FACTORY,
        SECOND,
        "Firmware update via auto-provisioning uses the factory certificate again.",
    ),
    Generation(
        ">= 2.61",
        (2, 61),
        None,
        NEW,
        NEW,
        SECOND,
        "Provisioning servers must trust the Gigaset Technologies CA certificates, or provisioning "
        "of these devices stops.",
    ),
)


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int | None

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}" + (f".{self.patch}" if self.patch is not None else "")


def parse_version(text: str) -> Version:
    """``2.59``, ``2.59.1``, ``83.V2.59.1`` (and ``83.V2.65.0+build.8504c90``) -> Version."""
    match = _VERSION.fullmatch(text.strip()) if isinstance(text, str) and len(text) <= 100 else None
    if match is None:
        shown = "".join(c if c.isprintable() else "?" for c in str(text)[:40])
        raise CAError(
            Kind.MALFORMED,
            f"'{shown}' is not a device software version; write it as 2.59, 2.59.1 or 83.V2.59.1.",
        )
    major, minor, patch = match.groups()
    return Version(int(major), int(minor), int(patch) if patch is not None else None)


def generation(version: Version) -> Generation:
    key = (version.major, version.minor)
    for row in TABLE:
        if row.since <= key and (row.until is None or key < row.until):
            return row
    raise AssertionError("the table covers every version")  # pragma: no cover


def trust_purposes(row: Generation) -> tuple[str, ...]:
    """Anchor purposes a provisioning server needs for devices on this software: the CA of the
    certificate used for auto-provisioning and firmware update, plus our own CAs (a certificate we
    issued may be installed on any software through the provisioning ``certificate`` step)."""
    needed = {TRUST_FOR[c] for c in (row.auto_provisioning, row.firmware_update) if c in TRUST_FOR}
    return (*sorted(needed), PRIVATE)


def sha1_refused(version: Version) -> bool:
    """Device software 2.57 and later refuses SHA-1 signed certificates."""
    return (version.major, version.minor) >= (2, 57)
