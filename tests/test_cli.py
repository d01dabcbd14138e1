"""The `ca-service` command, run as a real subprocess against the test database."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import REPO, cli, free_port, make_csr, openssl, self_signed

pytestmark = pytest.mark.slow  # the CLI as subprocesses, and a served home


def test_init_issue_and_refuse_overwrite(env_for: dict[str, str], tmp_path: Path) -> None:
    subject = "/O=Example/CN=Example Device CA"
    cli(env_for, "init", "--dev", "--issuing-key-type", "rsa-3072", "--subject", subject)
    again = cli(env_for, "init", "--dev", check=False)
    assert (
        again.returncode == 1 and "refusing to overwrite" in again.stderr and "Traceback" not in again.stderr
    )
    _, csr = make_csr(tmp_path, "7c2f80c6e5c2")
    out, chain = tmp_path / "N870.crt", tmp_path / "chain.pem"
    cli(env_for, "issue", "--csr", str(csr), "--out", str(out), "--chain-out", str(chain))
    text = openssl("x509", "-in", str(out), "-noout", "-text").stdout.decode()
    assert "Subject: CN = 7C2F80C6E5C2" in text and "Issuer: O = Example, CN = Example Device CA" in text
    assert "sha256WithRSAEncryption" in text
    keys = Path(env_for["CA_SERVICE_HOME"]) / "keys"
    for key in keys.glob("*.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_external_root_flow(env_for: dict[str, str], tmp_path: Path) -> None:
    """init --issuing-csr-only, sign with an openssl-made root, issuer import, issue, verify."""
    csr = tmp_path / "issuing.csr"
    subject = "/O=Example/CN=Issuing"
    cli(env_for, "init", "--dev", "--issuing-csr-only", "--out", str(csr), "--subject", subject)
    root_key, root = tmp_path / "root.key", tmp_path / "root.pem"
    self_signed(root_key, root, "/O=Example/CN=Offline Root", curve="P-384", days=3650)
    ext = tmp_path / "ext.cnf"
    ext.write_text(
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    issuing = tmp_path / "issuing.pem"
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(root),
        "-CAkey",
        str(root_key),
        "-CAcreateserial",
        "-days",
        "1825",
        "-extfile",
        str(ext),
        "-out",
        str(issuing),
    )
    # a certificate signed by some other root is refused and changes nothing
    other_key, other = tmp_path / "o.key", tmp_path / "o.pem"
    self_signed(other_key, other, "/CN=Other", days=10)
    bad = cli(env_for, "issuer", "import", str(issuing), "--root", str(other), check=False)
    assert bad.returncode == 1 and "root" in bad.stderr
    _, dev_csr = make_csr(tmp_path, "7C2F80000001")
    pending = cli(env_for, "issue", "--csr", str(dev_csr), "--out", str(tmp_path / "x.crt"), check=False)
    assert pending.returncode == 1 and "ca-service issuer import" in pending.stderr
    cli(env_for, "issuer", "import", str(issuing), "--root", str(root))
    crt = tmp_path / "dev.crt"
    cli(env_for, "issue", "--csr", str(dev_csr), "--out", str(crt))
    assert (
        openssl("verify", "-CAfile", str(root), "-untrusted", str(issuing), str(crt))
        .stdout.strip()
        .endswith(b"OK")
    )


def test_tokens(env_for: dict[str, str]) -> None:
    cli(env_for, "init", "--dev")
    created = cli(env_for, "token", "create", "--role", "provisioner", "--name", "p1", "--scope", "7c:2f:80")
    assert created.stdout.startswith("cas_") and created.stdout.count("\n") == 1
    assert (
        "needs at least one --scope"
        in cli(env_for, "token", "create", "--role", "provisioner", "--name", "p2", check=False).stderr
    )
    refused = cli(
        env_for, "token", "create", "--role", "auditor", "--name", "a", "--scope", "7C2F80", check=False
    )
    assert refused.returncode == 1 and "--scope is for provisioner tokens only" in refused.stderr
    listing = cli(env_for, "token", "list").stdout.splitlines()
    assert listing[0].split()[:4] == ["NAME", "ROLE", "SCOPES", "STATE"]
    assert listing[1].split()[:4] == ["p1", "provisioner", "7C2F80", "active"]
    assert created.stdout.strip() not in "\n".join(listing)
    cli(env_for, "token", "revoke", "p1")
    assert [t["state"] for t in json.loads(cli(env_for, "token", "list", "--json").stdout)] == ["revoked"]
    assert cli(env_for, "token", "revoke", "p1", check=False).returncode == 1
    cli(env_for, "token", "create", "--role", "admin", "--name", "p1")  # the name is free again
    dump = cli({**env_for, "CA_SERVICE_KEY_PASSPHRASE": "s3cret-passphrase"}, "config").stdout
    assert "s3cret-passphrase" not in dump
    assert json.loads(dump)["key_passphrase"] == "(set, from CA_SERVICE_KEY_PASSPHRASE)"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the embedded default's URL is shown
def test_config_shows_what_the_service_uses(env_for: dict[str, str], tmp_path: Path) -> None:
    """The resolved database URL with its password masked, the workers gunicorn will start,
    where the passphrase comes from and where each setting was set."""
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    env = {
        **env_for,
        "CA_SERVICE_DATABASE_URL": "postgresql://ca:pa55word@db.example/ca",
        "CA_SERVICE_KEY_PASSPHRASE_FILE": str(secret),
        "CA_SERVICE_WORKERS": "3",
    }
    dump = json.loads(cli(env, "config").stdout)
    assert dump["database_url"] == "postgresql+psycopg://ca:***@db.example/ca"  # the driver it uses
    assert dump["workers"] == 3 and dump["bind"] == "127.0.0.1:8000"
    assert dump["key_passphrase"] == "(set, from CA_SERVICE_KEY_PASSPHRASE_FILE)"
    assert dump["sources"]["workers"] == "CA_SERVICE_WORKERS" and dump["home_exists"] is False
    auto = json.loads(cli(env_for, "config").stdout)
    assert auto["database_url"].startswith("sqlite:///") and auto["workers"] == max(2, 2 * os.cpu_count())
    assert auto["key_passphrase"].startswith("(unset: read from ") and auto["key_passphrase"].endswith(
        "keys/passphrase, made there by the first init)"
    )


def test_dash_is_stdout_and_lists_have_headers_or_json(env_for: dict[str, str], tmp_path: Path) -> None:
    cli(env_for, "init", "--dev")
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    issued = subprocess.run(
        [sys.executable, "-m", "ca_service.cli", "issue", "--csr", str(csr), "--out", "-"],
        env={**os.environ, **env_for},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert issued.returncode == 0 and issued.stdout.startswith("-----BEGIN CERTIFICATE-----")
    assert not (tmp_path / "-").exists()
    for command, header in [
        (("issuer", "list"), ["NAME", "ROLE", "STATE"]),
        (("eab", "list"), ["KID", "NAME", "SCOPES"]),
        (("acme", "accounts", "list"), ["ID", "STATUS", "EAB"]),
        (("renewals", "due"), ["MAC", "SERIAL", "NOT"]),
        (("trust", "list"), ["ID", "PURPOSE", "LABEL"]),
        (("crl", "publish"), ["ISSUER", "NUMBER", "ENTRIES"]),
        (("token", "list"), ["NAME", "ROLE", "SCOPES"]),
    ]:
        assert cli(env_for, *command).stdout.split()[:3] == header, command
        assert isinstance(json.loads(cli(env_for, *command, "--json").stdout), list), command
    events = [json.loads(line) for line in cli(env_for, "audit", "--json").stdout.splitlines()]
    assert "certificate.issue" in [e["action"] for e in events]
    assert events == sorted(events, key=lambda e: e["id"])  # oldest first
    issued_events = cli(env_for, "audit", "--action", "certificate.issue", "--mac", "7c-2f-80-c6-e5-c2")
    assert issued_events.stdout.splitlines()[0].split()[:3] == ["AT", "ACTOR", "ACTION"]
    assert len(issued_events.stdout.splitlines()) == 2
    assert cli(env_for, "audit", "--since", "1h", "--json").stdout.count("\n") == len(events)
    assert cli(env_for, "audit", "--until", "2000-01-01", "--json").stdout == ""


def test_serve_on_empty_home(env_for: dict[str, str], tmp_path: Path) -> None:
    """The README's run command alone gives a usable service with an admin token file."""
    port = free_port()
    env = {**os.environ, **env_for, "CA_SERVICE_WORKERS": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ca_service.cli", "serve", "--bind", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or workers still booting
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "service did not start"
            time.sleep(0.2)
        token_file = Path(env_for["CA_SERVICE_HOME"]) / "admin-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
        response = requests.post(
            url + "/api/v1/certificates",
            json={"csr": csr.read_text()},
            headers={"Authorization": f"Bearer {token_file.read_text().strip()}"},
            timeout=10,
        )
        assert response.status_code == 201
        metrics = requests.get(url + "/metrics", timeout=5).text
        assert "ca_certificates_issued_total{issuer=" in metrics and "} 1.0" in metrics
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert b"admin token written to" in err and token_file.read_bytes().strip() not in err
