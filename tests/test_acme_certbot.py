"""certbot's CLI in its default own-key mode (certbot makes the key and a SAN-only CSR) obtains a
device certificate with external account binding, renews it with ``--force-renewal`` and, with no
flag, when the server's renewal information (RFC 9773) says the window has passed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import select

from ca_service import Services
from ca_service.store.models import CertificateRow
from tests.helpers import LiveServer, openssl

pytestmark = pytest.mark.slow

MAC = "7C2F80C6E5C2"
CERTBOT = str(Path(sys.executable).with_name("certbot"))
# certbot waits a random 1-480 s before renewing when stdin is not a terminal (cron); the tests
# turn that delay off and nothing else
RENEW = ("renew", "--no-random-sleep-on-renew")


def run_certbot(home: Path, *args: str) -> str:
    """certbot as its users run it from cron: non-interactive, its state under ``home``."""
    result = subprocess.run(
        [
            CERTBOT,
            *args,
            "--config-dir",
            str(home / "config"),
            "--work-dir",
            str(home / "work"),
            "--logs-dir",
            str(home / "logs"),
            "--non-interactive",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={"HOME": str(home), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture
def env_for(env_for: dict[str, str]) -> dict[str, str]:
    """Renewal windows that close 4 minutes after issuance (start, spread and length 0:
    [notBefore, notBefore + 1 minute], notBefore backdated 5 minutes), so that renewal
    information says "renew" for every certificate; a client that renews without force did so
    because of it (certbot's own rule waits for 2/3 of the 365 days)."""
    return {**env_for, **{f"CA_SERVICE_RENEWAL_WINDOW_{p}": "0" for p in ("START", "SPREAD", "LENGTH")}}


def verify(lineage: Path, root: Path) -> x509.Certificate:
    out = openssl(
        "verify", "-CAfile", str(root), "-untrusted", str(lineage / "chain.pem"), str(lineage / "cert.pem")
    )
    assert out.stdout.strip().endswith(b"OK")
    return x509.load_pem_x509_certificate((lineage / "cert.pem").read_bytes())


def test_certbot_obtains_and_renews(live: LiveServer, services: Services, tmp_path: Path) -> None:
    kid, hmac_key = services.acme.create_eab("certbot", ("7C2F80",))
    home = tmp_path / "certbot"
    root = tmp_path / "root.pem"
    root.write_text(services.directory.get().root.pem)
    out = run_certbot(
        home,
        "certonly",
        "--server",
        live.url + "/acme/directory",
        "--eab-kid",
        kid,
        "--eab-hmac-key",
        hmac_key,
        "--agree-tos",
        "--register-unsafely-without-email",
        # certbot wants an authenticator; the authorizations are valid already, so the hook
        # (which would publish an http-01 token) is never called
        "--manual",
        "--manual-auth-hook",
        "false",
        "-d",
        MAC,
    )
    assert "Successfully received certificate" in out, out
    lineage = home / "config" / "live" / MAC.lower()
    first = verify(lineage, root)
    assert first.subject.rfc4514_string() == f"CN={MAC}"
    names = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [MAC]

    out = run_certbot(home, *RENEW, "--force-renewal")
    assert "Congratulations, all renewals succeeded" in out, out
    forced = verify(lineage, root)
    assert forced.serial_number != first.serial_number
    assert forced.public_key() != first.public_key()  # own-key mode: a new key per certificate

    out = run_certbot(home, *RENEW)  # no --force-renewal: renewal information says the window passed
    assert "Congratulations, all renewals succeeded" in out, out
    by_ari = verify(lineage, root)
    assert by_ari.serial_number != forced.serial_number

    # the server's Retry-After (6 hours) is kept: the next run does not ask again, and certbot's
    # own rule (2/3 of the lifetime) says the certificate is not due
    out = run_certbot(home, *RENEW)
    assert "not yet due for renewal" in out, out
    with services.db.read() as session:
        assert session.scalars(select(CertificateRow.mac)).all() == [MAC] * 3
    assert len(list((home / "config" / "archive" / MAC.lower()).glob("cert*.pem"))) == 3
