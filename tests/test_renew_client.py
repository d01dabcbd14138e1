"""``ca-service renew`` end to end against the service under gunicorn: first issuance, a
certificate inside its window renewed (hook runs), one outside left alone, an expired one
renewed, dry run, a concurrent run, failures reported one line each."""

from __future__ import annotations

import fcntl
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import func, select, update

from ca_service import Services
from ca_service.store.models import AcmeOrderRow, CertificateRow, utcnow
from tests.helpers import REPO, LiveServer, openssl

pytestmark = pytest.mark.slow  # the renew CLI against gunicorn

MACS = {"inside": "7C2F80000001", "outside": "7C2F80000002", "expired": "7C2F80000003"}


@pytest.fixture
def live(services: Services, env_for: dict[str, str], tmp_path: Path) -> Iterator[LiveServer]:
    config = tmp_path / "ca.toml"
    config.write_text("[profiles.expired]\nvalidity_days = 0\ndescription = 'test only: ends at issuance'\n")
    server = LiveServer({**env_for, "CA_SERVICE_CONFIG": str(config)}, workers=2).start()
    yield server
    server.stop()


def write_config(path: Path, url: str, tmp: Path, kid: str, hmac_key: str, expired_profile: str) -> None:
    entries = []
    for name, mac in MACS.items():
        entries.append(
            f"""[[certificate]]
name = "{name}"
mac = "{mac}"
directory = "{url}/acme/directory"
cert = "{tmp}/out/{name}.pem"
key = "{tmp}/out/{name}.key"
account_key = "{tmp}/account.key"
eab_kid = "{kid}"
eab_hmac_key = "{hmac_key}"
hook = "touch {tmp}/hook-{name}"
{'profile = "' + expired_profile + '"' if name == "expired" else ""}
"""
        )
    path.write_text(f'lock_file = "{tmp}/renew.lock"\n' + "\n".join(entries))


def renew(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ca_service.cli", "renew", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
    )


def serial_of(path: Path) -> str:
    return openssl("x509", "-in", str(path), "-noout", "-serial").stdout.decode().strip().split("=")[1]


def test_renew_client(live: LiveServer, services: Services, tmp_path: Path) -> None:
    kid, hmac_key = services.acme.create_eab("renewer", ("7C2F80",))
    config = tmp_path / "renew.toml"
    write_config(config, live.url, tmp_path, kid, hmac_key, "expired")

    first = renew(config)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count(": issued (no certificate yet") == 3
    out = tmp_path / "out"
    assert oct((out / "inside.key").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "account.key").stat().st_mode & 0o777) == "0o600"
    pem = (out / "inside.pem").read_bytes()
    assert pem.count(b"BEGIN CERTIFICATE") == 2
    assert x509.load_pem_x509_certificate(pem).subject.rfc4514_string() == "CN=7C2F80000001"
    for name in MACS:
        (tmp_path / f"hook-{name}").unlink()
    old = {name: serial_of(out / f"{name}.pem") for name in MACS}

    # 'inside' is moved into its window (its lifetime mostly behind it); 'expired' has expired
    now = utcnow()
    with services.db.write() as session:
        session.execute(
            update(CertificateRow)
            .where(CertificateRow.serial == old["inside"])
            .values(not_before=now - timedelta(days=330), not_after=now + timedelta(days=35))
        )
    write_config(config, live.url, tmp_path, kid, hmac_key, "device")

    with services.db.read() as session:
        orders_before = session.scalar(select(func.count()).select_from(AcmeOrderRow))
    dry = renew(config, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "inside: would-renew" in dry.stdout and "expired: would-renew (expired)" in dry.stdout
    assert "outside: not-due" in dry.stdout
    assert serial_of(out / "inside.pem") == old["inside"] and not (tmp_path / "hook-inside").exists()
    with services.db.read() as session:
        assert session.scalar(select(func.count()).select_from(AcmeOrderRow)) == orders_before

    # a second run while one holds the lock exits cleanly without doing anything
    with open(tmp_path / "renew.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        busy = renew(config)
    assert busy.returncode == 0 and "nothing done" in busy.stderr
    assert serial_of(out / "inside.pem") == old["inside"]

    second = renew(config)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "inside: renewed (inside its renewal window" in second.stdout
    assert "expired: renewed (expired" in second.stdout
    assert "outside: not-due (not due before" in second.stdout
    assert (tmp_path / "hook-inside").exists() and (tmp_path / "hook-expired").exists()
    assert not (tmp_path / "hook-outside").exists()
    assert serial_of(out / "outside.pem") == old["outside"]
    with services.db.read() as session:
        for name in ("inside", "expired"):
            new = serial_of(out / f"{name}.pem")
            assert new != old[name]
            row = session.scalar(select(CertificateRow).where(CertificateRow.serial == old[name]))
            assert row.replaced_by == new
    (tmp_path / "root.pem").write_text(services.directory.get().root.pem)
    chain = out / "inside.pem"
    assert (
        openssl(
            "verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted", str(chain), str(chain)
        ).returncode
        == 0
    )


def test_renew_reports_failures(live: LiveServer, services: Services, tmp_path: Path) -> None:
    kid, hmac_key = services.acme.create_eab("renewer", ("7C2F80",))
    config = tmp_path / "renew.toml"
    write_config(config, live.url, tmp_path, kid, hmac_key, "device")
    text = config.read_text().replace('mac = "7C2F80000002"', 'mac = "001A2B000002"')  # outside the EAB scope
    text = text.replace(f"touch {tmp_path}/hook-expired", "false")  # a failing hook
    config.write_text(text)
    result = renew(config)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2
    outside = next(line for line in errors if line.startswith("error: outside:"))
    assert outside == (  # the CA's own sentence, not the acme library's repr of what it could not read
        "error: outside: the CA refused: 001A2B000002 is outside the scope of this account's external "
        "account binding (7C2F80). (rejectedIdentifier)"
    )
    assert any(line.startswith("error: expired:") and "hook exited with status 1" in line for line in errors)
    assert "inside: issued" in result.stdout


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    from ca_service.renewal.client import Managed, Renewer
    from tests.helpers import free_port

    url = f"http://127.0.0.1:{free_port()}/acme/directory"
    files = [tmp_path / name for name in ("cert.pem", "key.pem", "account.key")]
    managed = Managed("base-1", "7C2F80C6E5C2", url, *files)
    outcome = Renewer().process(managed)
    assert (outcome.state, outcome.detail) == ("failed", f"cannot connect to {url}: connection refused")
