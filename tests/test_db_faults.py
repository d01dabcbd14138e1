"""A database that hangs instead of failing (design decision 10): with PostgreSQL behind a proxy
that stops forwarding, requests answer 503 problem+json within their bound instead of hanging
(the client's own timeout is the proof: it would fire first), nothing is half written, and the
service heals without a restart once the link forwards again."""

from __future__ import annotations

import base64
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlalchemy import func, select

from ca_service import WAITS_FOR_DATABASE, Services
from ca_service.authority.ocsp import cert_id_keys
from tests.faults import StallingProxy
from tests.helpers import LiveServer, cli, make_csr

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgresql"], indirect=True)]

BOUND = 7  # seconds a client waits; the service's bounds answer well within it


@pytest.fixture
def proxied(services: Services, env_for: dict[str, str]) -> Iterator[tuple[StallingProxy, dict[str, str]]]:
    proxy = StallingProxy(("127.0.0.1", 5432))
    url = env_for["CA_SERVICE_DATABASE_URL"].replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    yield proxy, {**env_for, "CA_SERVICE_DATABASE_URL": url}
    proxy.close()


def _ocsp_request(cert: dict[str, str], services: Services) -> str:
    """The path element of a nonce-less OCSP GET (RFC 6960 A.1) for ``cert``'s serial."""
    issuer = services.directory.get().require_active().certificate
    _, name_hash, key_hash = next(k for k in cert_id_keys(issuer) if k[0] == "sha1")
    request = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        name_hash,
        key_hash,
        int(cert["serial"], 16),
        hashes.SHA1(),
    )
    der = request.build().public_bytes(serialization.Encoding.DER)
    return urllib.parse.quote(base64.b64encode(der).decode(), safe="")


def _problem_503(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.headers["Retry-After"]


def test_stalled_database_answers_503_and_heals(
    services: Services, proxied: tuple[StallingProxy, dict[str, str]], tmp_path: Path
) -> None:
    from ca_service.store.models import AuditRow, CertificateRow

    proxy, env = proxied
    token = cli(env, "token", "create", "--role", "admin", "--name", "ops").stdout.strip()
    admin = {"Authorization": f"Bearer {token}"}
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    body = {"csr": csr.read_text()}
    server = LiveServer(env, workers=1).start()  # one worker: it has read the CA set before the fault
    try:
        first = requests.post(server.url + "/api/v1/certificates", json=body, headers=admin, timeout=BOUND)
        assert first.status_code == 201
        issuer = first.json()["issuer"]
        services.revocation.publish_due()
        crl = requests.get(f"{server.url}/crl/{issuer}.crl", timeout=BOUND)
        ocsp_path = "/ocsp/" + _ocsp_request(first.json(), services)
        assert (
            crl.status_code == 200 and requests.get(server.url + ocsp_path, timeout=BOUND).status_code == 200
        )
        bundle = requests.get(server.url + "/trust/bundle.pem", timeout=BOUND)
        assert bundle.status_code == 200
        proxy.stall()
        for method, path, kwargs in (
            ("post", "/api/v1/certificates", {"json": body}),
            ("get", f"/api/v1/certificates/{first.json()['serial']}", {}),
            (
                "post",
                f"/api/v1/certificates/{first.json()['serial']}/revoke",
                {"json": {"reason": "superseded"}},
            ),
        ):
            _problem_503(getattr(requests, method)(server.url + path, headers=admin, timeout=BOUND, **kwargs))
        health = requests.get(server.url + "/healthz", timeout=BOUND)
        assert health.status_code == 503 and health.json()["checks"]["database"] != "ok", health.text
        assert health.json()["checks"]["keystore"] in ("ok", WAITS_FOR_DATABASE), health.text  # not blamed
        # public reads keep answering from what the worker holds: CA certificates, the CRL, the
        # trust bundle it rendered, the OCSP response it signed (still valid); a certificate it
        # never answered for: tryLater
        assert requests.get(server.url + "/ca/chain.pem", timeout=BOUND).status_code == 200
        held_bundle = requests.get(server.url + "/trust/bundle.pem", timeout=BOUND)
        assert held_bundle.status_code == 200 and held_bundle.content == bundle.content
        held = requests.get(f"{server.url}/crl/{issuer}.crl", timeout=BOUND)
        assert held.status_code == 200 and held.content == crl.content
        cached = requests.get(server.url + ocsp_path, timeout=BOUND)
        assert (
            cached.status_code == 200
            and ocsp.load_der_ocsp_response(cached.content).certificate_status.name == "GOOD"
        )
        unseen = requests.get(
            server.url + "/ocsp/" + _ocsp_request({**first.json(), "serial": "0ABC"}, services), timeout=BOUND
        )
        assert unseen.status_code == 503
        assert (
            ocsp.load_der_ocsp_response(unseen.content).response_status is ocsp.OCSPResponseStatus.TRY_LATER
        )

        proxy.resume()
        deadline = time.monotonic() + 15
        while True:
            again = requests.post(
                server.url + "/api/v1/certificates", json=body, headers=admin, timeout=BOUND
            )
            if again.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert again.status_code == 201, again.text
    finally:
        server.stop()
    with services.db.read() as session:  # every certificate has its issuance audit row
        serials = set(session.scalars(select(CertificateRow.serial)))
        audited = set(session.scalars(select(AuditRow.serial).where(AuditRow.action == "certificate.issue")))
        assert serials == audited and first.json()["serial"] in serials
        assert session.scalar(select(func.count()).select_from(CertificateRow)) == len(serials)
