"""Issuance on CSR through the REST API: the FAQ's workflow, cross-checked with openssl."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from ca_service import create_app
from ca_service.domain import Profile
from ca_service.store.models import AuditRow, CertificateRow
from tests.csr_vectors import read
from tests.helpers import csr_signature_algorithms, make_csr, openssl, permanent_identifiers


def chain_files(client: FlaskClient, tmp: Path) -> tuple[Path, Path]:
    root, issuing = tmp / "root.pem", tmp / "issuing.pem"
    root.write_bytes(client.get("/ca/root.pem").data)
    issuing.write_bytes(client.get("/ca/issuing.pem").data)
    return root, issuing


@pytest.mark.parametrize(
    ("vector", "sigalg"),
    [("faq-n870-rsa4096.csr", "sha256WithRSAEncryption"), ("faq-n870-p256.csr", "ecdsa-with-SHA256")],
)
def test_faq_workflow(
    client: FlaskClient, admin: dict[str, str], tmp_path: Path, services, vector: str, sigalg: str
) -> None:
    """The README's (the Gigaset FAQ's) openssl commands made these CSRs (tests/vectors/README.md);
    the service stands in for ``openssl x509 -req``."""
    csr = tmp_path / "N870.csr"
    csr.write_bytes(read(vector))
    kind = "rsa" if "rsa" in vector else "ec"
    response = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["mac"] == "7C2F80C6E5C2"
    assert response.headers["Location"] == f"/api/v1/certificates/{body['serial']}"
    crt = tmp_path / "N870.crt"
    crt.write_text(body["certificate_pem"])
    root, issuing = chain_files(client, tmp_path)
    result = openssl("verify", "-CAfile", str(root), "-untrusted", str(issuing), str(crt))
    assert result.stdout.strip().endswith(b"OK")
    # the returned chain works as the untrusted intermediates too
    (tmp_path / "chain.pem").write_text(body["chain_pem"])
    openssl("verify", "-CAfile", str(root), "-untrusted", str(tmp_path / "chain.pem"), str(crt))
    text = openssl("x509", "-in", str(crt), "-noout", "-text").stdout.decode()
    assert "Subject: CN = 7C2F80C6E5C2" in text
    assert "Signature Algorithm: ecdsa-with-SHA256" in text  # our issuing CA is P-256
    assert "CA:FALSE" in text
    assert "TLS Web Client Authentication, TLS Web Server Authentication" in text
    assert "URI:http://ca.test/crl/" in text and "OCSP - URI:http://ca.test/ocsp" in text
    assert permanent_identifiers(body["certificate_pem"]) == [("7C2F80C6E5C2", None)]  # RFC 4043
    assert ("Key Encipherment" in text) == (kind == "rsa")
    serial = openssl("x509", "-in", str(crt), "-noout", "-serial").stdout.decode().strip()
    assert serial == f"serial={body['serial']}"
    # the CSR's key is certified: the public keys match
    pub_csr = openssl("req", "-in", str(csr), "-noout", "-pubkey").stdout
    pub_crt = openssl("x509", "-in", str(crt), "-noout", "-pubkey").stdout
    assert pub_csr == pub_crt
    assert csr_signature_algorithms(csr) == [sigalg]  # the CSR's own, as the FAQ's command makes it
    with services.db.read() as session:
        row = session.query(CertificateRow).one()
        assert row.serial == body["serial"] and row.mac == "7C2F80C6E5C2"
        audit = session.query(AuditRow).filter_by(action="certificate.issue").one()
        assert audit.serial == body["serial"] and audit.outcome == "success"


def test_profile_without_the_permanent_identifier(
    make_settings, services, admin: dict[str, str], tmp_path: Path
) -> None:
    """san_permanent_identifier and san_dns_name false: no otherName, and no SAN extension at all."""
    profile = Profile(name="device", san_permanent_identifier=False, san_dns_name=False)
    app = create_app(make_settings(profiles=(profile,)))
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    response = app.test_client().post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
    assert response.status_code == 201, response.json
    assert permanent_identifiers(response.json["certificate_pem"]) == []
    (tmp_path / "leaf.pem").write_text(response.json["certificate_pem"])
    text = openssl("x509", "-in", str(tmp_path / "leaf.pem"), "-noout", "-text").stdout.decode()
    assert "Subject Alternative Name" not in text and "Subject: CN = 7C2F80C6E5C2" in text
    app.extensions["ca_service"].db.dispose()


def test_get_certificate_json_and_pem(client: FlaskClient, admin: dict[str, str], tmp_path: Path) -> None:
    _, csr = make_csr(tmp_path, "7c-2f-80-c6-e5-c2")
    serial = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin).json["serial"]
    spaced = ":".join(serial[i : i + 2] for i in range(0, len(serial), 2)).lower()
    got = client.get(f"/api/v1/certificates/{spaced}", headers=admin)
    assert got.status_code == 200 and got.json["serial"] == serial
    pem = client.get(
        f"/api/v1/certificates/{serial}", headers={**admin, "Accept": "application/pem-certificate-chain"}
    )
    assert pem.mimetype == "application/pem-certificate-chain"
    assert pem.data.count(b"BEGIN CERTIFICATE") == 2
    device = client.get("/api/v1/devices/7c2f.80c6.e5c2", headers=admin)
    assert device.status_code == 200 and [c["serial"] for c in device.json["certificates"]] == [serial]


def test_search_and_pagination(client: FlaskClient, admin: dict[str, str], tmp_path: Path) -> None:
    serials = []
    for i, mac in enumerate(["7C2F80000001", "7C2F80000002", "7C2F80000001"]):
        _, csr = make_csr(tmp_path, mac, name=f"d{i}")
        serials.append(
            client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin).json["serial"]
        )
    page = client.get("/api/v1/certificates?mac=7c:2f:80:00:00:01&page_size=1", headers=admin)
    assert page.status_code == 200 and len(page.json) == 1
    assert '"total": 2' in page.headers["X-Pagination"]
    assert page.json[0]["serial"] == serials[2]  # newest first
    assert client.get("/api/v1/certificates?status=revoked", headers=admin).json == []


def test_provisioner_scope_and_auditor(client: FlaskClient, token, tmp_path: Path) -> None:
    prov = token("provisioner", "7C2F80")
    other = token("provisioner", "589EC6")
    auditor = token("auditor")
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    ok = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=prov)
    assert ok.status_code == 201
    serial = ok.json["serial"]
    assert client.get(f"/api/v1/certificates/{serial}", headers=other).status_code == 404
    assert client.get("/api/v1/certificates", headers=other).json == []
    assert client.get(f"/api/v1/certificates/{serial}", headers=auditor).status_code == 200
    refused = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=auditor)
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"


def test_public_ca_endpoints_and_health(client: FlaskClient) -> None:
    for path in ("/ca/root.pem", "/ca/issuing.pem", "/ca/chain.pem"):
        r = client.get(path)
        assert r.status_code == 200 and b"BEGIN CERTIFICATE" in r.data
    assert client.get("/ca/chain.pem").data.count(b"BEGIN CERTIFICATE") == 2
    client.application.extensions["ca_service"].revocation.publish_due()  # as a worker does at start
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json["checks"] == {"database": "ok", "keystore": "ok", "crl": "ok"}
