"""Revocation through the REST API: CRLs and OCSP cross-checked with the openssl CLI."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from ca_service.store.models import AuditRow, CertificateRow, CrlPendingRow, CrlRow
from tests.helpers import openssl
from tests.revocation_helpers import ca_files, issue


def publish(app: Flask) -> None:
    app.extensions["ca_service"].revocation.publish_due()


def crl_name(app: Flask) -> str:
    return app.extensions["ca_service"].directory.get().require_active().name


def fetch_crl(client: FlaskClient, app: Flask, tmp: Path) -> Path:
    response = client.get(f"/crl/{crl_name(app)}.crl")
    assert response.status_code == 200 and response.mimetype == "application/pkix-crl"
    path = tmp / "crl.der"
    path.write_bytes(response.data)
    return path


def test_revoked_certificate_in_crl_and_refused_by_openssl(
    client: FlaskClient, app: Flask, admin: dict[str, str], tmp_path: Path
) -> None:
    good_serial, good = issue(client, admin, tmp_path, "7C2F80000001", "good")
    bad_serial, bad = issue(client, admin, tmp_path, "7C2F80000002", "bad")
    compromised = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)  # after notBefore
    r = client.post(
        f"/api/v1/certificates/{bad_serial.lower()}/revoke",
        json={"reason": "keyCompromise", "invalidity_date": compromised.isoformat()},
        headers=admin,
    )
    assert r.status_code == 200, r.json
    assert r.json["serial"] == bad_serial and r.json["reason"] == "keyCompromise"
    publish(app)
    root, issuing = ca_files(client, tmp_path)
    der = fetch_crl(client, app, tmp_path)
    # signature, AKI, IDP, number, entry with reason and invalidity date
    check = openssl("crl", "-inform", "DER", "-in", str(der), "-CAfile", str(issuing), "-noout", "-verify")
    assert b"verify OK" in check.stderr + check.stdout
    text = openssl("crl", "-inform", "DER", "-in", str(der), "-noout", "-text").stdout.decode()
    assert f"Serial Number: {bad_serial}" in text and good_serial not in text
    assert "Key Compromise" in text and "Invalidity Date" in text
    assert compromised.strftime("%b %e %H:%M:%S %Y GMT") in text
    assert "X509v3 CRL Number" in text and "Authority Key Identifier" in text
    assert "Issuing Distribution Point: critical" in text and "Only User Certificates" in text
    assert f"URI:http://ca.test/crl/{crl_name(app)}.crl" in text
    entry = x509.load_der_x509_crl(der.read_bytes()).get_revoked_certificate_by_serial_number(
        int(bad_serial, 16)
    )
    revoked_at = datetime.fromisoformat(r.json["revoked_at"]).replace(microsecond=0)
    assert entry is not None and entry.revocation_date_utc == revoked_at.astimezone(UTC)
    # the PEM variant is the same CRL
    pem = client.get(f"/crl/{crl_name(app)}.pem").data
    assert x509.load_pem_x509_crl(pem).public_bytes(serialization.Encoding.DER) == der.read_bytes()
    # openssl verify -crl_check: revoked fails, good passes
    crl_pem = tmp_path / "crl.pem"
    crl_pem.write_bytes(pem)
    chain = ["-CAfile", str(root), "-untrusted", str(issuing), "-CRLfile", str(crl_pem), "-crl_check"]
    ok = openssl("verify", *chain, str(good))
    assert ok.stdout.strip().endswith(b"OK")
    refused = openssl("verify", *chain, str(bad), check=False)
    assert refused.returncode != 0 and b"certificate revoked" in refused.stdout + refused.stderr


def test_crl_numbers_http_caching_and_pending(
    client: FlaskClient, app: Flask, admin: dict[str, str], tmp_path: Path, services
) -> None:
    assert client.get(f"/crl/{crl_name(app)}.crl").status_code == 503  # not published yet
    publish(app)
    first = client.get(f"/crl/{crl_name(app)}.crl")
    number1 = x509.load_der_x509_crl(first.data).extensions.get_extension_for_class(x509.CRLNumber).value
    assert first.headers["ETag"] and first.headers["Last-Modified"] and first.headers["Expires"]
    assert first.headers["Cache-Control"] == "public, max-age=300, no-transform, must-revalidate"
    again = client.get(f"/crl/{crl_name(app)}.crl", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    publish(app)  # nothing due: same CRL
    assert client.get(f"/crl/{crl_name(app)}.crl").headers["ETag"] == first.headers["ETag"]
    serial, _ = issue(client, admin, tmp_path, "7C2F80000003", "d")
    client.post(f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"}, headers=admin)
    assert "ca_crl_pending_revocations" in client.get("/metrics").text
    assert 'ca_crl_pending_revocations{issuer="' in client.get("/metrics").text
    publish(app)
    second = client.get(f"/crl/{crl_name(app)}.crl")
    crl = x509.load_der_x509_crl(second.data)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > number1.crl_number
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    assert second.headers["ETag"] != first.headers["ETag"]
    with services.db.read() as session:  # the published CRL covers every revocation made
        assert session.scalar(select(func.count()).select_from(CrlPendingRow)) == 0


def test_expired_entries_dropped_unless_configured(
    client: FlaskClient, app: Flask, admin: dict[str, str], tmp_path: Path, services, make_settings
) -> None:
    serial, _ = issue(client, admin, tmp_path, "7C2F80000004", "e")
    client.post(f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"}, headers=admin)
    with services.db.write() as session:  # let the certificate expire
        session.execute(
            update(CertificateRow)
            .where(CertificateRow.serial == serial)
            .values(not_after=CertificateRow.not_before)
        )
    publish(app)
    crl = x509.load_der_x509_crl(client.get(f"/crl/{crl_name(app)}.crl").data)
    assert len(crl) == 0
    from ca_service import build_services

    keep = build_services(make_settings(crl_drop_expired=False))
    keep.revocation.publish_due(force=True)
    crl = x509.load_der_x509_crl(client.get(f"/crl/{crl_name(app)}.crl").data)
    assert [r.serial_number for r in crl] == [int(serial, 16)]
    keep.db.dispose()


def _state(services) -> tuple[int, int, int]:
    with services.db.read() as session:
        revoked = session.scalar(select(func.count()).where(CertificateRow.status == "revoked"))
        audits = session.scalar(select(func.count()).select_from(AuditRow))
        pending = session.scalar(select(func.count()).select_from(CrlPendingRow))
    return revoked, audits, pending


def test_bad_revocations_change_nothing(
    client: FlaskClient, admin: dict[str, str], token, tmp_path: Path, services
) -> None:
    prov = token("provisioner", "7C2F80")
    other = token("provisioner", "589EC6")
    auditor = token("auditor")
    serial, _ = issue(client, prov, tmp_path, "7C2F80000005", "p")
    before = _state(services)
    cases = [
        (f"/api/v1/certificates/{'AB' * 10}/revoke", {"reason": "keyCompromise"}, admin, 404),
        (f"/api/v1/certificates/{serial}/revoke", {"reason": "compromised"}, admin, 400),
        (f"/api/v1/certificates/{serial}/revoke", {"reason": "certificateHold"}, admin, 400),
        (f"/api/v1/certificates/{serial}/revoke", {"reason": "superseded"}, other, 404),
        (f"/api/v1/certificates/{serial}/revoke", {"reason": "superseded"}, auditor, 403),
        ("/api/v1/certificates/not-hex/revoke", {"reason": "superseded"}, admin, 400),
        (
            f"/api/v1/certificates/{serial}/revoke",
            {"reason": "superseded", "invalidity_date": "2999-01-01T00:00:00Z"},
            admin,
            400,
        ),
        (f"/api/v1/certificates/{serial}/revoke", {}, admin, 422),
        ("/api/v1/devices/7C2F80000005/revoke", {"reason": "superseded"}, other, 403),
        ("/api/v1/devices/7C2F80999999/revoke", {"reason": "superseded"}, admin, 404),
        ("/api/v1/devices/not-a-mac/revoke", {"reason": "superseded"}, admin, 422),
    ]
    for path, body, headers, status in cases:
        r = client.post(path, json=body, headers=headers)
        assert r.status_code == status, (path, body, r.json)
        assert r.mimetype == "application/problem+json" and r.json["detail"]
    bad_reason = client.post(f"/api/v1/certificates/{serial}/revoke", json={"reason": "x"}, headers=admin)
    assert "keyCompromise" in bad_reason.json["detail"]  # names what is allowed
    assert _state(services) == before
    # the owner's provisioner may revoke; a second revocation is a 409, not a second entry
    ok = client.post(f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"}, headers=prov)
    assert ok.status_code == 200
    after = _state(services)
    again = client.post(
        f"/api/v1/certificates/{serial}/revoke", json={"reason": "keyCompromise"}, headers=admin
    )
    assert again.status_code == 409 and "already revoked" in again.json["detail"]
    assert _state(services) == after == (before[0] + 1, before[1] + 1, before[2] + 1)
    with services.db.read() as session:
        event = session.scalars(select(AuditRow).where(AuditRow.action == "certificate.revoke")).one()
        assert event.serial == serial and event.detail["reason"] == "superseded"


def test_revoke_device(client: FlaskClient, admin: dict[str, str], tmp_path: Path, services) -> None:
    s1, _ = issue(client, admin, tmp_path, "7C2F80000006", "a")
    s2, _ = issue(client, admin, tmp_path, "7c:2f:80:00:00:06", "b")
    s3, _ = issue(client, admin, tmp_path, "7C2F80000007", "c")
    r = client.post(
        "/api/v1/devices/7c-2f-80-00-00-06/revoke", json={"reason": "cessationOfOperation"}, headers=admin
    )
    assert r.status_code == 200 and sorted(x["serial"] for x in r.json) == sorted([s1, s2])
    again = client.post("/api/v1/devices/7C2F80000006/revoke", json={"reason": "superseded"}, headers=admin)
    assert again.status_code == 409
    with services.db.read() as session:
        assert session.scalar(select(CertificateRow.status).where(CertificateRow.serial == s3)) == "valid"


def _ocsp_request(cert: Path, issuing: Path, nonce: bool = True) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_pem_x509_certificate(cert.read_bytes()),
        x509.load_pem_x509_certificate(issuing.read_bytes()),
        hashes.SHA1(),
    )
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_ocsp_in_process(client: FlaskClient, admin: dict[str, str], tmp_path: Path) -> None:
    serial, crt = issue(client, admin, tmp_path, "7C2F80000008", "o")
    _, issuing = ca_files(client, tmp_path)
    plain = _ocsp_request(crt, issuing, nonce=False)
    get = client.get("/ocsp/" + base64.b64encode(plain).decode())
    assert get.status_code == 200 and get.mimetype == "application/ocsp-response"
    assert ocsp.load_der_ocsp_response(get.data).certificate_status is ocsp.OCSPCertStatus.GOOD
    assert client.get("/ocsp/" + base64.b64encode(plain).decode()).data == get.data  # cached
    client.post(f"/api/v1/certificates/{serial}/revoke", json={"reason": "keyCompromise"}, headers=admin)
    post = client.post("/ocsp", data=_ocsp_request(crt, issuing), content_type="application/ocsp-request")
    resp = ocsp.load_der_ocsp_response(post.data)
    assert resp.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_reason is x509.ReasonFlags.key_compromise
    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"0123456789abcdef"
    # a CertID naming a CA that is not ours (here: our root, which signs no device certificate)
    foreign = _ocsp_request(issuing, tmp_path / "root.pem", nonce=False)
    denied = client.post("/ocsp", data=foreign, content_type="application/ocsp-request")
    assert denied.status_code == 400
    assert ocsp.load_der_ocsp_response(denied.data).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    # the cached "good" is not served after the status changed
    cached = ocsp.load_der_ocsp_response(client.get("/ocsp/" + base64.b64encode(plain).decode()).data)
    assert cached.certificate_status is ocsp.OCSPCertStatus.REVOKED


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not DER at all", "application/ocsp-request"),
        (b"", "application/ocsp-request"),
        (b"\x30\x03\x02\x01\x01", "application/ocsp-request"),
    ],
)
def test_malformed_ocsp(client: FlaskClient, body: bytes, content_type: str) -> None:
    r = client.post("/ocsp", data=body, content_type=content_type)
    assert r.status_code == 400 and r.mimetype == "application/ocsp-response"
    assert ocsp.load_der_ocsp_response(r.data).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_wrong_content_type_and_bad_base64(client: FlaskClient) -> None:
    r = client.post("/ocsp", data=b"x", content_type="text/plain")
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    assert "application/ocsp-request" in r.json["detail"]
    # a line break in the path (schemathesis found it a 404: werkzeug's path converter stops there)
    for junk in ("%%%not-base64", "MEUw%0AQzBB", "\u009f%0A/x"):
        g = client.get("/ocsp/" + junk)
        assert g.status_code == 400 and g.mimetype == "application/ocsp-response", junk
        status = ocsp.load_der_ocsp_response(g.data).response_status
        assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_health_reports_unpublished_and_stale_crl(client: FlaskClient, app: Flask, services) -> None:
    health = client.get("/healthz")
    assert health.status_code == 503 and "not published" in health.json["checks"]["crl"]
    publish(app)
    assert client.get("/healthz").status_code == 200
    with services.db.write() as session:  # the CRL's nextUpdate passes
        session.execute(update(CrlRow).values(next_update=CrlRow.this_update))
    stale = client.get("/healthz")
    assert stale.status_code == 503 and "past its nextUpdate" in stale.json["checks"]["crl"]
    assert 'ca_crl_stale{issuer="' in client.get("/metrics").text and "} 1.0" in client.get("/metrics").text
    publish(app)  # the schedule sees it is due (older than crl_refresh_seconds)
    assert client.get("/healthz").status_code == 200


def test_cli_revoke_refusals(
    client: FlaskClient, admin: dict[str, str], env_for, tmp_path: Path, services
) -> None:
    from click.testing import CliRunner

    from ca_service.cli import main

    serial, _ = issue(client, admin, tmp_path, "7C2F80000009", "cli")
    before = _state(services)
    runner = CliRunner(env=env_for)
    wrong = runner.invoke(main, ["revoke", serial, "--reason", "lost"])
    assert wrong.exit_code == 1 and "is not a revocation reason" in wrong.output
    unknown = runner.invoke(main, ["revoke", "ABCDEF", "--reason", "superseded"])
    assert unknown.exit_code == 1 and "No certificate with serial ABCDEF" in unknown.output
    assert _state(services) == before
    done = runner.invoke(main, ["revoke", serial, "--reason", "superseded"])
    assert done.exit_code == 0 and f"revoked {serial}" in done.output
    again = runner.invoke(main, ["revoke", serial, "--reason", "superseded"])
    assert again.exit_code == 1 and "already revoked" in again.output


def test_lease_elects_one_publisher_and_numbers_never_go_back(services, settings) -> None:
    from datetime import UTC, datetime, timedelta

    from ca_service import build_services
    from ca_service.store import revocations as store

    other = build_services(settings)  # a second worker (or host) on the same database
    issuer_id = next(iter(services.directory.get().signing))
    now = datetime.now(UTC)
    with other.db.write() as session:
        assert store.take_lease(session, issuer_id, other.revocation.owner, now, now + timedelta(minutes=5))
    assert services.revocation.publish_due() is True  # due, but the lease is held elsewhere
    with services.db.read() as session:
        assert store.published_crl(session, issuer_id) is None
    with other.db.write() as session:
        store.release_lease(session, issuer_id, other.revocation.owner)
    assert services.revocation.publish_due() is False
    first = services.revocation.published(services.directory.get().cas[issuer_id].name).number
    second = other.revocation.regenerate(issuer_id)
    assert second > first
    with services.db.write() as session:  # a slow worker's older CRL never replaces a newer one
        assert not store.store_crl(
            session,
            issuer_id,
            number=first,
            covered=[],
            der=b"old",
            entries=0,
            this_update=now,
            next_update=now,
        )
        assert store.published_crl(session, issuer_id).number == second
    other.db.dispose()


def test_ocsp_certid_with_an_unknown_hash_is_malformed(
    client: FlaskClient, admin: dict[str, str], tmp_path: Path
) -> None:
    """The CertID's hash algorithm is decoded lazily by cryptography: an OID it does not know
    must still be malformedRequest, not a 500 (found in review)."""
    _, crt = issue(client, admin, tmp_path, "7C2F80000009", "h")
    _, issuing = ca_files(client, tmp_path)
    der = _ocsp_request(crt, issuing, nonce=False)
    sha1_oid = bytes.fromhex("06052b0e03021a")
    assert sha1_oid in der
    odd = der.replace(sha1_oid, bytes.fromhex("06052b0e03021b"))  # 1.3.14.3.2.27, not a hash
    answer = client.post("/ocsp", data=odd, content_type="application/ocsp-request")
    assert answer.status_code == 400
    assert (
        ocsp.load_der_ocsp_response(answer.data).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def test_health_says_stale_when_a_revocation_waits_too_long(
    client: FlaskClient, app: Flask, admin: dict[str, str], tmp_path: Path, services
) -> None:
    """A revocation that the published CRL misses for longer than crl_stale_after_seconds makes
    /healthz 503 and shows in the age metric; publishing clears both."""
    publish(app)
    serial, _ = issue(client, admin, tmp_path, "7C2F80000021", "w")
    client.post(f"/api/v1/certificates/{serial}/revoke", json={"reason": "superseded"}, headers=admin)
    assert client.get("/healthz").json["checks"]["crl"] == "ok"  # within the bound (60 s)
    with services.db.write() as session:  # the revocation has waited two minutes
        session.execute(update(CrlPendingRow).values(revoked_at=datetime.now(UTC) - timedelta(minutes=2)))
    stale = client.get("/healthz")
    assert (
        stale.status_code == 503
        and "misses 1 revocation(s), the oldest for 12" in stale.json["checks"]["crl"]
    )
    metric = next(
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("ca_crl_oldest_pending_revocation_seconds{")
    )
    assert float(metric.split()[-1]) >= 120
    publish(app)
    assert client.get("/healthz").status_code == 200
