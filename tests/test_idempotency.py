"""Idempotency-Key on issuance and revocation (draft-ietf-httpapi-idempotency-key-header,
design decision 6): a client that lost an answer retries with the same key and gets the same
certificate, never a second one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ca_service import Services, create_app
from ca_service.clock import MovableClock
from ca_service.store.models import AuditRow, CertificateRow, IdempotencyKeyRow
from tests.helpers import LiveServer, cli, make_csr


def rows(services: Services) -> tuple[int, int, int]:
    with services.db.read() as session:
        return tuple(  # type: ignore[return-value]
            int(session.scalar(select(func.count()).select_from(m)) or 0)
            for m in (CertificateRow, AuditRow, IdempotencyKeyRow)
        )


def test_a_retry_with_the_same_key_gets_the_same_certificate(
    client: FlaskClient, services: Services, admin: dict[str, str], token, tmp_path: Path
) -> None:
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    body = {"csr": csr.read_text()}
    keyed = {**admin, "Idempotency-Key": '"8e03978e-40d5-43e8-bc93-6894a57f9324"'}
    first = client.post("/api/v1/certificates", json=body, headers=keyed)
    again = client.post("/api/v1/certificates", json=body, headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json and again.headers["Location"] == first.headers["Location"]
    assert rows(services)[:1] == (1,)
    # the same key with another body is refused, and changes nothing
    _, other = make_csr(tmp_path, "7C2F80C6E5C3", name="other")
    before = rows(services)
    reused = client.post("/api/v1/certificates", json={"csr": other.read_text()}, headers=keyed)
    assert reused.status_code == 422 and reused.json["type"].endswith(":idempotency-key-reused")
    assert rows(services) == before
    # keys belong to the token that sent them: another token's same key is a new request
    mine = client.post(
        "/api/v1/certificates",
        json=body,
        headers={**token("admin"), "Idempotency-Key": keyed["Idempotency-Key"]},
    )
    assert mine.status_code == 201 and mine.json["serial"] != first.json["serial"]
    # without a key every request is a new one
    assert (
        client.post("/api/v1/certificates", json=body, headers=admin).json["serial"] != first.json["serial"]
    )
    bad = client.post("/api/v1/certificates", json=body, headers={**admin, "Idempotency-Key": "x" * 300})
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json["detail"]


def test_revocation_retries_answer_the_same_revocation(
    client: FlaskClient, services: Services, admin: dict[str, str], tmp_path: Path
) -> None:
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    serial = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin).json["serial"]
    keyed = {**admin, "Idempotency-Key": "revoke-1"}
    path = f"/api/v1/certificates/{serial}/revoke"
    first = client.post(path, json={"reason": "keyCompromise"}, headers=keyed)
    again = client.post(path, json={"reason": "keyCompromise"}, headers=keyed)
    assert first.status_code == again.status_code == 200 and again.json == first.json
    assert client.post(path, json={"reason": "keyCompromise"}, headers=admin).status_code == 409  # unkeyed
    with services.db.read() as session:
        revocations = session.scalar(
            select(func.count()).select_from(AuditRow).where(AuditRow.action == "certificate.revoke")
        )
    assert revocations == 1


def test_device_credentials_retry_answers_the_same_delivery(
    client: FlaskClient, services: Services, admin: dict[str, str]
) -> None:
    """POST /devices/{mac}/credentials makes a key: a retry must not make a second one."""
    keyed = {**admin, "Idempotency-Key": "cred-1"}
    path = "/api/v1/devices/7C2F80C6E5C2/credentials"
    first = client.post(path, json={}, headers=keyed)
    again = client.post(path, json={}, headers=keyed)
    assert first.status_code == again.status_code == 201, again.json
    assert again.json == first.json  # the same certificate and the same download URLs
    assert rows(services)[0] == 1
    key_path = first.json["key_url"].split("://", 1)[1].split("/", 1)[1]
    assert client.get("/" + key_path).status_code == 200  # the device takes its key
    gone = client.post(path, json={}, headers=keyed)
    assert gone.status_code == 410 and rows(services)[0] == 1  # nothing made again


def test_keys_expire(settings, services: Services, admin: dict[str, str], tmp_path: Path) -> None:
    clock = MovableClock()
    app = create_app(settings, clock)
    web = app.test_client()
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    keyed = {**admin, "Idempotency-Key": "k-expiring"}
    first = web.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=keyed).json["serial"]
    clock.advance(settings.idempotency_key_hours * 3600 + 1)
    later = web.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=keyed)
    assert later.status_code == 201 and later.json["serial"] != first  # a new request by then
    app.extensions["ca_service"].db.dispose()


@pytest.mark.slow
def test_concurrent_duplicates_through_two_workers_make_one_certificate(
    services: Services, env_for: dict[str, str], tmp_path: Path
) -> None:
    token = cli(env_for, "token", "create", "--role", "admin", "--name", "ops").stdout.strip()
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "the-same-for-all"}
    server = LiveServer(env_for, workers=2).start()
    try:

        def one(_: int) -> requests.Response:
            return requests.post(
                server.url + "/api/v1/certificates",
                json={"csr": csr.read_text()},
                headers=headers,
                timeout=30,
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(one, range(16)))
    finally:
        server.stop()
    assert {a.status_code for a in answers} == {201}, {a.status_code: a.text for a in answers}
    assert len({a.json()["serial"] for a in answers}) == 1
    with services.db.read() as session:
        assert session.scalar(select(func.count()).select_from(CertificateRow)) == 1
        assert session.scalar(select(func.count()).select_from(IdempotencyKeyRow)) == 1
