"""The trust bundle as a PEM file and as a JSON document. Pure functions: no I/O.

The PEM file is what nginx ``ssl_client_certificate``, Apache ``SSLCACertificateFile`` and
HAProxy ``ca-file`` load: certificates in a stable order (purpose, then subject, then
fingerprint), each under ``#`` comment lines naming its label, purpose, SHA-256 fingerprint and
expiry. PEM readers ignore text outside the BEGIN/END lines (RFC 7468 section 2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from ca_service.bundle.anchors import ALL_PURPOSES, EXPIRY_WARNING


@dataclass(frozen=True)
class Entry:
    """One certificate of the bundle: an imported anchor (``anchor_id``) or one of our CAs."""

    label: str
    purpose: str
    fingerprint: str
    subject: str
    not_before: datetime
    not_after: datetime
    pem: str
    anchor_id: int | None = None
    warnings: tuple[str, ...] = ()
    root: bool = False  # self-signed: a trust anchor also in the roots-only form

    def flips(self, now: datetime) -> datetime | None:
        """The next moment after ``now`` when :meth:`expiring` or :meth:`expired` changes."""
        later = [t for t in (self.not_after - EXPIRY_WARNING, self.not_after) if t > now]
        return min(later) if later else None

    def expiring(self, now: datetime) -> bool:
        return self.not_after - now < EXPIRY_WARNING

    def expired(self, now: datetime) -> bool:
        return self.not_after <= now


def ordered(entries: list[Entry]) -> list[Entry]:
    """Stable order: purpose as listed in ALL_PURPOSES, then subject, then fingerprint; one entry
    per fingerprint (our CA imported again as 'other' appears once, as its first purpose)."""
    rank = {p: i for i, p in enumerate(ALL_PURPOSES)}
    seen: set[str] = set()
    out = []
    for entry in sorted(entries, key=lambda e: (rank.get(e.purpose, 99), e.subject, e.fingerprint)):
        if entry.fingerprint not in seen:
            seen.add(entry.fingerprint)
            out.append(entry)
    return out


def render_pem(entries: list[Entry], title: str) -> str:
    """The bundle file: a title comment, then each certificate under its comment lines."""
    lines = [f"# {title}", f"# {len(entries)} certificate(s)", ""]
    for e in entries:
        lines += [
            f"# {_comment(e.label)} ({e.purpose})",
            f"# subject: {_comment(e.subject)}",
            f"# sha256: {e.fingerprint}",
            f"# expires: {e.not_after:%Y-%m-%d %H:%M:%S} UTC",
            e.pem.strip(),
            "",
        ]
    return "\n".join(lines)


def digest(text: str) -> str:
    """The strong validator of a rendered bundle (ETag, version check): SHA-256 hex."""
    return hashlib.sha256(text.encode()).hexdigest()


def entry_json(e: Entry, now: datetime) -> dict[str, object]:
    return {
        "id": e.anchor_id,
        "label": e.label,
        "purpose": e.purpose,
        "subject": e.subject,
        "fingerprint_sha256": e.fingerprint,
        "not_before": e.not_before.isoformat(),
        "not_after": e.not_after.isoformat(),
        "expired": e.expired(now),
        "expires_within_90_days": e.expiring(now),
        "warnings": list(e.warnings),
        "pem": e.pem,
    }


def _comment(text: str) -> str:
    """One printable line: a label cannot start a PEM block or a second line."""
    return "".join(c if c.isprintable() else "?" for c in text).replace("-----", "--")
