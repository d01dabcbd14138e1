"""Keys made for devices, one-time download URLs and the Gigaset provisioning step, end to end
through the REST API on SQLite and PostgreSQL, every artefact checked with the openssl CLI."""

from __future__ import annotations

import io
import json
import logging
import stat
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from ca_service.domain import Profile
from ca_service.logs import JsonFormatter
from ca_service.store.models import (
    AuditRow,
    CertificateRow,
    DeviceCredentialRow,
    DownloadTokenRow,
    WrappedKeyRow,
    utcnow,
)
from tests.helpers import openssl

MAC = "7C2F80E0D605"
UA = f"Gigaset N870 IP PRO/83.V2.65.0+build.8504c90;{MAC}"


@pytest.fixture
def settings(make_settings: Any, request: pytest.FixtureRequest) -> Any:
    return make_settings(**getattr(request, "param", {}))


def path_of(url: str) -> str:
    return url.removeprefix("http://ca.test")


def audits(services: Any, action: str) -> list[AuditRow]:
    with services.db.read() as session:
        return list(session.scalars(select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)))


def count(services: Any, model: Any) -> int:
    with services.db.read() as session:
        return len(list(session.scalars(select(model))))


def prepare(client: FlaskClient, headers: dict[str, str], status: int = 201, **body: Any) -> Any:
    """POST the provisioning step (the only way a step gets made); its JSON delivery, or None."""
    response = client.post(f"/api/v1/devices/{MAC}/provisioning-step", json=body, headers=headers)
    assert response.status_code == status, response.data[:300]
    assert response.headers["Cache-Control"] == "no-store"
    return response.json if status != 204 else None


def create(client: FlaskClient, headers: dict[str, str], mac: str = MAC, **body: Any) -> Any:
    response = client.post(f"/api/v1/devices/{mac}/credentials", json=body, headers=headers)
    assert response.status_code == 201, response.json
    assert response.headers["Cache-Control"] == "no-store"
    return response.json


def ca_files(client: FlaskClient, tmp: Path) -> tuple[Path, Path]:
    root, chain = tmp / "root.pem", tmp / "issuing.pem"
    root.write_bytes(client.get("/ca/root.pem").data)
    chain.write_bytes(client.get("/ca/issuing.pem").data)
    return root, chain


@pytest.mark.parametrize(
    ("settings", "key_type", "header"),
    [
        ({}, "ec-p256", "BEGIN PRIVATE KEY"),
        (
            {"profiles": (Profile(name="device", key_format="traditional", cert_chain=True),)},
            "ec-p256",
            "BEGIN EC PRIVATE KEY",
        ),
        (
            {"profiles": (Profile(name="device", key_format="traditional"),)},
            "rsa-2048",
            "BEGIN RSA PRIVATE KEY",
        ),
        ({"profiles": (Profile(name="device", cert_chain=True),)}, "rsa-3072", "BEGIN PRIVATE KEY"),
    ],
    indirect=["settings"],
    ids=["p256-pkcs8-leaf", "p256-traditional-chain", "rsa2048-traditional-leaf", "rsa3072-pkcs8-chain"],
)
def test_key_and_certificate_download(
    client: FlaskClient, admin: dict[str, str], services: Any, tmp_path: Path, key_type: str, header: str
) -> None:
    body = create(client, admin, "7c:2f:80:e0:d6:05", key_type=key_type)
    assert body["certificate"]["mac"] == MAC and body["certificate"]["key_type"] == key_type
    assert body["certificate_url"].startswith("http://ca.test/provisioning/cert/")
    token = body["key_url"].rsplit("/", 1)[1]
    assert len(token) >= 43  # 32 random bytes, base64url
    chain = services.settings.profile(None).cert_chain

    cert = client.get(path_of(body["certificate_url"]))
    assert cert.status_code == 200 and cert.headers["Cache-Control"] == "no-store"
    assert cert.data.count(b"BEGIN CERTIFICATE") == (2 if chain else 1)
    key = client.get(path_of(body["key_url"]))
    assert key.status_code == 200 and key.headers["Cache-Control"] == "no-store"
    assert key.data.startswith(f"-----{header}-----".encode())
    assert b"ENCRYPTED" not in key.data

    crt, pkey = tmp_path / "dev.crt", tmp_path / "dev.key"
    crt.write_bytes(cert.data)
    pkey.write_bytes(key.data)
    root, issuing = ca_files(client, tmp_path)
    assert openssl("verify", "-CAfile", str(root), "-untrusted", str(issuing), str(crt)).stdout.endswith(
        b"OK\n"
    )
    openssl("pkey", "-in", str(pkey), "-check", "-noout")
    assert (
        openssl("pkey", "-in", str(pkey), "-pubout").stdout
        == openssl("x509", "-in", str(crt), "-noout", "-pubkey").stdout
    )
    assert b"Subject: CN = " + MAC.encode() in openssl("x509", "-in", str(crt), "-noout", "-text").stdout

    # the key URL worked once: a replay is 410 and audited; the certificate URL still works
    again = client.get(path_of(body["key_url"]))
    assert again.status_code == 410 and again.mimetype == "application/problem+json"
    assert b"PRIVATE KEY" not in again.data
    assert client.get(path_of(body["certificate_url"])).data == cert.data
    assert [(a.outcome, a.serial) for a in audits(services, "download.key")] == [
        ("success", body["certificate"]["serial"]),
        ("refused", body["certificate"]["serial"]),
    ]
    assert len(audits(services, "download.cert")) == 2
    with services.db.read() as session:
        assert session.scalars(select(WrappedKeyRow)).all() == []  # the key is gone from the database
        cred = session.scalars(select(DeviceCredentialRow)).one()
        assert cred.key_delivered_at is not None and cred.serial == body["certificate"]["serial"]
        tokens = session.scalars(select(DownloadTokenRow)).all()
        assert all(token not in t.token_hash for t in tokens) and all(len(t.token_hash) == 64 for t in tokens)


def test_wrapped_key_at_rest(client: FlaskClient, admin: dict[str, str], services: Any) -> None:
    body = create(client, admin)
    wrapping = services.settings.keys_dir / "wrapping.key"
    assert stat.S_IMODE(wrapping.stat().st_mode) == 0o600
    with services.db.read() as session:
        row = session.scalars(select(WrappedKeyRow)).one()
        blob = row.blob
        assert row.kek == services.credentials.wrapping_key().label
    key_pem = client.get(path_of(body["key_url"])).data
    from cryptography.hazmat.primitives import serialization

    der = serialization.load_pem_private_key(key_pem, None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert der not in blob and der[-32:] not in blob  # encrypted, not just encoded
    assert services.credentials.wrapping_key().key not in wrapping.read_bytes()  # the file is sealed too


def test_expired_urls_are_gone_and_purged(client: FlaskClient, admin: dict[str, str], services: Any) -> None:
    body = create(client, admin)
    past = utcnow() - timedelta(seconds=1)
    with services.db.write() as session:
        session.execute(update(DownloadTokenRow).values(expires_at=past))
        session.execute(update(WrappedKeyRow).values(expires_at=past))
    for url, action in ((body["key_url"], "download.key"), (body["certificate_url"], "download.cert")):
        response = client.get(path_of(url))
        assert response.status_code == 410, response.json
        assert "expired" in response.json["detail"]
        assert [a.outcome for a in audits(services, action)] == ["refused"]
    assert count(services, WrappedKeyRow) == 0  # purged on access


def test_purge_cli_path(client: FlaskClient, admin: dict[str, str], services: Any) -> None:
    create(client, admin)
    create(client, admin, "7C2F80E0D606")
    with services.db.write() as session:
        session.execute(
            update(WrappedKeyRow)
            .where(WrappedKeyRow.credential_id == 1)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert services.credentials.purge() == 1
    assert count(services, WrappedKeyRow) == 1
    assert audits(services, "credentials.purge")[0].detail == {"keys": 1}


@pytest.mark.parametrize("settings", [{"download_bind_user_agent": True}], indirect=True)
def test_user_agent_binding(client: FlaskClient, admin: dict[str, str], services: Any) -> None:
    body = create(client, admin)
    assert body["bound_to_user_agent"] is True
    key_path = path_of(body["key_url"])
    for agent in (None, "curl/8.0", "Gigaset N870 IP PRO/83.V2.65.0+build.8504c90;7C2F80E0D606"):
        headers = {"User-Agent": agent} if agent else {}
        refused = client.get(key_path, headers=headers)
        assert refused.status_code == 403, refused.json
    assert [a.outcome for a in audits(services, "download.key")] == ["refused"] * 3
    assert count(services, WrappedKeyRow) == 1  # a refusal does not consume the key
    quoted = f'"Gigaset N870 IP PRO/83.V2.65.0+build.8504c90;{MAC.lower()}";Handset=3'
    assert client.get(path_of(body["certificate_url"]), headers={"User-Agent": UA}).status_code == 200
    assert client.get(key_path, headers={"User-Agent": quoted}).status_code == 200
    # binding off for one request overrides the setting
    free = create(client, admin, bind_user_agent=False)
    assert client.get(path_of(free["key_url"])).status_code == 200


def test_unknown_and_swapped_tokens(client: FlaskClient, admin: dict[str, str], services: Any) -> None:
    body = create(client, admin)
    cert_token = body["certificate_url"].rsplit("/", 1)[1]
    # a certificate token does not open the key
    assert client.get(f"/provisioning/key/{cert_token}").status_code == 404
    assert client.get("/provisioning/key/" + "A" * 43).status_code == 404
    assert audits(services, "download.key") == []  # unknown tokens are counted, not written
    assert count(services, WrappedKeyRow) == 1


def test_scope_and_roles(client: FlaskClient, token: Any, services: Any) -> None:
    prov = token("provisioner", "7C2F80")
    other = token("provisioner", "589EC6")
    auditor = token("auditor")
    for headers, status in ((other, 403), (auditor, 403)):
        r = client.post(f"/api/v1/devices/{MAC}/credentials", json={}, headers=headers)
        assert r.status_code == status and r.mimetype == "application/problem+json"
        r = client.get(f"/api/v1/devices/{MAC}/provisioning.xml", headers=headers)
        assert r.status_code == status
    refused = audits(services, "credentials.create") + audits(services, "provisioning.step")
    assert [(a.outcome, a.mac, a.detail["reason"]) for a in refused] == [("refused", MAC, "out of scope")] * 2
    assert count(services, CertificateRow) == 0 and count(services, WrappedKeyRow) == 0
    bad = client.post(f"/api/v1/devices/{MAC}/credentials", json={"key_type": "rsa-1024"}, headers=prov)
    assert bad.status_code == 422 and "rsa-2048" in json.dumps(bad.json)
    assert count(services, CertificateRow) == 0
    assert create(client, prov)["certificate"]["mac"] == MAC
    no_token = client.post(f"/api/v1/devices/{MAC}/credentials", json={})
    assert no_token.status_code == 401


@pytest.mark.parametrize("settings", [{"public_url": "http://ca.test/p&y=2"}], indirect=True)
def test_provisioning_xml_escapes(client: FlaskClient, admin: dict[str, str]) -> None:
    prepare(client, admin)
    response = client.get(f"/api/v1/devices/{MAC}/provisioning.xml", headers=admin)
    assert response.status_code == 200 and response.mimetype == "application/xml"
    assert b"&amp;y=2/provisioning/cert/" in response.data and b"&y=" not in response.data
    root = ET.fromstring(response.data)
    step = root.find("custom/step")
    assert step is not None and step.get("url", "").startswith("http://ca.test/p&y=2/provisioning/cert/")


def test_provisioning_step_lifecycle(
    client: FlaskClient, admin: dict[str, str], services: Any, tmp_path: Path
) -> None:
    # nothing prepared: the GETs show no step and make nothing
    assert client.get(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).status_code == 204
    empty = ET.fromstring(client.get(f"/api/v1/devices/{MAC}/provisioning.xml", headers=admin).data)
    assert empty.findall("custom/step") == [] and count(services, CertificateRow) == 0
    made = prepare(client, admin)
    doc = client.get(f"/api/v1/devices/{MAC.lower()}/provisioning.xml", headers=admin)
    assert doc.status_code == 200 and doc.headers["Cache-Control"] == "no-store"
    assert doc.data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(doc.data)
    assert (root.tag, root.attrib) == ("provisioning", {"version": "1.1", "productID": "e2"})
    assert [c.tag for c in root] == ["firmware", "nvm", "custom"]
    steps = root.findall("custom/step")
    assert len(steps) == 1 and set(steps[0].attrib) == {"type", "url", "key", "flags"}
    first = steps[0].attrib
    assert first["type"] == "certificate" and first["flags"] == "CLIENT_CERT"
    assert (first["url"], first["key"]) == (made["certificate_url"], made["key_url"])
    # fetched again before the device came: the same URLs, nothing written; POST again: the same
    step = ET.fromstring(client.get(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).data)
    assert step.attrib == first
    again = prepare(client, admin, status=200)
    assert (again["certificate_url"], again["key_url"]) == (first["url"], first["key"])
    # fresh URLs only when asked for: the old unused ones expire
    fresh = prepare(client, admin, status=200, fresh_urls=True)
    assert fresh["key_url"] != first["key"]
    assert fresh["certificate"]["serial"] == made["certificate"]["serial"]
    assert client.get(path_of(first["key"])).status_code == 410
    element = ET.fromstring(client.get(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).data)
    assert element.get("key") == fresh["key_url"]
    assert count(services, CertificateRow) == 1
    cert = client.get(path_of(element.get("url", ""))).data
    assert client.get(path_of(element.get("key", ""))).status_code == 200
    # the device has its key: nothing waits, nothing is due
    assert client.get(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).status_code == 204
    quiet = ET.fromstring(client.get(f"/api/v1/devices/{MAC}/provisioning.xml", headers=admin).data)
    assert quiet.findall("custom/step") == []
    assert prepare(client, admin, status=204) is None
    # the certificate enters its renewal window: a new key and certificate supersede it
    now = utcnow()
    with services.db.write() as session:
        session.execute(
            update(CertificateRow).values(
                not_before=now - timedelta(days=300), not_after=now + timedelta(days=65)
            )
        )
    assert client.get(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).status_code == 204
    prepare(client, admin)
    renewed = ET.fromstring(client.get(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).data)
    new_cert = client.get(path_of(renewed.get("url", ""))).data
    new_key = client.get(path_of(renewed.get("key", ""))).data
    assert new_cert != cert
    (tmp_path / "new.crt").write_bytes(new_cert)
    (tmp_path / "new.key").write_bytes(new_key)
    assert (
        openssl("pkey", "-in", str(tmp_path / "new.key"), "-pubout").stdout
        == openssl("x509", "-in", str(tmp_path / "new.crt"), "-noout", "-pubkey").stdout
    )
    with services.db.read() as session:
        old, new = session.scalars(select(CertificateRow).order_by(CertificateRow.id)).all()
        assert old.replaced_by == new.serial and new.replaces == old.serial
    assert client.get(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).status_code == 204


def test_no_private_key_in_logs(
    client: FlaskClient, admin: dict[str, str], services: Any, caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("ca_service")
    logger.addHandler(handler)
    logger.addHandler(caplog.handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            body = create(client, admin)
            client.get(path_of(body["certificate_url"]))
            key = client.get(path_of(body["key_url"])).data
            client.get(path_of(body["key_url"]))  # replay, refused
            client.get(f"/api/v1/devices/{MAC}/provisioning.xml", headers=admin)
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(caplog.handler)
        logger.setLevel(previous)
    text = stream.getvalue() + "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert "download served" in text and "certificate issued" in text  # the logs were captured
    lines = [line for line in key.decode().splitlines() if line and not line.startswith("-----")]
    assert lines and all(line not in text for line in lines)
    assert "".join(lines)[:40] not in text.replace("\n", "")
    for url in (body["key_url"], body["certificate_url"]):
        assert url.rsplit("/", 1)[1] not in text  # nor the tokens


def test_revoked_certificate_is_not_delivered(
    client: FlaskClient, admin: dict[str, str], services: Any
) -> None:
    body = create(client, admin)
    with services.db.write() as session:
        session.execute(update(CertificateRow).values(status="revoked", revoked_at=utcnow()))
    assert client.get(path_of(body["key_url"])).status_code == 410
    assert count(services, WrappedKeyRow) == 1  # refused before the key was taken
    # nothing waits for the device; the next prepared step makes a new key (the revoked
    # certificate is not "replaced")
    assert client.get(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).status_code == 204
    prepare(client, admin)
    step = ET.fromstring(client.get(f"/api/v1/devices/{MAC}/provisioning-step", headers=admin).data)
    assert client.get(path_of(step.get("key", ""))).status_code == 200
    with services.db.read() as session:
        rows = session.scalars(select(CertificateRow).order_by(CertificateRow.id)).all()
        assert [r.status for r in rows] == ["revoked", "valid"] and rows[1].replaces is None


def test_fresh_urls_keep_the_binding(client: FlaskClient, admin: dict[str, str], services: Any) -> None:
    create(client, admin, bind_user_agent=True)  # the setting is off; this request binds
    fresh = prepare(client, admin, status=200, fresh_urls=True)
    key_path = path_of(fresh["key_url"])
    assert client.get(key_path, headers={"User-Agent": "curl/8"}).status_code == 403
    assert client.get(key_path, headers={"User-Agent": UA}).status_code == 200
