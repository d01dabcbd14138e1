"""Device registration, one at a time and from CSV (REST and CLI), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ca_service.cli import main
from ca_service.store.models import AuditRow, DeviceRow

BAD_ROWS = {
    "ZZZ": "not a device MAC",
    "01:00:5E:00:00:01": "multicast",
    "000000000000": "all-zero",
    "Einstein2": "Einstein2",
}


def big_csv(n: int) -> tuple[str, int]:
    """``n`` data rows with a handful of bad ones; returns the text and the number of good rows."""
    lines = ["mac,model,firmware,site"]
    bad = 0
    for i in range(n):
        if i % 1000 == 7:
            lines.append(f"{list(BAD_ROWS)[(i // 1000) % len(BAD_ROWS)]},N870 IP PRO,,")
            bad += 1
        elif i % 1000 == 8:
            lines.append(f"7C2F80{i - 1:06X},N870 IP PRO,x,a,extra-cell")  # more cells than the header
            bad += 1
        elif i % 1000 == 9:
            lines.append(
                f"7c:2f:80:{(i - 3) >> 16 & 255:02x}:{(i - 3) >> 8 & 255:02x}:{(i - 3) & 255:02x},N870,,"
            )
            bad += 1  # duplicate of an earlier row, in another spelling
        else:
            lines.append(f"7C2F80{i:06X},N870 IP PRO,83.V2.65.0,site-{i % 7}")
    return "\n".join(lines) + "\n", n - bad


def device_count(services: Any) -> int:
    with services.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(DeviceRow)) or 0)


def snapshot(services: Any) -> list[tuple[Any, ...]]:
    with services.db.read() as session:
        return [
            (r.mac, r.model, r.firmware, sorted(r.labels.items()), r.updated_at)
            for r in session.scalars(select(DeviceRow).order_by(DeviceRow.mac))
        ]


def test_register_change_list(client: FlaskClient, admin: dict[str, str], token: Any, services: Any) -> None:
    body = {
        "mac": "7c-2f-80-c6-e5-c2",
        "model": "N870 IP PRO",
        "firmware": "83.V2.65.0",
        "labels": {"site": "A"},
    }
    created = client.post("/api/v1/devices", json=body, headers=admin)
    assert created.status_code == 201, created.json
    assert (
        created.json["mac"] == "7C2F80C6E5C2"
        and created.headers["Location"] == "/api/v1/devices/7C2F80C6E5C2"
    )
    again = client.post("/api/v1/devices", json={**body, "mac": "7C2F80C6E5C2"}, headers=admin)
    assert again.status_code == 409 and again.mimetype == "application/problem+json"
    changed = client.patch(
        "/api/v1/devices/7c2f.80c6.e5c2",
        json={"firmware": "83.V2.66.0", "labels": {"site": None, "floor": "2"}},
        headers=admin,
    )
    assert changed.status_code == 200, changed.json
    assert (changed.json["firmware"], changed.json["labels"]) == ("83.V2.66.0", {"floor": "2"})
    assert client.get("/api/v1/devices/7C2F80C6E5C2", headers=admin).json["model"] == "N870 IP PRO"

    prov = token("provisioner", "589EC6")
    assert client.post("/api/v1/devices", json={"mac": "589EC6000001"}, headers=prov).status_code == 201
    outside = client.post("/api/v1/devices", json={"mac": "7C2F80000001"}, headers=prov)
    assert outside.status_code == 403
    assert client.patch("/api/v1/devices/7C2F80C6E5C2", json={"model": "x"}, headers=prov).status_code == 403
    assert [d["mac"] for d in client.get("/api/v1/devices", headers=prov).json] == ["589EC6000001"]
    assert [d["mac"] for d in client.get("/api/v1/devices", headers=admin).json] == [
        "589EC6000001",
        "7C2F80C6E5C2",
    ]
    with services.db.read() as session:
        refused = session.scalars(select(AuditRow).where(AuditRow.outcome == "refused")).all()
        assert [(a.action, a.mac) for a in refused] == [
            ("device.write", "7C2F80000001"),
            ("device.write", "7C2F80C6E5C2"),
        ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"mac": "7C2F80C6E5"}, None),
        ({"mac": "FFFFFFFFFFFF"}, None),
        ({"mac": "7C2F80C6E5C2", "model": "x" * 65}, "model"),
        ({"mac": "7C2F80C6E5C2", "labels": {"k": 5}}, "labels"),
        ({"model": "N870"}, "mac"),
    ],
)
def test_register_refusals_write_nothing(
    client: FlaskClient, admin: dict[str, str], services: Any, body: dict[str, Any], field: str | None
) -> None:
    response = client.post("/api/v1/devices", json=body, headers=admin)
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    if field:
        assert field in response.json["errors"]["json"]
    else:
        assert "MAC" in response.json["detail"] or "identifies no device" in response.json["detail"]
    assert device_count(services) == 0


def test_bulk_import_10000(client: FlaskClient, admin: dict[str, str], services: Any) -> None:
    text, good = big_csv(10_000)
    assert len(text.encode()) > 64 * 1024  # above the general body cap: this endpoint has its own
    headers = {**admin, "Content-Type": "text/csv"}
    first = client.post("/api/v1/device-imports", data=text, headers=headers)
    assert first.status_code == 200, first.json
    report = first.json
    assert (report["rows"], report["created"], report["updated"], report["unchanged"]) == (10_000, good, 0, 0)
    assert len(report["rejected"]) == 10_000 - good == 30
    reasons = {r["line"]: r["reason"] for r in report["rejected"]}
    assert "identifies no device" in reasons[1 + 1 + 1007] or "not a device MAC" in reasons[1 + 1 + 1007]
    assert reasons[2 + 8] == "The row has more cells than the header."
    assert reasons[2 + 9] == "Duplicate of line 8."
    assert device_count(services) == good
    before = snapshot(services)
    assert before[0][3] == [("site", "site-0")]
    second = client.post("/api/v1/device-imports", data=text, headers=headers).json
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, good)
    assert second["rejected"] == report["rejected"]
    assert snapshot(services) == before  # nothing changed, not even updated_at


@pytest.mark.parametrize("settings", [{"max_import_bytes": 2000}], indirect=True)
def test_body_caps(client: FlaskClient, admin: dict[str, str], services: Any) -> None:
    text, _ = big_csv(200)
    big = client.post("/api/v1/device-imports", data=text, headers={**admin, "Content-Type": "text/csv"})
    assert big.status_code == 413 and big.json["limit_bytes"] == 2000
    huge = client.post("/api/v1/devices", json={"mac": "7C2F80000001", "model": "x" * 70_000}, headers=admin)
    assert huge.status_code == 413
    wrong = client.post("/api/v1/device-imports", data="mac\n7C2F80000001\n", headers=admin)
    assert wrong.status_code == 415 and "text/csv" in wrong.json["detail"]
    no_mac = client.post(
        "/api/v1/device-imports", data="model\nN870\n", headers={**admin, "Content-Type": "text/csv"}
    )
    assert no_mac.status_code == 400 and "'mac' column" in no_mac.json["detail"]
    assert device_count(services) == 0


def test_import_scope(client: FlaskClient, token: Any, services: Any) -> None:
    prov = token("provisioner", "7C2F80")
    data = "mac,model\n7C2F80000001,N870\n589EC6000001,N670\n"
    report = client.post(
        "/api/v1/device-imports", data=data, headers={**prov, "Content-Type": "text/csv"}
    ).json
    assert report["created"] == 1 and [r["line"] for r in report["rejected"]] == [3]
    assert "outside the scopes" in report["rejected"][0]["reason"]
    assert device_count(services) == 1
    with services.db.read() as session:
        refused = session.scalars(select(AuditRow).where(AuditRow.outcome == "refused")).one()
        assert (refused.action, refused.detail["reason"]) == (
            "device.import",
            "1 rows rejected, first at line 3",
        )


@pytest.fixture
def settings(make_settings: Any, request: pytest.FixtureRequest) -> Any:
    return make_settings(**getattr(request, "param", {}))


def test_cli_import(services: Any, env_for: dict[str, str], tmp_path: Path) -> None:
    text, good = big_csv(2_000)
    csv_file = tmp_path / "devices.csv"
    csv_file.write_text(text)
    runner = CliRunner()
    first = runner.invoke(main, ["devices", "import", str(csv_file), "--batch-size", "300"], env=env_for)
    assert first.exit_code == 2, first.output  # some rows were rejected
    assert f"{good} created, 0 updated, 0 unchanged, 6 rejected" in first.output
    assert "line,mac,reason" in first.output and "Duplicate of line 8." in first.output
    assert device_count(services) == good
    report = tmp_path / "rejected.csv"
    second = runner.invoke(main, ["devices", "import", str(csv_file), "--report", str(report)], env=env_for)
    assert f"0 created, 0 updated, {good} unchanged, 6 rejected" in second.output
    assert len(report.read_text().splitlines()) == 7
    with services.db.read() as session:
        batches = session.scalars(select(AuditRow).where(AuditRow.action == "device.import")).all()
        assert sum(b.detail.get("created", 0) for b in batches) == good and len(batches) == 7 + 4 + 2
    purge = runner.invoke(main, ["devices", "purge-keys"], env=env_for)
    assert purge.exit_code == 0 and "0 expired device key(s) deleted" in purge.output
