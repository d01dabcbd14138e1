"""Renewal windows (RFC 9773), lineage over REST, the renewals-due report and its CLI."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from ca_service import Services, build_services
from ca_service.renewal.windows import WindowShape, suggested_window
from ca_service.store.models import AuditRow, CertificateRow, EabKeyRow, IssuerRow
from tests.helpers import REPO, make_csr

NB = datetime(2026, 1, 1, tzinfo=UTC)
NA = NB + timedelta(days=365)


@given(st.text(alphabet="0123456789ABCDEF", min_size=2, max_size=40), st.integers(1, 3650))
def test_window_inside_lifetime_and_deterministic(serial: str, days: int) -> None:
    not_after = NB + timedelta(days=days)
    shape = WindowShape()
    w = suggested_window(NB, not_after, serial, NB, shape=shape)
    assert w == suggested_window(NB, not_after, serial, NB + timedelta(days=5), shape=shape)
    lifetime = not_after - NB
    assert NB + lifetime * shape.start <= w.start <= NB + lifetime * (shape.start + shape.spread)
    assert w.start <= w.end <= not_after and not w.urgent


def test_windows_spread_over_a_fleet() -> None:
    starts = {suggested_window(NB, NA, f"{i:040X}", NB).start for i in range(500)}
    assert len(starts) == 500
    span = max(starts) - min(starts)
    assert span > timedelta(days=30)  # 10% of a year, minus sampling slack


def test_window_is_now_when_revoked_or_issuer_retiring() -> None:
    now = NB + timedelta(days=10)
    for kwargs in ({"revoked": True}, {"issuer_retiring": True}):
        w = suggested_window(NB, NA, "0A", now, **kwargs)
        assert w.urgent and w.start == now and w.end > now


def issue(client: FlaskClient, headers: dict[str, str], tmp: Path, mac: str, name: str, **extra: str):
    _, csr = make_csr(tmp, mac, name=name)
    return client.post("/api/v1/certificates", json={"csr": csr.read_text(), **extra}, headers=headers)


def test_rest_renewal_info_replaces_and_lineage(
    client: FlaskClient, services: Services, admin: dict[str, str], token, tmp_path: Path
) -> None:
    first = issue(client, admin, tmp_path, "7C2F80C6E5C2", "a").json
    info = client.get(f"/api/v1/certificates/{first['serial']}/renewal-info", headers=admin)
    assert info.status_code == 200 and int(info.headers["Retry-After"]) > 0
    window = info.json["suggestedWindow"]
    assert first["not_before"] < window["start"] < window["end"] < first["not_after"]

    second = issue(client, admin, tmp_path, "7C2F80C6E5C2", "b", replaces=first["serial"])
    assert second.status_code == 201 and second.json["replaces"] == first["serial"]
    # a certificate is replaced once; another device's certificate cannot be replaced
    with services.db.read() as session:
        before = session.scalar(select(func.count()).select_from(CertificateRow))
    twice = issue(client, admin, tmp_path, "7C2F80C6E5C2", "c", replaces=first["serial"])
    assert twice.status_code == 409 and "already been replaced" in twice.json["detail"]
    other = issue(client, admin, tmp_path, "7C2F80000001", "d", replaces=second.json["serial"])
    assert other.status_code == 403 and "same MAC" in other.json["detail"]
    unknown = issue(client, admin, tmp_path, "7C2F80C6E5C2", "e", replaces="0A0B")
    assert unknown.status_code == 404
    with services.db.read() as session:
        assert session.scalar(select(func.count()).select_from(CertificateRow)) == before

    device = client.get("/api/v1/devices/7c:2f:80:c6:e5:c2", headers=admin).json
    chain = {c["serial"]: (c["replaces"], c["replaced_by"]) for c in device["certificates"]}
    assert chain == {
        first["serial"]: (None, second.json["serial"]),
        second.json["serial"]: (first["serial"], None),
    }

    # a provisioner outside the scope sees nothing; retiring issuer moves the window to now
    outsider = token("provisioner", "001A2B")
    assert (
        client.get(f"/api/v1/certificates/{first['serial']}/renewal-info", headers=outsider).status_code
        == 404
    )
    with services.db.write() as session:
        session.execute(update(IssuerRow).where(IssuerRow.role == "issuing").values(state="retiring"))
    urgent = client.get(f"/api/v1/certificates/{second.json['serial']}/renewal-info", headers=admin).json
    start = datetime.fromisoformat(urgent["suggestedWindow"]["start"])
    assert abs(start - datetime.now(UTC)) < timedelta(minutes=1)
    with services.db.read() as session:
        audit = session.scalars(select(AuditRow).where(AuditRow.action == "certificate.issue")).all()
        assert [a.detail.get("replaces") for a in audit] == [None, first["serial"]]


def _due_soon(client: FlaskClient, services: Services, admin: dict[str, str], tmp: Path) -> list[str]:
    """Four certificates, three of them expiring in 10 days, one of those already renewed:
    returns the serials due (the first and the third)."""
    a = issue(client, admin, tmp, "7C2F80000001", "a").json
    b = issue(client, admin, tmp, "7C2F80000002", "b").json
    c = issue(client, admin, tmp, "001A2B000003", "c").json
    issue(client, admin, tmp, "7C2F80000002", "b2", replaces=b["serial"])  # b has a successor
    soon = datetime.now(UTC) + timedelta(days=10)
    with services.db.write() as session:
        session.execute(
            update(CertificateRow)
            .where(CertificateRow.serial.in_([a["serial"], b["serial"], c["serial"]]))
            .values(not_after=soon)
        )
    return [a["serial"], c["serial"]]


def test_renewals_due_api(
    client: FlaskClient, services: Services, admin: dict[str, str], token, tmp_path: Path
) -> None:
    due_serials = _due_soon(client, services, admin, tmp_path)
    due = client.get("/api/v1/renewals/due?days=30", headers=admin)
    assert due.status_code == 200
    assert sorted(d["serial"] for d in due.json) == sorted(due_serials)
    assert client.get("/api/v1/renewals/due?days=5", headers=admin).json == []
    scoped = client.get("/api/v1/renewals/due?days=30", headers=token("provisioner", "7C2F80")).json
    assert [d["serial"] for d in scoped] == [due_serials[0]]
    bad = client.get("/api/v1/renewals/due?days=-1", headers=admin)
    assert bad.status_code == 422


@pytest.mark.slow  # the CLI as a subprocess
def test_renewals_due_cli(
    client: FlaskClient, services: Services, admin: dict[str, str], tmp_path: Path, env_for
) -> None:
    due_serials = _due_soon(client, services, admin, tmp_path)
    cli = subprocess.run(
        [sys.executable, "-m", "ca_service.cli", "renewals", "due", "--days", "30", "--json"],
        capture_output=True,
        env={**env_for, "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        check=True,
    )
    assert sorted(d["serial"] for d in json.loads(cli.stdout)) == sorted(due_serials)


@pytest.mark.slow  # the CLI as subprocesses
def test_eab_create_cli(services: Services, env_for: dict[str, str]) -> None:
    run = [
        sys.executable,
        "-m",
        "ca_service.cli",
        "eab",
        "create",
        "--scope",
        "7c:2f:80",
        "--name",
        "platform",
    ]
    out = subprocess.run(
        [*run, "--json"], capture_output=True, env={**env_for, "PATH": "/usr/bin:/bin"}, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert set(created) == {"kid", "hmac_key"} and len(created["hmac_key"]) == 43
    key = services.acme.eab_key(created["kid"])
    assert key.hmac_key == base64.urlsafe_b64decode(created["hmac_key"] + "=")
    with services.db.read() as session:
        row = session.scalars(select(EabKeyRow)).one()
        assert row.scopes == "7C2F80" and key.hmac_key not in row.hmac_key  # sealed, not stored plain
        events = session.scalars(select(AuditRow).where(AuditRow.action == "acme.eab.create")).all()
        assert len(events) == 1 and created["hmac_key"] not in json.dumps(events[0].detail)
    again = subprocess.run(run, capture_output=True, env={**env_for, "PATH": "/usr/bin:/bin"}, cwd=REPO)
    assert again.returncode == 1 and b"already exists" in again.stderr
    noscope = subprocess.run(
        [*run[:5], "--scope", "xyz", "--name", "n2"],
        capture_output=True,
        env={**env_for, "PATH": "/usr/bin:/bin"},
        cwd=REPO,
    )
    assert noscope.returncode == 1 and b"not a MAC prefix" in noscope.stderr


def test_revoke_superseded_after_grace(
    client: FlaskClient, services: Services, admin: dict[str, str], tmp_path: Path, make_settings
) -> None:
    old = issue(client, admin, tmp_path, "7C2F80000001", "a").json
    new = issue(client, admin, tmp_path, "7C2F80000001", "b", replaces=old["serial"]).json
    lone = issue(client, admin, tmp_path, "7C2F80000002", "c").json
    assert services.revocation.revoke_superseded() == []  # off by default
    graced = build_services(make_settings(revoke_superseded_after_hours=24))
    try:
        assert graced.revocation.revoke_superseded() == []  # the successor is younger than the grace
        with services.db.write() as session:
            session.execute(
                update(CertificateRow)
                .where(CertificateRow.serial == new["serial"])
                .values(created_at=datetime.now(UTC) - timedelta(hours=25))
            )
        assert [r.serial for r in graced.revocation.revoke_superseded()] == [old["serial"]]
        assert graced.revocation.revoke_superseded() == []
    finally:
        graced.db.dispose()
    with services.db.read() as session:
        status = dict(session.execute(select(CertificateRow.serial, CertificateRow.status)).all())
        assert status == {old["serial"]: "revoked", new["serial"]: "valid", lone["serial"]: "valid"}
        event = session.scalars(select(AuditRow).where(AuditRow.action == "certificate.revoke")).one()
        assert event.serial == old["serial"] and event.detail["reason"] == "superseded"
