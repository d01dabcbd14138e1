"""The service under gunicorn with several workers: concurrent issuance on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from ca_service.store.models import CertificateRow
from tests.helpers import LiveServer, make_csr, openssl

pytestmark = pytest.mark.slow  # against gunicorn


def test_concurrent_issuance_through_workers(services, admin, env_for, tmp_path: Path) -> None:
    csrs = [make_csr(tmp_path, f"7C2F80{i:06X}", name=f"d{i}")[1].read_text() for i in range(8)]
    server = LiveServer(env_for, workers=2).start()
    try:

        def issue(n: int) -> tuple[int, str]:
            with requests.Session() as http:
                r = http.post(
                    f"{server.url}/api/v1/certificates", json={"csr": csrs[n % 8]}, headers=admin, timeout=30
                )
                return r.status_code, r.json().get("serial", r.text)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(issue, range(160)))
        chain = tmp_path / "chain.pem"
        chain.write_bytes(requests.get(f"{server.url}/ca/chain.pem", timeout=5).content)
    finally:
        server.stop()
    assert {status for status, _ in results} == {201}, results[:3]
    serials = [s for _, s in results]
    assert len(set(serials)) == 160
    with services.db.read() as session:
        assert session.query(CertificateRow).count() == 160
        last = session.query(CertificateRow).order_by(CertificateRow.id.desc()).first()
        assert last is not None
        crt = tmp_path / "last.der"
        crt.write_bytes(last.der)
    pem = openssl("x509", "-inform", "DER", "-in", str(crt)).stdout
    (tmp_path / "last.pem").write_bytes(pem)
    assert openssl("verify", "-CAfile", str(chain), str(tmp_path / "last.pem")).stdout.strip().endswith(b"OK")
