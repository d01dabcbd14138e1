"""The issuance cycle (design decision 6): a serial that is already stored is never reused; the
certificate signed with it is discarded and the cycle signs again with a fresh serial."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ca_service import Services
from ca_service.enrollment import service as enrollment_service
from ca_service.store.models import AuditRow, CertificateRow
from tests.helpers import make_csr


def test_serial_collision_signs_again(
    client: FlaskClient,
    services: Services,
    admin: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    first = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
    assert first.status_code == 201
    taken = int(first.json["serial"], 16)
    serials = iter([taken, taken + 1])  # the next issuance draws the taken serial first
    monkeypatch.setattr(enrollment_service, "random_serial", lambda: next(serials))
    second = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
    assert second.status_code == 201 and int(second.json["serial"], 16) == taken + 1
    with services.db.read() as session:
        assert session.scalar(select(func.count()).select_from(CertificateRow)) == 2
        issued = session.scalars(select(AuditRow.serial).where(AuditRow.action == "certificate.issue")).all()
        assert sorted(issued) == sorted([first.json["serial"], second.json["serial"]])
