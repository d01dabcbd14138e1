"""Device registration: one at a time, or thousands from a CSV file.

A CSV import is idempotent: a device already registered with the same values is left alone, one
with other values is updated, a new one is inserted. Each batch is one transaction with one
audit entry; a row that cannot be taken is reported with its line and the reason, and the other
rows are kept.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ca_service.domain import MacAddress, Principal, printable
from ca_service.enrollment.service import DeviceView, Enrollment, record_refusal
from ca_service.errors import CAError, Kind
from ca_service.policy import WRITERS, check_scope, device_mac, require_role
from ca_service.store import audit
from ca_service.store import devices as store

MAX_TEXT = 64  # model and firmware
MAX_LABELS = 32
MAX_LABEL_KEY = 64
MAX_LABEL_VALUE = 256
BATCH_SIZE = 500
KNOWN_COLUMNS = ("mac", "model", "firmware")


@dataclass
class Rejected:
    line: int
    mac: str
    reason: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.rejected)


def check_fields(model: str | None, firmware: str | None, labels: dict[str, Any]) -> None:
    """Refuse values the devices table cannot hold."""
    for name, value in (("model", model), ("firmware", firmware)):
        if value is not None and len(value) > MAX_TEXT:
            raise CAError(Kind.MALFORMED, f"The {name} is at most {MAX_TEXT} characters.")
    if len(labels) > MAX_LABELS:
        raise CAError(Kind.MALFORMED, f"A device has at most {MAX_LABELS} labels.")
    for key, value in labels.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_LABEL_KEY:
            raise CAError(Kind.MALFORMED, f"A label name is 1 to {MAX_LABEL_KEY} characters.")
        if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE:
            raise CAError(
                Kind.MALFORMED, f"A label value is a string of at most {MAX_LABEL_VALUE} characters."
            )


class Devices:
    """Registering and changing devices on behalf of a principal (within its scopes)."""

    def __init__(self, enrollment: Enrollment) -> None:
        self.enrollment = enrollment
        self.db = enrollment.db
        self.oui_allowlist = enrollment.settings.oui_allowlist

    def _writable(self, principal: Principal, mac_text: str) -> MacAddress:
        require_role(principal, WRITERS, "Changing devices")
        mac = device_mac(mac_text, self.oui_allowlist)
        try:
            check_scope(principal, mac)
        except CAError:
            record_refusal(self.db, principal.label, "device.write", mac.value, None, "out of scope")
            raise
        return mac

    def register(
        self,
        principal: Principal,
        mac_text: str,
        *,
        model: str | None = None,
        firmware: str | None = None,
        labels: dict[str, Any] | None = None,
    ) -> DeviceView:
        mac = self._writable(principal, mac_text)
        labels = labels or {}
        check_fields(model, firmware, labels)
        with self.db.write() as session:
            store.add(session, mac=mac.value, model=model, firmware=firmware, labels=labels)
            audit.record(session, actor=principal.label, action="device.register", mac=mac.value)
        return self.enrollment.device(mac.value, principal)

    def change(self, principal: Principal, mac_text: str, changes: dict[str, Any]) -> DeviceView:
        """Set model and/or firmware; ``labels`` replaces the labels (null values remove one)."""
        mac = self._writable(principal, mac_text)
        with self.db.write() as session:
            row = store.locked(session, mac.value)
            if row is None:
                raise CAError(Kind.NOT_FOUND, f"No device {mac}.")
            model = changes.get("model", row.model)
            firmware = changes.get("firmware", row.firmware)
            labels = dict(row.labels or {})
            for key, value in (changes.get("labels") or {}).items():
                if value is None:
                    labels.pop(key, None)
                else:
                    labels[key] = value
            check_fields(model, firmware, labels)
            store.update_many(
                session, [{"mac": mac.value, "model": model, "firmware": firmware, "labels": labels}]
            )
            audit.record(session, actor=principal.label, action="device.change", mac=mac.value)
        return self.enrollment.device(mac.value, principal)

    def page(self, principal: Principal, offset: int, limit: int) -> tuple[list[DeviceView], int]:
        scopes = principal.mac_prefixes
        with self.db.read() as session:
            rows, total = store.page(session, mac_prefixes=scopes, offset=offset, limit=limit)
            return [
                DeviceView(r.mac, r.model, r.firmware, dict(r.labels or {}), r.created_at, []) for r in rows
            ], total

    # -- CSV import -------------------------------------------------------------------------
    def import_csv(
        self,
        principal: Principal,
        text: Iterable[str],
        *,
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Import devices from CSV lines with a header row: ``mac`` (required), ``model``,
        ``firmware``; every other column is a label (empty cells are skipped)."""
        require_role(principal, WRITERS, "Importing devices")
        reader = csv.DictReader(iter(text))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if "mac" not in header:
            raise CAError(
                Kind.MALFORMED,
                "The CSV needs a header row with a 'mac' column (optional: model, firmware, labels).",
            )
        reader.fieldnames = header
        report = ImportReport()
        seen: dict[str, int] = {}
        batch: list[tuple[int, dict[str, Any]]] = []
        for line, row in self._rows(reader):
            try:
                values = self._parse(principal, row)
                if values["mac"] in seen:
                    raise CAError(Kind.CONFLICT, f"Duplicate of line {seen[values['mac']]}.")
                seen[values["mac"]] = line
                batch.append((line, values))
            except CAError as exc:
                report.rejected.append(Rejected(line, printable(str(row.get("mac") or "")), exc.detail))
            if len(batch) >= batch_size:
                self._commit(principal, batch, report)
                batch = []
                if progress:
                    progress(line)
        self._commit(principal, batch, report)
        if report.rejected:
            record_refusal(
                self.db,
                principal.label,
                "device.import",
                None,
                None,
                f"{len(report.rejected)} rows rejected, first at line {report.rejected[0].line}",
            )
        if progress:
            progress(reader.line_num)
        return report

    @staticmethod
    def _rows(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as exc:
            raise CAError(Kind.MALFORMED, f"The CSV cannot be read at line {reader.line_num}.") from exc

    def _parse(self, principal: Principal, row: dict[str, Any]) -> dict[str, Any]:
        if None in row:
            raise CAError(Kind.MALFORMED, "The row has more cells than the header.")
        mac = device_mac(str(row.get("mac") or ""), self.oui_allowlist)
        check_scope(principal, mac)
        model = (row.get("model") or "").strip() or None
        firmware = (row.get("firmware") or "").strip() or None
        labels = {
            k: v.strip()
            for k, v in row.items()
            if k not in KNOWN_COLUMNS and k and isinstance(v, str) and v.strip()
        }
        check_fields(model, firmware, labels)
        return {"mac": mac.value, "model": model, "firmware": firmware, "labels": labels}

    def _commit(
        self,
        principal: Principal,
        batch: list[tuple[int, dict[str, Any]]],
        report: ImportReport,
    ) -> None:
        if not batch:
            return
        with self.db.write() as session:
            existing = store.existing(session, (v["mac"] for _, v in batch))
            new, changed = [], []
            for _, values in batch:
                row = existing.get(values["mac"])
                if row is None:
                    new.append(values)
                    continue
                merged = {**(row.labels or {}), **values["labels"]}
                target = {
                    "mac": row.mac,
                    "model": values["model"] or row.model,
                    "firmware": values["firmware"] or row.firmware,
                    "labels": merged,
                }
                if (target["model"], target["firmware"], target["labels"]) != (
                    row.model,
                    row.firmware,
                    row.labels,
                ):
                    changed.append(target)
            store.insert_many(session, new)
            store.update_many(session, changed)
            audit.record(
                session,
                actor=principal.label,
                action="device.import",
                detail={
                    "created": len(new),
                    "updated": len(changed),
                    "first_line": batch[0][0],
                    "last_line": batch[-1][0],
                },
            )
        report.created += len(new)
        report.updated += len(changed)
        report.unchanged += len(batch) - len(new) - len(changed)


def csv_lines(data: bytes) -> io.StringIO:
    """Uploaded CSV bytes as text lines (UTF-8, a BOM is dropped)."""
    try:
        return io.StringIO(data.decode("utf-8-sig"), newline="")
    except UnicodeDecodeError as exc:
        raise CAError(Kind.MALFORMED, "The CSV must be UTF-8 text.") from exc
