"""Revocation against gunicorn with two workers: openssl ocsp, CRL publication by the workers'
background publishers, and parallel revocations on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from cryptography import x509
from sqlalchemy import select

from ca_service.domain import Principal, Role
from ca_service.store.models import AuditRow
from tests.helpers import LiveServer, make_csr, openssl

pytestmark = pytest.mark.slow  # against gunicorn

ADMIN = Principal(name="test-admin", role=Role.ADMIN)


@pytest.fixture
def live(services, env_for: dict[str, str]) -> Iterator[LiveServer]:
    server = LiveServer(
        {**env_for, "CA_SERVICE_CRL_COALESCE_MS": "200", "CA_SERVICE_CRL_CHECK_SECONDS": "2"}, workers=2
    )
    try:
        yield server.start()
    finally:
        server.stop()  # also when start() gave up: no gunicorn left behind


def issue(services, tmp: Path, mac: str, name: str) -> tuple[str, Path]:
    _, csr = make_csr(tmp, mac, name=name)
    cert = services.enrollment.issue(csr.read_bytes(), ADMIN)
    path = tmp / f"{name}.crt"
    path.write_text(cert.certificate_pem)
    return cert.serial, path


def wait_for_crl(url: str, serials: set[int], deadline: float = 60) -> x509.CertificateRevocationList:
    """Poll the published CRL until it lists ``serials`` (the publishers work in the background)."""
    end = time.monotonic() + deadline
    while True:
        response = requests.get(url, timeout=10)
        if response.status_code == 200:
            crl = x509.load_der_x509_crl(response.content)
            if serials <= {r.serial_number for r in crl}:
                return crl
        if time.monotonic() > end:
            raise AssertionError(f"CRL at {url} still misses revocations ({response.status_code})")
        time.sleep(0.2)


def test_openssl_ocsp_and_crl_from_live_server(services, live: LiveServer, tmp_path: Path) -> None:
    good_serial, good = issue(services, tmp_path, "7C2F80000011", "good")
    bad_serial, bad = issue(services, tmp_path, "7C2F80000012", "bad")
    admin = {"Authorization": "Bearer " + _token(services)}
    r = requests.post(
        f"{live.url}/api/v1/certificates/{bad_serial}/revoke", json={"reason": "keyCompromise"}, headers=admin
    )
    assert r.status_code == 200, r.text
    root, issuing = tmp_path / "root.pem", tmp_path / "issuing.pem"
    root.write_bytes(requests.get(f"{live.url}/ca/root.pem").content)
    issuing.write_bytes(requests.get(f"{live.url}/ca/issuing.pem").content)
    base = ["ocsp", "-issuer", str(issuing), "-url", f"{live.url}/ocsp", "-CAfile", str(root)]
    base += ["-verify_other", str(issuing)]
    for args, expected in (
        (["-cert", str(good)], f"{good}: good"),
        (["-cert", str(bad)], f"{bad}: revoked"),
        (["-serial", "0x0123456789ABCDEF"], "0x0123456789ABCDEF: unknown"),
    ):
        result = openssl(*base, *args)
        assert b"Response verify OK" in result.stderr + result.stdout, result
        assert expected.encode() in result.stdout, result.stdout
    revoked = openssl(*base, "-cert", str(bad), "-nonce").stdout.decode()
    assert "Reason: keyCompromise" in revoked
    # the background publisher put the revocation into the CRL within seconds
    name = services.directory.get().require_active().name
    crl = wait_for_crl(f"{live.url}/crl/{name}.crl", {int(bad_serial, 16)})
    assert crl.get_revoked_certificate_by_serial_number(int(good_serial, 16)) is None
    end = time.monotonic() + 30  # the root CRL is published by the same publishers, maybe after it
    while (check := requests.get(f"{live.url}/healthz").json()["checks"]["crl"]) != "ok":
        assert time.monotonic() < end, check
        time.sleep(0.2)


def _token(services, role: str = "admin") -> str:
    from ca_service.enrollment.tokens import create_token

    return create_token(services.db, name=f"live-{role}-{time.monotonic_ns()}", role=role)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_parallel_revocations_two_workers(services, live: LiveServer, tmp_path: Path) -> None:
    serials = [issue(services, tmp_path, f"7C2F8001{i:04X}", f"d{i}")[0] for i in range(40)]
    admin = {"Authorization": "Bearer " + _token(services)}

    def revoke(serial: str) -> int:
        url = f"{live.url}/api/v1/certificates/{serial}/revoke"
        return requests.post(url, json={"reason": "superseded"}, headers=admin, timeout=30).status_code

    # every serial twice, interleaved: exactly one 200 and one 409 each
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(revoke, serials + serials[::-1]))
    per_serial = {s: sorted((codes[i], codes[len(serials) * 2 - 1 - i])) for i, s in enumerate(serials)}
    assert all(pair == [200, 409] for pair in per_serial.values()), per_serial
    name = services.directory.get().require_active().name
    crl = wait_for_crl(f"{live.url}/crl/{name}.crl", {int(s, 16) for s in serials})
    listed = [r.serial_number for r in crl]
    assert len(listed) == len(set(listed)) == len(serials)
    with services.db.read() as session:
        published = [
            e.detail["number"]
            for e in session.scalars(
                select(AuditRow).where(AuditRow.action == "crl.publish").order_by(AuditRow.id)
            )
            if e.detail["issuer"] == name  # the root CRL has numbers of its own
        ]
        revocations = session.scalars(select(AuditRow).where(AuditRow.action == "certificate.revoke")).all()
    assert len(revocations) == len(serials)
    assert published == sorted(set(published)) and len(published) >= 2  # strictly increasing
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert number == published[-1]
