"""lego (Debian's package) with external account binding obtains a device certificate from an
openssl-made CSR, against the service under gunicorn (2 workers)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from ca_service import Services
from ca_service.store.models import CertificateRow
from tests.helpers import LiveServer, make_csr, openssl

pytestmark = pytest.mark.slow  # lego against gunicorn


def test_lego_with_eab_and_openssl_csr(live: LiveServer, services: Services, tmp_path: Path) -> None:
    kid, hmac_key = services.acme.create_eab("lego", ("7C2F80",))
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2", name="device")
    lego_home = tmp_path / "lego"
    result = subprocess.run(
        [
            "lego",
            "--server",
            live.url + "/acme/directory",
            "--accept-tos",
            "--email",
            "ops@example.com",
            "--eab",
            "--kid",
            kid,
            "--hmac",
            hmac_key,
            "--csr",
            str(csr),
            "--path",
            str(lego_home),
            # lego wants a solver configured; it is never used, the authorizations are already valid
            "--http",
            "--http.port",
            "127.0.0.1:1",
            "run",
        ],
        capture_output=True,
        timeout=120,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    crt = next((lego_home / "certificates").glob("*.crt"))
    (tmp_path / "root.pem").write_bytes(services.directory.get().root.pem.encode())
    out = openssl("verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(crt), str(crt))
    assert out.stdout.strip().endswith(b"OK")
    subject = openssl("x509", "-in", str(crt), "-noout", "-subject").stdout.decode()
    assert "CN = 7C2F80C6E5C2" in subject
    with services.db.read() as session:
        assert session.scalars(select(CertificateRow.mac)).all() == ["7C2F80C6E5C2"]
