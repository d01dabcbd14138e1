"""Every refusal of item 7: the status, the problem type, a detail naming the rule, nothing written."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from ca_service import Services, create_app
from ca_service.store.models import AuditRow, CertificateRow, DeviceRow
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


def tampered_signature(csr_pem: bytes) -> str:
    der = openssl("req", "-in", "/dev/stdin", "-outform", "DER", input=csr_pem).stdout
    flipped = der[:-3] + bytes([der[-3] ^ 0x01]) + der[-2:]
    b64 = base64.encodebytes(flipped).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{b64}-----END CERTIFICATE REQUEST-----\n"


CASES = [
    # (name, cn, key kind, digest, status, kind, words in detail)
    ("sha1", "7C2F80C6E5C2", "rsa-2048", "sha1", 422, "bad-signature-algorithm", "SHA1"),
    ("md5", "7C2F80C6E5C2", "rsa-2048", "md5", 422, "bad-signature-algorithm", "MD5"),
    ("rsa1024", "7C2F80C6E5C2", "rsa-1024", "sha256", 422, "bad-key", "shorter than 2048 bits"),
    ("dsa", "7C2F80C6E5C2", "dsa-2048", "sha256", 422, "bad-key", "keys are refused"),
    ("ed25519", "7C2F80C6E5C2", "ed25519", "sha256", 422, "bad-key", "Ed25519 keys are refused"),
    ("p521", "7C2F80C6E5C2", "ec-p521", "sha256", 422, "bad-key", "P-521 is refused"),
    ("secp256k1", "7C2F80C6E5C2", "ec-k256", "sha256", 422, "bad-key", "is refused"),
    ("einstein2", "Einstein2", "ec-p256", "sha256", 422, "bad-identifier", "generic Gigaset factory name"),
    ("not-a-mac", "provisioning.example.com", "ec-p256", "sha256", 422, "bad-identifier", "not a device MAC"),
    ("wrong-length", "7C2F80C6E5", "ec-p256", "sha256", 422, "bad-identifier", "not a device MAC"),
    ("zero", "00:00:00:00:00:00", "ec-p256", "sha256", 422, "bad-identifier", "all-zero"),
    ("broadcast", "ff-ff-ff-ff-ff-ff", "ec-p256", "sha256", 422, "bad-identifier", "broadcast"),
    ("multicast", "01:00:5E:00:00:FB", "ec-p256", "sha256", 422, "bad-identifier", "multicast"),
]


@pytest.mark.parametrize(
    ("name", "cn", "kind", "digest", "status", "ptype", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_csr_refusals(
    client, admin, services, tmp_path: Path, name, cn, kind, digest, status, ptype, words
) -> None:
    _, csr = make_csr(tmp_path, cn, kind, digest)
    body = refused(client, admin, csr.read_text(), services)
    assert body["_status"] == status, body
    assert body["type"] == PREFIX + ptype
    assert words in body["detail"]


def test_bad_csr_signature(client, admin, services, tmp_path: Path) -> None:
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    body = refused(client, admin, tampered_signature(csr.read_bytes()), services)
    assert body["_status"] == 400 and body["type"] == PREFIX + "bad-csr"
    assert "does not verify" in body["detail"]


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "hello",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "\x00\xff" * 50,
    ],
)
def test_broken_pem(client, admin, services, junk: str) -> None:
    body = refused(client, admin, junk, services)
    assert body["_status"] in (400, 422)
    assert body["type"] in (PREFIX + "bad-csr", "about:blank")


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


def test_authentication_refusals(client, services, token, tmp_path: Path) -> None:
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    for headers in ({}, {"Authorization": "Bearer cas_nope"}, {"Authorization": "Basic eDp5"}):
        body = refused(client, headers, csr.read_text(), services)
        assert body["_status"] == 401 and body["type"] == PREFIX + "unauthorized"


def test_revoked_token_is_refused(client, services, tmp_path: Path) -> None:
    from ca_service.enrollment.tokens import create_token, revoke_token

    value = create_token(services.db, name="gone", role="admin")
    revoke_token(services.db, "gone")
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    body = refused(client, {"Authorization": f"Bearer {value}"}, csr.read_text(), services)
    assert body["_status"] == 401


def test_unknown_profile(client, admin, services, tmp_path: Path) -> None:
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    before = counts(services)
    response = client.post(
        "/api/v1/certificates", json={"csr": csr.read_text(), "profile": "nope"}, headers=admin
    )
    assert response.status_code == 404 and "known profiles: device" in response.json["detail"]
    assert counts(services) == before


def test_csr_extensions_are_ignored(client, admin, tmp_path: Path) -> None:
    """A CSR asking for CA:TRUE, O=Evil and a SAN with the MAC in another spelling gets the
    profile's extensions and subject, nothing else (the SAN names the canonical MAC)."""
    key = tmp_path / "k.pem"
    openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(key))
    csr = tmp_path / "x.csr"
    openssl(
        "req",
        "-new",
        "-key",
        str(key),
        "-subj",
        "/O=Evil/CN=7C2F80C6E5C2",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "subjectAltName=DNS:7c2f.80c6.e5c2",
        "-out",
        str(csr),
    )
    response = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
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
