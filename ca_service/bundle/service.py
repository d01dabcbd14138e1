"""The Bundle service: import and retire trust anchors, publish the bundle, inspect device
certificates, answer firmware compatibility questions."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from ca_service.bundle import firmware
from ca_service.bundle.anchors import (
    ALL_PURPOSES,
    EXPIRY_WARNING,
    PRIVATE,
    check_anchor,
    check_label,
    check_purpose,
    fingerprint,
    is_self_signed,
    load_certificates,
)
from ca_service.bundle.inspect import OURS, Inspection, inspect_chain
from ca_service.bundle.render import Entry, digest, entry_json, ordered, render_pem
from ca_service.clock import SYSTEM, Clock
from ca_service.domain import IssuerRole, MacAddress, Principal, Role, serial_text
from ca_service.errors import CAError, Kind
from ca_service.policy import in_scope, require_role
from ca_service.store import Database, audit, trust
from ca_service.store import certificates as certs
from ca_service.store import issuers as issuer_store
from ca_service.store.db import DatabaseUnavailable
from ca_service.store.models import TrustAnchorRow

log = logging.getLogger("ca_service.bundle")

FULL_TITLE = "ca-service trust bundle: every active anchor and this service's CAs"
ROOTS_TITLE = (
    "root CAs only: intermediates (our issuing CAs too) are not anchors and are checked for revocation"
)
MAX_FORMS = 64  # renderings kept per worker (filters make forms; a flood of them renders afresh)


@dataclass(frozen=True)
class Published:
    """One rendering of the bundle: the PEM file and the JSON document, with the version of the
    full bundle at the time."""

    pem: str
    document: dict[str, Any]


@dataclass(frozen=True)
class _Rendering(Published):
    fresh_until: datetime | None  # the next expiry flag that flips


@dataclass(frozen=True)
class Rendered:
    """One form of the bundle as served: its bytes, their strong validator (SHA-256, RFC 9110
    section 8.8.3), the state of the database it was rendered from, and until when it holds
    (the next expiry flag that flips in the JSON document)."""

    body: bytes
    etag: str
    state: tuple[object, ...]
    fresh_until: datetime | None


class Bundle:
    """Trust anchors and the published trust bundle.

    Each form of the bundle (PEM or JSON, per filter) is rendered once per state of what it
    lists (the bundle version and our CAs) and kept per worker: a request costs a dictionary
    look-up, and that state is read from the database at most every ``refresh_seconds`` (as
    workers look for an issuer rotation); changes made through this worker show at once. While
    the database cannot answer, the renderings this worker holds are served."""

    def __init__(self, db: Database, refresh_seconds: float = 2.0, clock: Clock = SYSTEM) -> None:
        self.db = db
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._rendered: dict[tuple[object, ...], Rendered] = {}
        self._state: tuple[tuple[object, ...], float] | None = None  # (state, monotonic when read)
        self._lock = threading.Lock()

    # -- anchors ----------------------------------------------------------------------------
    def add(self, data: bytes | str, purpose: str, label: str, principal: Principal) -> dict[str, Any]:
        """Import one CA certificate (PEM or DER) as an anchor; the bundle version grows."""
        _require_admin(principal)
        purpose, label = check_purpose(purpose), check_label(label)
        found = load_certificates(data)
        if len(found) != 1:
            raise CAError(
                Kind.MALFORMED, f"Send one CA certificate per import; this upload holds {len(found)}."
            )
        now = self.clock.now()
        facts = check_anchor(found[0], now)
        with self.db.write() as session:
            if facts.fingerprint in {e.fingerprint for e in self._ours(session)}:
                raise CAError(
                    Kind.CONFLICT, "This is one of this service's own CAs; it is in the bundle already."
                )
            row = trust.add_anchor(
                session,
                TrustAnchorRow(
                    label=label,
                    purpose=purpose,
                    fingerprint_sha256=facts.fingerprint,
                    subject=facts.subject,
                    not_before=facts.not_before,
                    not_after=facts.not_after,
                    der=facts.der,
                    warnings=list(facts.warnings),
                    created_by=principal.label,
                    created_at=now,
                ),
            )
            version = self._publish(session, f"anchor {row.id} added")
            audit.record(
                session,
                actor=principal.label,
                action="trust.anchor.add",
                detail={
                    "id": row.id,
                    "label": label,
                    "purpose": purpose,
                    "fingerprint_sha256": facts.fingerprint,
                    "subject": facts.subject,
                    "bundle_version": version,
                },
            )
            view = self._anchor_json(row, now)
        self._state = None  # this worker serves the new version at once
        log.info("trust anchor added", extra={"actor": principal.label, "fingerprint": facts.fingerprint})
        return view

    def retire(self, anchor_id: int, principal: Principal) -> dict[str, Any]:
        """Take an anchor out of the bundle; its row stays as history."""
        _require_admin(principal)
        with self.db.write() as session:
            row = self._row(session, anchor_id)
            if row.retired_at is not None:
                raise CAError(Kind.CONFLICT, f"Trust anchor {anchor_id} was retired already.")
            row.retired_at, row.retired_by = self.clock.now(), principal.label
            session.flush()
            version = self._publish(session, f"anchor {row.id} retired")
            audit.record(
                session,
                actor=principal.label,
                action="trust.anchor.retire",
                detail={
                    "id": row.id,
                    "fingerprint_sha256": row.fingerprint_sha256,
                    "bundle_version": version,
                },
            )
            view = self._anchor_json(row, self.clock.now())
        self._state = None
        return view

    def anchors(self, include_retired: bool = False) -> list[dict[str, Any]]:
        now = self.clock.now()
        with self.db.read() as session:
            return [self._anchor_json(r, now) for r in trust.anchors(session, include_retired)]

    def anchor(self, anchor_id: int) -> dict[str, Any]:
        with self.db.read() as session:
            return self._anchor_json(self._row(session, anchor_id), self.clock.now())

    # -- the bundle -------------------------------------------------------------------------
    def served(
        self, as_json: bool, purposes: str | None, software: str | None, roots_only: bool = False
    ) -> Rendered:
        """The form of the bundle that GET /trust/bundle.pem (or .json) serves, rendered once
        per state and kept (see the class). Raises what :meth:`publish` raises."""
        _purposes(purposes, software)  # a bad filter is refused before anything is looked up
        form = (as_json, purposes, software, roots_only)  # as asked: the document echoes them
        now = self.clock.now()
        cached = self._rendered.get(form)
        try:
            state = self._current_state()
        except DatabaseUnavailable:
            if cached is None:
                raise
            return cached
        if (
            cached is not None
            and cached.state == state
            and (cached.fresh_until is None or now < cached.fresh_until)
        ):
            return cached
        published, state = self._publish_with_state(purposes, software, roots_only)
        body = (
            json.dumps(published.document, indent=2, sort_keys=True) + "\n" if as_json else published.pem
        ).encode()
        rendered = Rendered(body, digest(body.decode()), state, published.fresh_until)
        with self._lock:
            if len(self._rendered) >= MAX_FORMS:
                self._rendered.clear()
            self._rendered[form] = rendered
            self._state = state, self.clock.monotonic()
        return rendered

    def _current_state(self) -> tuple[object, ...]:
        """The bundle version and our CAs as last read, read again when older than
        ``refresh_seconds``."""
        known = self._state
        if known is not None and self.clock.monotonic() - known[1] < self.refresh_seconds:
            return known[0]
        with self.db.read() as session:
            latest = trust.latest_version(session)
            state = (latest.version if latest else None, *_our_cas(session))
        self._state = state, self.clock.monotonic()
        return state

    def publish(
        self, purposes: str | None = None, software: str | None = None, roots_only: bool = False
    ) -> Published:
        """The bundle, optionally only the given purposes (comma-separated) and/or what devices on
        ``software`` need, and with ``roots_only`` only the self-signed CAs (our issuing CAs and
        imported intermediates left out: a client that trusts only roots checks the revocation of
        every CA below them). Records a new version first if the full bundle changed (our CAs)."""
        return self._publish_with_state(purposes, software, roots_only)[0]

    def _publish_with_state(
        self, purposes: str | None, software: str | None, roots_only: bool
    ) -> tuple[_Rendering, tuple[object, ...]]:
        wanted = _purposes(purposes, software)
        with self.db.read() as session:
            entries = self._entries(session)
            latest = trust.latest_version(session)
            cas = _our_cas(session)
        full_digest = digest(render_pem(entries, FULL_TITLE))
        if latest is not None and latest.digest == full_digest:
            version = latest.version
        else:
            version = self._publish_now("this service's CAs changed")
        chosen = [e for e in entries if e.purpose in wanted and (e.root or not roots_only)]
        parts = [] if wanted == set(ALL_PURPOSES) else [_filter_text(software, wanted)]
        if roots_only:
            parts.append(ROOTS_TITLE)
        title = "ca-service trust bundle: " + "; ".join(parts) if parts else FULL_TITLE
        now = self.clock.now()
        document = {
            "version": version,
            "filter": {
                "purposes": sorted(wanted, key=ALL_PURPOSES.index),
                "firmware": software,
                "anchors": "roots" if roots_only else "all",
            },
            "count": len(chosen),
            "expiring_within_90_days": sum(e.expiring(now) for e in chosen),
            "certificates": [entry_json(e, now) for e in chosen],
        }
        flips = [t for t in (e.flips(now) for e in chosen) if t is not None]
        published = _Rendering(render_pem(chosen, title), document, min(flips) if flips else None)
        return published, (version, *cas)

    def expiring(self) -> list[Entry]:
        """Anchors and CAs of ours that expire within 90 days (or have expired)."""
        now = self.clock.now()
        with self.db.read() as session:
            return [e for e in self._entries(session) if e.expiring(now)]

    def _publish(self, session: Session, reason: str) -> int:
        """In ``session``: give the current full bundle the next version unless it has one. Bundle
        changes take turns under the versions lock, so latest + 1 is always free."""
        trust.lock_versions(session)
        text = render_pem(self._entries(session), FULL_TITLE)
        latest = trust.latest_version(session)
        if latest is not None and latest.digest == digest(text):
            return latest.version
        version = (latest.version if latest else 0) + 1
        trust.add_version(session, version, digest(text), reason)
        return version

    def _publish_now(self, reason: str) -> int:
        with self.db.write() as session:
            return self._publish(session, reason)

    def _entries(self, session: Session) -> list[Entry]:
        imported = [
            Entry(
                label=r.label,
                purpose=r.purpose,
                fingerprint=r.fingerprint_sha256,
                subject=r.subject,
                not_before=r.not_before,
                not_after=r.not_after,
                pem=_pem(cert),
                anchor_id=r.id,
                warnings=tuple(r.warnings or ()),
                root=is_self_signed(cert),
            )
            for r, cert in ((r, x509.load_der_x509_certificate(r.der)) for r in trust.anchors(session))
        ]
        return ordered(imported + self._ours(session))

    @staticmethod
    def _ours(session: Session) -> list[Entry]:
        """Our newest root and every issuing CA that still signs, read from the database (no
        key needed)."""
        cas = issuer_store.all_issuers(session)
        roots = [r for r in cas if r.role is IssuerRole.ROOT and r.certificate_pem]
        chosen = [("ca-service root CA", r) for r in roots[-1:]] + [
            (f"ca-service issuing CA {r.name}", r)
            for r in cas
            if r.role is IssuerRole.ISSUING and r.state.signs and r.certificate_pem
        ]
        labelled = [
            (
                label,
                r.role is IssuerRole.ROOT,
                x509.load_pem_x509_certificate(str(r.certificate_pem).encode()),
            )
            for label, r in chosen
        ]
        return [
            Entry(
                label=label,
                purpose=PRIVATE,
                fingerprint=fingerprint(cert),
                subject=cert.subject.rfc4514_string(),
                not_before=cert.not_valid_before_utc,
                not_after=cert.not_valid_after_utc,
                pem=_pem(cert),
                root=root,
            )
            for label, root, cert in labelled
        ]

    # -- inspection and compatibility -------------------------------------------------------
    def inspect(self, data: bytes | str, principal: Principal) -> dict[str, Any]:
        """Classify a device certificate (PEM or DER, PEM optionally followed by its chain); our
        record of it (status, lineage) is added only for a device in ``principal``'s scope."""
        with self.db.read() as session:
            entries = self._entries(session)
            bundle = [(e, x509.load_pem_x509_certificate(e.pem.encode())) for e in entries]
            result = inspect_chain(data, bundle, self.clock.now())
            if result.generation == OURS:
                self._add_ours(session, result, principal)
        return dataclasses.asdict(result)

    def _add_ours(self, session: Session, result: Inspection, principal: Principal) -> None:
        serial = serial_text(int(result.serial, 16))
        row = certs.by_serial(session, serial)
        if row is not None and not in_scope(principal, MacAddress(row.mac)):
            result.ours = {"serial": serial, "known": None}
            result.advice.insert(0, "Signed by our CA; its record is outside your token's scope.")
            return
        if row is None:
            result.ours = {"serial": serial, "known": False}
            result.advice.insert(0, "Signed by our CA, but no certificate with this serial is on record.")
            return
        result.ours = {
            "serial": row.serial,
            "known": True,
            "status": row.status,
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            "revocation_reason": row.revocation_reason,
            "replaces": row.replaces,
            "replaced_by": row.replaced_by,
        }
        if row.status == "revoked":
            next_step = (
                f"use its replacement, serial {row.replaced_by}"
                if row.replaced_by
                else "issue a new certificate for the device"
            )
            result.advice.insert(
                0,
                f"Revoked on {row.revoked_at:%Y-%m-%d} ({row.revocation_reason or 'no reason given'}): "
                f"{next_step}.",
            )
            result.advice = [a for a in result.advice if not a.startswith("Nothing to do")]
        elif row.replaced_by:
            result.advice.insert(0, f"Replaced by serial {row.replaced_by}; the device should use that one.")

    def compatibility(self, software: str) -> dict[str, Any]:
        """The FAQ table's answer for ``software`` plus the anchors a provisioning server needs."""
        version = firmware.parse_version(software)
        row = firmware.generation(version)
        purposes = firmware.trust_purposes(row)
        with self.db.read() as session:
            entries = [e for e in self._entries(session) if e.purpose in purposes]
        missing = [p for p in purposes if p != PRIVATE and not any(e.purpose == p for e in entries)]
        notes = [row.note]
        notes += [
            f"No '{p}' anchor is imported yet: capture it from a device with 'ca-service trust capture' "
            f"and import it with 'ca-service trust add FILE --purpose {p}'."
            for p in missing
        ]
        return {
            "firmware": software,
            "software": str(version),
            "table_row": row.label,
            "services": {
                name: {"certificate": cert, "description": firmware.CERTIFICATES[cert]}
                for name, cert in zip(
                    firmware.SERVICES, (row.auto_provisioning, row.firmware_update, row.sip), strict=True
                )
            },
            "sha1_refused": firmware.sha1_refused(version),
            "trust_purposes": list(purposes),
            "anchors": [
                {"label": e.label, "purpose": e.purpose, "fingerprint_sha256": e.fingerprint} for e in entries
            ],
            "missing_purposes": missing,
            "bundle_url": f"/trust/bundle.pem?firmware={version}",
            "notes": notes,
        }

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _row(session: Session, anchor_id: int) -> TrustAnchorRow:
        row = trust.anchor(session, anchor_id)
        if row is None:
            raise CAError(Kind.NOT_FOUND, f"No trust anchor with id {anchor_id}.")
        return row

    @staticmethod
    def _anchor_json(row: TrustAnchorRow, now: datetime) -> dict[str, Any]:
        return {
            "id": row.id,
            "label": row.label,
            "purpose": row.purpose,
            "subject": row.subject,
            "fingerprint_sha256": row.fingerprint_sha256,
            "not_before": row.not_before,
            "not_after": row.not_after,
            "expires_within_90_days": row.not_after - now < EXPIRY_WARNING,
            "warnings": list(row.warnings or ()),
            "created_by": row.created_by,
            "created_at": row.created_at,
            "retired_by": row.retired_by,
            "retired_at": row.retired_at,
            "pem": _pem(x509.load_der_x509_certificate(row.der)),
        }


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _our_cas(session: Session) -> tuple[object, ...]:
    """Which of our CAs the bundle lists, as a rendering depends on it beside the bundle version
    (a rotation or retirement changes the bundle before a version records it)."""
    return tuple(
        (r.id, r.role.value, r.state.value, bool(r.certificate_pem))
        for r in issuer_store.all_issuers(session)
    )


def _require_admin(principal: Principal) -> None:
    require_role(principal, (Role.ADMIN,), "Changing trust anchors")


def _purposes(purposes: str | None, software: str | None) -> set[str]:
    wanted = set(ALL_PURPOSES)
    if purposes:
        asked = {p.strip() for p in purposes.split(",") if p.strip()}
        unknown = asked - wanted
        if unknown or not asked:
            raise CAError(
                Kind.MALFORMED,
                f"Unknown purpose filter '{purposes[:60]}'; use a comma-separated list of "
                f"{', '.join(ALL_PURPOSES)}.",
            )
        wanted &= asked
    if software:
        wanted &= set(firmware.trust_purposes(firmware.generation(firmware.parse_version(software))))
    return wanted


def _filter_text(software: str | None, wanted: set[str]) -> str:
    parts = [f"purposes {', '.join(sorted(wanted, key=ALL_PURPOSES.index)) or '(none)'}"]
    if software:
        parts.append(f"for device software {firmware.parse_version(software)}")
    return "; ".join(parts)
