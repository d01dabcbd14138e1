"""Revocation above the leaf, in process: the root CRL published and served, issuing CA
certificates that point at it, an issuing CA revoked by the root, an external root's CRL
imported, and OCSP answers that caches can keep (RFC 5019). Every CRL and response is
cross-checked with the openssl CLI."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from ca_service import build_services, create_app
from ca_service.authority.issuer import pem
from ca_service.clock import MovableClock
from ca_service.domain import IssuerState, Principal, Role
from ca_service.errors import CAError, Kind
from ca_service.issuers import REVOKED_ISSUER, lifecycle
from ca_service.keystore import load_key
from ca_service.store.models import IssuerRow
from tests.helpers import make_csr, openssl
from tests.revocation_helpers import OfflineRoot, ca_files, issue

ADMIN = Principal(name="test-admin", role=Role.ADMIN)


def _der_to_pem(der: bytes, tmp: Path, name: str) -> Path:
    path = tmp / name
    path.write_bytes(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
    return path


def test_issuing_ca_points_at_the_served_root_crl(
    client: FlaskClient, app: Flask, settings, tmp_path: Path
) -> None:
    svc = app.extensions["ca_service"]
    cas = svc.directory.get()
    root, issuing = cas.root, cas.require_active()
    points = issuing.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in points for n in p.full_name] == [f"{settings.public_url}/crl/{root.name}.crl"]
    aia = issuing.certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [
        (x509.AuthorityInformationAccessOID.CA_ISSUERS, f"{settings.public_url}/ca/issuers/{root.name}.crt")
    ]
    assert client.get(f"/ca/issuers/{root.name}.crt").data == root.der
    assert client.get(f"/crl/{root.name}.crl").status_code == 503  # not published yet
    svc.revocation.publish_due()  # the publisher signs the root CRL with the issuing CRLs
    der = client.get(f"/crl/{root.name}.crl")
    pem = client.get(f"/crl/{root.name}.pem")
    assert der.status_code == pem.status_code == 200 and der.headers["ETag"] and der.headers["Expires"]
    crl = x509.load_der_x509_crl(der.data)
    assert crl.issuer == root.certificate.subject and len(crl) == 0
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number >= 1
    with pytest.raises(x509.ExtensionNotFound):  # covers every certificate the root issued
        crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    root_pem, _ = ca_files(client, tmp_path)
    (tmp_path / "root-crl.pem").write_bytes(pem.data)
    check = openssl("crl", "-in", str(tmp_path / "root-crl.pem"), "-CAfile", str(root_pem), "-noout")
    assert b"verify OK" in check.stderr + check.stdout
    text = openssl("x509", "-noout", "-text", input=issuing.pem.encode()).stdout.decode()
    assert f"URI:{settings.public_url}/crl/{root.name}.crl" in text and "CA Issuers - URI:" in text
    assert svc.revocation.health_check() == "ok"


def test_issuer_revoke_lists_it_in_the_root_crl_and_stops_issuance(
    client: FlaskClient, app: Flask, admin: dict[str, str], settings, tmp_path: Path
) -> None:
    svc = app.extensions["ca_service"]
    svc.revocation.publish_due()
    serial, device = issue(client, admin, tmp_path, "7C2F80000041", "device")
    old = svc.directory.get().require_active()
    with pytest.raises(CAError) as bad_reason:
        svc.revocation.revoke_issuer(old.name, "keyCompromise")
    assert bad_reason.value.kind is Kind.MALFORMED and "cACompromise" in bad_reason.value.detail
    revoked = svc.revocation.revoke_issuer(old.name, "cACompromise")
    assert revoked.in_root_crl and int(revoked.serial, 16) == old.certificate.serial_number
    with pytest.raises(CAError) as again:
        svc.revocation.revoke_issuer(old.name, "cACompromise")
    assert again.value.kind is Kind.ALREADY_REVOKED
    # no certificate is signed under it any more: a problem document that names the next step
    _, csr = make_csr(tmp_path, "7C2F80000042", name="refused")
    refused = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
    assert refused.status_code == 503 and refused.mimetype == "application/problem+json"
    assert refused.json["detail"] == REVOKED_ISSUER.format(name=old.name)
    svc.revocation.publish_due()
    root = svc.directory.get().root
    crl = x509.load_der_x509_crl(client.get(f"/crl/{root.name}.crl").data)
    entry = crl.get_revoked_certificate_by_serial_number(old.certificate.serial_number)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.ca_compromise
    )
    # its last CRL is still served; openssl refuses the device for its issuing CA
    root_pem, issuing_pem = tmp_path / "root.pem", tmp_path / "issuing.pem"
    root_pem.write_text(root.pem)
    issuing_pem.write_text(old.pem)
    crls = tmp_path / "crls.pem"
    crls.write_bytes(
        _der_to_pem(client.get(f"/crl/{root.name}.crl").data, tmp_path, "r.pem").read_bytes()
        + _der_to_pem(client.get(f"/crl/{old.name}.crl").data, tmp_path, "i.pem").read_bytes()
    )
    args = ["-CAfile", str(root_pem), "-untrusted", str(issuing_pem), "-CRLfile", str(crls)]
    result = openssl("verify", "-crl_check_all", *args, str(device), check=False)
    assert result.returncode != 0 and b"certificate revoked" in result.stdout + result.stderr
    assert b"1 depth" in result.stdout + result.stderr
    # the revoked CA answers no OCSP; a rotation makes a new issuing CA that signs again
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(x509.load_pem_x509_certificate(device.read_bytes()), old.certificate, hashes.SHA1())
        .build()
    )
    answer = client.post("/ocsp", data=request.public_bytes(serialization.Encoding.DER), content_type=OCSP)
    assert ocsp.load_der_ocsp_response(answer.data).response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    rotated = lifecycle.rotate(svc.db, settings)
    assert rotated.retiring_name is None
    svc.directory.invalidate()
    fresh = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
    assert fresh.status_code == 201 and fresh.json["issuer"] == rotated.issuing_name
    assert serial != fresh.json["serial"]


OCSP = "application/ocsp-request"


def test_issuance_refuses_an_issuing_ca_revoked_by_another_worker(make_settings, tmp_path: Path) -> None:
    """The issuing transaction reads the issuer's state: a worker whose CA snapshot predates the
    revocation (refreshed only every hour here) still refuses to sign under it."""
    settings = make_settings(issuer_refresh_seconds=3600)
    worker = build_services(settings)
    lifecycle.initialize(worker.db, settings)
    name = worker.directory.get().require_active().name  # this worker's snapshot: active
    other = build_services(settings)
    other.revocation.revoke_issuer(name, "cessationOfOperation")
    _, csr = make_csr(tmp_path, "7C2F80000043")
    with pytest.raises(CAError) as refused:
        worker.enrollment.issue(csr.read_bytes(), ADMIN)
    assert refused.value.kind is Kind.UNAVAILABLE and name in refused.value.detail
    worker.db.dispose()
    other.db.dispose()


# -- an external (offline) root (tests/revocation_helpers.py: OfflineRoot, the openssl CLI) --------
def test_external_root_crl_import(make_settings, tmp_path: Path) -> None:
    settings = make_settings()
    svc = build_services(settings)
    result = lifecycle.initialize(svc.db, settings, csr_only=True)
    assert result.csr_pem
    csr = tmp_path / "issuing.csr"
    csr.write_text(result.csr_pem)
    offline = OfflineRoot(tmp_path / "offline")
    root_cert = x509.load_pem_x509_certificate(offline.cert.read_bytes())
    root_name = lifecycle.external_root_name(root_cert)
    extensions = lifecycle.extension_text(settings, root_name)
    assert f"URI:{settings.public_url}/crl/{root_name}.crl" in extensions
    issuing = offline.sign(csr, extensions)
    lifecycle.import_issuer(svc.db, settings, issuing.read_bytes(), offline.cert.read_bytes())
    clock = MovableClock()
    app = create_app(settings, clock)
    client = app.test_client()
    web = app.extensions["ca_service"]
    web.revocation.publish_due()
    # nothing imported yet: a warning and a metric, not unreadiness
    missing = client.get(f"/crl/{root_name}.crl")
    assert missing.status_code == 404 and "crl import" in missing.json["detail"]
    health = client.get("/healthz")
    assert health.status_code == 200 and "crl import" in health.json["details"]["warnings"][0]
    assert f'ca_crl_import_due{{issuer="{root_name}"}} 1.0' in client.get("/metrics").text
    signed = offline.crl(16)
    first = web.revocation.import_crl(signed)
    as_der = x509.load_pem_x509_crl(signed).public_bytes(serialization.Encoding.DER)
    assert first.number == 16 and client.get(f"/crl/{root_name}.crl").data == as_der
    assert client.get("/healthz").json["details"]["warnings"] == []
    assert f'ca_crl_import_due{{issuer="{root_name}"}} 0.0' in client.get("/metrics").text
    clock.advance(24 * 86400)  # 6 days before its nextUpdate: within root_crl_warn_days
    assert "is due for renewal" in client.get("/healthz").json["details"]["warnings"][0]
    assert f'ca_crl_import_due{{issuer="{root_name}"}} 1.0' in client.get("/metrics").text
    clock.advance(-24 * 86400)
    served = client.get(f"/crl/{root_name}.pem").data
    check = openssl("crl", "-CAfile", str(offline.cert), "-noout", input=served)
    assert b"verify OK" in check.stderr + check.stdout
    # never lower (nor equal) in number, never another issuer, never another key
    for number in (5, 16):
        with pytest.raises(CAError, match="not above the published CRL number 16"):
            web.revocation.import_crl(offline.crl(number))
    foreign = OfflineRoot(tmp_path / "foreign", subject="/O=Elsewhere/CN=Foreign Root")
    with pytest.raises(CAError, match="not our root"):
        web.revocation.import_crl(foreign.crl(99))
    impostor = OfflineRoot(tmp_path / "impostor")  # the same name, another key
    with pytest.raises(CAError) as forged:
        web.revocation.import_crl(impostor.crl(99))
    assert forged.value.kind is Kind.CONFLICT
    with pytest.raises(CAError) as junk:
        web.revocation.import_crl(b"not a CRL")
    assert junk.value.kind is Kind.MALFORMED
    # the root revokes our issuing CA in its next CRL (due in 3 days: a warning)
    offline.revoke(issuing, "CACompromise")
    web.revocation.import_crl(offline.crl(17, days=3))
    with svc.db.read() as session:
        state = {r.name: r.state for r in lifecycle.store.all_issuers(session)}
    assert state[result.issuing_name] is IssuerState.REVOKED
    assert "is due for renewal" in client.get("/healthz").json["details"]["warnings"][0]
    _, device_csr = make_csr(tmp_path, "7C2F80000044")
    web.directory.invalidate()
    with pytest.raises(CAError, match="revoked"):
        web.enrollment.issue(device_csr.read_bytes(), ADMIN)
    web.db.dispose()
    svc.db.dispose()


def _request(cert: Path, issuing: Path) -> bytes:
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate(
            x509.load_pem_x509_certificate(cert.read_bytes()),
            x509.load_pem_x509_certificate(issuing.read_bytes()),
            hashes.SHA1(),
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
    )


def test_ocsp_get_answers_caches_can_keep(client: FlaskClient, admin: dict[str, str], tmp_path: Path) -> None:
    _, crt = issue(client, admin, tmp_path, "7C2F80000045", "device")
    _, issuing = ca_files(client, tmp_path)
    url = "/ocsp/" + base64.b64encode(_request(crt, issuing)).decode()
    first = client.get(url)
    assert first.status_code == 200
    response = ocsp.load_der_ocsp_response(first.data)
    assert first.headers["ETag"] and first.last_modified == response.this_update_utc
    assert first.expires == response.next_update_utc
    max_age = first.cache_control.max_age
    assert max_age is not None and 0 < max_age <= 300 and first.cache_control.public
    assert first.cache_control.no_transform and first.cache_control.must_revalidate
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    post = client.post("/ocsp", data=_request(crt, issuing), content_type=OCSP)
    assert post.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_ocsp_responder_by_name_with_its_certificate(make_settings, tmp_path: Path) -> None:
    settings = make_settings(ocsp_responder_id="name", ocsp_include_certificate=True)
    svc = build_services(settings)
    lifecycle.initialize(svc.db, settings)
    client = create_app(settings).test_client()
    token = {"Authorization": "Bearer " + _admin_token(svc)}
    _, crt = issue(client, token, tmp_path, "7C2F80000046", "device")
    root, issuing = ca_files(client, tmp_path)
    der = client.post("/ocsp", data=_request(crt, issuing), content_type=OCSP).data
    response = ocsp.load_der_ocsp_response(der)
    issuing_cert = x509.load_pem_x509_certificate(issuing.read_bytes())
    assert response.responder_name == issuing_cert.subject and response.responder_key_hash is None
    assert response.certificates == [issuing_cert]
    (tmp_path / "resp.der").write_bytes(der)
    # openssl finds the signer in the response (no -verify_other) and chains it to the root
    result = openssl(
        *("ocsp", "-respin", str(tmp_path / "resp.der"), "-issuer", str(issuing), "-cert", str(crt)),
        *("-CAfile", str(root)),
    )
    assert b"Response verify OK" in result.stderr + result.stdout and b": good" in result.stdout
    svc.db.dispose()


def _admin_token(svc) -> str:
    from ca_service.enrollment.tokens import create_token

    return create_token(svc.db, name="hierarchy-admin", role="admin")


def _without_revocation_pointers(cert: x509.Certificate, root_key) -> x509.Certificate:
    """``cert`` as issuing CAs were made before: the same fields, no CRL DP and no AIA."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    dropped = (x509.CRLDistributionPoints, x509.AuthorityInformationAccess)
    for ext in cert.extensions:
        if not isinstance(ext.value, dropped):
            builder = builder.add_extension(ext.value, ext.critical)
    return builder.sign(root_key, hashes.SHA384())


def test_an_issuing_ca_made_before_keeps_working(
    services, client: FlaskClient, admin: dict[str, str], settings, tmp_path: Path
) -> None:
    """An issuing CA certificate without CRL DP (made before this release): the root CRL has no
    issuing distribution point, so openssl -crl_check_all still takes it for that CA, before and
    after the root revokes it."""
    cas = services.directory.get()
    old = cas.require_active()
    legacy = _without_revocation_pointers(old.certificate, load_key(cas.root.record.key_uri, settings))
    with services.db.write() as session:
        session.execute(update(IssuerRow).where(IssuerRow.id == old.id).values(certificate_pem=pem(legacy)))
    app_services = client.application.extensions["ca_service"]
    app_services.directory.invalidate()
    _, device = issue(client, admin, tmp_path, "7C2F80000047", "device")
    app_services.revocation.publish_due()
    root_pem, issuing_pem = ca_files(client, tmp_path)
    assert b"CRL Distribution" not in openssl("x509", "-noout", "-text", "-in", str(issuing_pem)).stdout

    def verify() -> bytes:
        crls = tmp_path / "crls.pem"
        crls.write_bytes(
            client.get(f"/crl/{cas.root.name}.pem").data + client.get(f"/crl/{old.name}.pem").data
        )
        args = ["-crl_check_all", "-CAfile", str(root_pem), "-untrusted", str(issuing_pem)]
        result = openssl("verify", *args, "-CRLfile", str(crls), str(device), check=False)
        return result.stdout + result.stderr

    assert b": OK" in verify()
    app_services.revocation.revoke_issuer(old.name, "superseded")
    app_services.revocation.publish_due()
    assert b"certificate revoked" in verify()
