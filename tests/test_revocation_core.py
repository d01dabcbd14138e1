"""One revocation core behind every entry point: REST by serial, REST by device, the CLI, ACME
revokeCert by account and by the certificate's own key, and the superseded job. Each leaves the
same audit shape and the same CRL effect; the kinds of error map to both renderers."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from pathlib import Path

import josepy as jose
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from flask import Flask
from sqlalchemy import select, update

from ca_service import Services, build_services
from ca_service.acme import problems as acme_problems
from ca_service.api import problems as rest_problems
from ca_service.config import Settings
from ca_service.errors import CAError, Kind
from ca_service.store.models import AuditRow, CertificateRow
from tests.acme_helpers import acme_client, register
from tests.helpers import LiveServer, cli, make_csr


def _issue(server: LiveServer, admin: dict[str, str], tmp: Path, mac: str, name: str, **extra: str) -> dict:  # type: ignore[type-arg]
    _, csr = make_csr(tmp, mac, name=name)
    r = requests.post(
        server.url + "/api/v1/certificates", json={"csr": csr.read_text(), **extra}, headers=admin, timeout=30
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.slow
def test_every_entry_point_revokes_alike(
    services: Services,
    settings: Settings,
    env_for: dict[str, str],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    admin_token = cli(env_for, "token", "create", "--role", "admin", "--name", "ops").stdout.strip()
    admin = {"Authorization": f"Bearer {admin_token}"}
    server = LiveServer({**env_for, "CA_SERVICE_CRL_COALESCE_MS": "50"}).start()
    try:
        rest = _issue(server, admin, tmp_path, "7C2F80000001", "rest")
        by_mac = _issue(server, admin, tmp_path, "7C2F80000002", "mac")
        by_cli = _issue(server, admin, tmp_path, "7C2F80000003", "cli")
        old = _issue(server, admin, tmp_path, "7C2F80000004", "old")
        new = _issue(server, admin, tmp_path, "7C2F80000004", "new", replaces=old["serial"])

        acme = acme_client(server.url)
        register(services, acme)
        acct_csr = make_csr(tmp_path, "7C2F80000005", name="acct")[1]
        order = acme.new_order(acct_csr.read_bytes())
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
        by_account = x509.load_pem_x509_certificate(
            acme.finalize_order(order, deadline).fullchain_pem.encode()
        )
        key_file, key_csr = make_csr(tmp_path, "7C2F80000006", name="keyholder")
        order = acme.new_order(key_csr.read_bytes())
        by_key = x509.load_pem_x509_certificate(acme.finalize_order(order, deadline).fullchain_pem.encode())

        # one revocation through each entry point
        r = requests.post(
            f"{server.url}/api/v1/certificates/{rest['serial']}/revoke",
            json={"reason": "keyCompromise"},
            headers=admin,
            timeout=10,
        )
        assert r.status_code == 200
        r = requests.post(
            f"{server.url}/api/v1/devices/7C2F80000002/revoke",
            json={"reason": "cessationOfOperation"},
            headers=admin,
            timeout=10,
        )
        assert r.status_code == 200 and [x["serial"] for x in r.json()] == [by_mac["serial"]]
        cli(env_for, "revoke", by_cli["serial"], "--reason", "affiliationChanged")
        acme.revoke(by_account, 4)
        holder = acme_client(server.url, jose.JWKEC(key=load_pem_private_key(key_file.read_bytes(), None)))
        holder.revoke(by_key, 1)
        with services.db.write() as session:
            session.execute(
                update(CertificateRow)
                .where(CertificateRow.serial == new["serial"])
                .values(created_at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2))
            )
        graced = build_services(make_settings(revoke_superseded_after_hours=1))
        try:
            assert [x.serial for x in graced.revocation.revoke_superseded()] == [old["serial"]]
        finally:
            graced.db.dispose()

        account_serial, key_serial = (format(c.serial_number, "X") for c in (by_account, by_key))
        account_serial, key_serial = (s.zfill(len(s) + len(s) % 2) for s in (account_serial, key_serial))
        expected = {
            rest["serial"]: ("keyCompromise", "rest"),
            by_mac["serial"]: ("cessationOfOperation", "rest"),
            by_cli["serial"]: ("affiliationChanged", "cli"),
            account_serial: ("superseded", "acme"),
            key_serial: ("keyCompromise", "acme"),
            old["serial"]: ("superseded", "renewal"),
        }
        with services.db.read() as session:
            rows = session.scalars(select(AuditRow).where(AuditRow.action == "certificate.revoke")).all()
        assert {row.serial: (row.detail["reason"], row.detail["via"]) for row in rows} == expected
        assert {frozenset(row.detail) for row in rows} == {frozenset({"reason", "invalidity_date", "via"})}
        assert all(row.outcome == "success" and row.mac for row in rows)
        actors = {row.serial: row.actor for row in rows}
        assert actors[key_serial] == f"provisioner:certificate-key:{key_serial}"
        assert actors[old["serial"]] == "admin:renewal"

        # the CRL effect is the same for all: every one is listed (the publisher runs shortly)
        issuer = rest["issuer"]
        deadline_s = time.monotonic() + 20
        while True:
            crl = x509.load_der_x509_crl(requests.get(f"{server.url}/crl/{issuer}.crl", timeout=10).content)
            missing = [x for x in expected if not crl.get_revoked_certificate_by_serial_number(int(x, 16))]
            if not missing or time.monotonic() > deadline_s:
                break
            time.sleep(0.2)
        assert missing == []
    finally:
        server.stop()


def test_every_kind_renders_in_both_protocols(app: Flask) -> None:
    """The REST and ACME renderers each map every Kind (no KeyError, no 200)."""
    for kind in Kind:
        error = CAError(kind, f"a {kind.value} refusal")
        with app.test_request_context("/api/v1/certificates"):
            rest = rest_problems.render(error)
        with app.test_request_context("/acme/new-order"):
            acme = acme_problems.render(error)
        assert rest.status_code >= 400 and acme.status_code >= 400, kind
        assert rest.json["type"] == f"urn:ca-service:problem:{kind.value}"
        assert acme.json["type"].startswith("urn:ietf:params:acme:error:")
        assert rest.json["detail"] == acme.json["detail"] == f"a {kind.value} refusal"
