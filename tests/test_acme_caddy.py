"""Caddy (Debian's package) obtains a device certificate for a site named by the MAC: its own key
and a SAN-only CSR, external account binding, no challenge solved (the authorization is valid).
The certificate it then serves verifies as a TLS server certificate for the MAC name."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import select

from ca_service import Services
from ca_service.store.models import CertificateRow
from tests.helpers import LiveServer, free_port, have, openssl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have("caddy"), reason="caddy is installed by scripts/system-deps.sh"),
]

MAC = "7C2F80C6E5C2"

CADDYFILE = """\
{{
    admin off
    storage file_system {storage}
    http_port {http_port}
    https_port {https_port}
    skip_install_trust
}}
{mac} {{
    bind 127.0.0.1
    tls {{
        issuer acme {{
            dir {directory}
            eab {kid} {hmac_key}
        }}
    }}
    respond "device {mac}"
}}
"""


def wait_for_certificate(storage: Path, proc: subprocess.Popen[bytes], log: Path) -> Path:
    """The certificate file Caddy writes once it has it (Caddy obtains it in the background)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(storage.glob(f"certificates/*/{MAC.lower()}/{MAC.lower()}.crt"))
        if found:
            return found[0]
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError("Caddy got no certificate: " + log.read_text()[-3000:])


def test_caddy_obtains_a_certificate(live: LiveServer, services: Services, tmp_path: Path) -> None:
    kid, hmac_key = services.acme.create_eab("caddy", ("7C2F80",))
    storage, https_port = tmp_path / "caddy", free_port()
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(
        CADDYFILE.format(
            storage=storage,
            http_port=free_port(),
            https_port=https_port,
            mac=MAC,
            directory=live.url + "/acme/directory",
            kid=kid,
            hmac_key=hmac_key,
        )
    )
    log = tmp_path / "caddy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
        )
    try:
        crt = wait_for_certificate(storage, proc, log)
        root = tmp_path / "root.pem"
        root.write_text(services.directory.get().root.pem)
        # Caddy keeps leaf + chain in one file
        out = openssl("verify", "-CAfile", str(root), "-untrusted", str(crt), str(crt))
        assert out.stdout.strip().endswith(b"OK")
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        assert cert.subject.rfc4514_string() == f"CN={MAC}"
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [MAC]
        # the certificate Caddy serves, checked as a TLS client checks a server: chain + name
        served = openssl(
            "s_client",
            "-connect",
            f"127.0.0.1:{https_port}",
            "-servername",
            MAC,
            "-CAfile",
            str(root),
            "-verify_hostname",
            MAC,
            "-verify_return_error",
            input=b"",
            check=False,
        )
        assert b"Verify return code: 0 (ok)" in served.stdout, served.stdout[-2000:] + served.stderr[-2000:]
    finally:
        proc.terminate()
        proc.wait(10)
    with services.db.read() as session:
        assert session.scalars(select(CertificateRow.mac)).all() == [MAC]
