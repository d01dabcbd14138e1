"""Refusals through the REST API: the status, the problem type, a detail naming the rule, nothing
written. CSRs come from tests/vectors/csr/ (the policy itself is tested over all of them in
tests/test_policy_csr.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from ca_service import Services, create_app
from ca_service.errors import Kind
from ca_service.store.models import AuditRow, CertificateRow, DeviceRow
from tests.csr_vectors import REFUSED, read
from tests.helpers import make_csr, openssl

PREFIX = "urn:ca-service:problem:"


def counts(services: Services) -> tuple[int, int, int]:
    with services.db.read() as session:
        return (
            session.query(CertificateRow).count(),
            session.query(DeviceRow).count(),
            session.query(AuditRow).filter(AuditRow.action == "certificate.issue").count(),
        )


def refused(client: FlaskClient, headers: dict[str, str], csr: str, services: Services) -> dict:
    before = counts(services)
    response = client.post("/api/v1/certificates", json={"csr": csr}, headers=headers)
    assert response.mimetype == "application/problem+json"
    assert counts(services) == before == (0, 0, 0)
    body = response.json
    body["_status"] = response.status_code
    return body


STATUS = {Kind.BAD_CSR: 400, Kind.BAD_SIGNATURE_ALGORITHM: 422, Kind.BAD_KEY: 422, Kind.BAD_IDENTIFIER: 422}
# One file per rule through the API; every file is checked against the policy itself in
# tests/test_policy_csr.py (the openssl recipes are in tests/vectors/README.md).
THROUGH_THE_API = [
    "sha1-rsa2048.csr",
    "md5-rsa2048.csr",
    "key-rsa1024.csr",
    "key-ed25519.csr",
    "key-p521.csr",
    "cn-einstein2.csr",
    "cn-twice.csr",
    "cn-multicast-mac.csr",
    "broken-signature.csr",
    "bad-version.csr",
]


@pytest.mark.parametrize("name", THROUGH_THE_API)
def test_csr_refusals(client, admin, services, name: str) -> None:
    kind, words = REFUSED[name]
    body = refused(client, admin, read(name).decode(), services)
    assert body["_status"] == STATUS[kind], body
    assert body["type"] == PREFIX + kind.value
    assert words in body["detail"]


@pytest.mark.parametrize(
    ("junk", "status", "ptype", "words"),
    [
        ("", 422, "about:blank", "does not match the schema"),  # the schema: 1 to 32768 characters
        ("hello", 400, PREFIX + "bad-csr", "cannot be parsed"),
        ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", 400,
         PREFIX + "bad-csr", "cannot be parsed"),
        ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 400, PREFIX + "bad-csr",
         "cannot be parsed"),
        ("\x00\xff" * 50, 400, PREFIX + "bad-csr", "cannot be parsed"),
    ],
    ids=["empty", "text", "bad-base64-body", "a-certificate", "binary"],
)  # fmt: skip
def test_broken_pem(client, admin, services, junk: str, status: int, ptype: str, words: str) -> None:
    body = refused(client, admin, junk, services)
    assert (body["_status"], body["type"]) == (status, ptype)
    assert words in body["detail"]


def test_scope_refusal(client, token, services, tmp_path: Path) -> None:
    _, csr = make_csr(tmp_path, "589EC6000001")
    body = refused(client, token("provisioner", "7C2F80"), csr.read_text(), services)
    assert body["_status"] == 403 and body["type"] == PREFIX + "forbidden"
    assert "outside the scopes" in body["detail"] and "7C2F80" in body["detail"]


def test_oui_allowlist(make_settings, services, token, tmp_path: Path) -> None:
    app = create_app(make_settings(oui_allowlist=("7C2F80", "589EC6", "002104")))
    client = app.test_client()
    _, csr = make_csr(tmp_path, "AABBCC000001")
    body = refused(client, token("admin"), csr.read_text(), services)
    assert body["_status"] == 403 and "OUI allow-list" in body["detail"]
    _, ok = make_csr(tmp_path, "00:21:04:00:00:01", name="ok")
    assert (
        client.post("/api/v1/certificates", json={"csr": ok.read_text()}, headers=token("admin")).status_code
        == 201
    )


GOOD_CSR = "ok-p256-sha256.csr"  # CN=7C2F80C6E5C2, P-256, SHA-256: accepted by the policy


def test_authentication_refusals(client, services, token) -> None:
    for headers in ({}, {"Authorization": "Bearer cas_nope"}, {"Authorization": "Basic eDp5"}):
        body = refused(client, headers, read(GOOD_CSR).decode(), services)
        assert body["_status"] == 401 and body["type"] == PREFIX + "unauthorized"


def test_revoked_token_is_refused(client, services) -> None:
    from ca_service.enrollment.tokens import create_token, revoke_token

    value = create_token(services.db, name="gone", role="admin")
    revoke_token(services.db, "gone")
    body = refused(client, {"Authorization": f"Bearer {value}"}, read(GOOD_CSR).decode(), services)
    assert body["_status"] == 401


def test_unknown_profile(client, admin, services) -> None:
    before = counts(services)
    response = client.post(
        "/api/v1/certificates", json={"csr": read(GOOD_CSR).decode(), "profile": "nope"}, headers=admin
    )
    assert response.status_code == 404 and "known profiles: device" in response.json["detail"]
    assert counts(services) == before


def test_csr_extensions_are_ignored(client, admin, tmp_path: Path) -> None:
    """A CSR asking for CA:TRUE, O=Evil and a SAN with the MAC in another spelling gets the
    profile's extensions and subject, nothing else (the SAN names the canonical MAC)."""
    csr = read("ok-asks-for-ca.csr").decode()
    response = client.post("/api/v1/certificates", json={"csr": csr}, headers=admin)
    assert response.status_code == 201
    crt = tmp_path / "x.crt"
    crt.write_text(response.json["certificate_pem"])
    text = openssl("x509", "-in", str(crt), "-noout", "-text").stdout.decode()
    assert "CA:FALSE" in text and "Evil" not in text and "7c2f" not in text
    assert "DNS:7C2F80C6E5C2" in text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("get", "/nope", {}, 404),
        ("delete", "/api/v1/certificates", {}, 405),
        ("post", "/api/v1/certificates", {"data": "x" * 70000, "content_type": "application/json"}, 413),
        (
            "post",
            "/api/v1/certificates",
            {"data": "csr=1", "content_type": "application/x-www-form-urlencoded"},
            415,
        ),
        ("post", "/api/v1/certificates", {"data": "{bad", "content_type": "application/json"}, 400),
        ("post", "/api/v1/certificates", {"json": {"cs": "x"}}, 422),
        ("get", "/api/v1/certificates/zz", {}, 400),
        ("get", "/api/v1/certificates/0A0B", {}, 404),
        ("get", "/api/v1/devices/7C2F80C6E5C2", {}, 404),
        ("get", "/api/v1/certificates?expires_before=tomorrow", {}, 422),
    ],
)
def test_http_errors_are_problems(client, admin, services, method, path, kwargs, status) -> None:
    response = getattr(client, method)(path, headers=admin, **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == status and body["detail"] and body["request_id"]
    assert counts(services) == (0, 0, 0)


def test_fifty_megabyte_body_is_refused_without_reading(client, admin, services) -> None:
    response = client.post(
        "/api/v1/certificates",
        data=b"{" + b" " * (50 * 1024 * 1024) + b"}",
        headers=admin,
        content_type="application/json",
    )
    assert response.status_code == 413 and response.json["limit_bytes"] == 65536
    assert counts(services) == (0, 0, 0)


def test_deeply_nested_json_is_a_400(client, admin, services) -> None:
    body = '{"csr": ' + "[" * 30000 + "]" * 30000 + "}"
    response = client.post("/api/v1/certificates", data=body, headers=admin, content_type="application/json")
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert "nested too deeply" in response.json["detail"]
    assert counts(services) == (0, 0, 0)


def test_page_beyond_the_limit_is_refused(client, admin) -> None:
    for path in ("/api/v1/certificates", "/api/v1/devices"):
        response = client.get(f"{path}?page=99999999999999999999", headers=admin)
        assert response.status_code == 400 and "'page' is at most" in response.json["detail"]
