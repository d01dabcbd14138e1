"""The hierarchy commands as an operator runs them: ``issuer revoke``, ``crl root``,
``init --issuing-csr-only --root`` with the URLs it prints, and ``crl import``."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from tests.helpers import cli, make_csr, openssl
from tests.revocation_helpers import OfflineRoot

pytestmark = pytest.mark.slow  # the CLI as subprocesses


def test_issuer_revoke_and_the_root_crl(env_for: dict[str, str], tmp_path: Path) -> None:
    cli(env_for, "init", "--dev")
    issuing = cli(env_for, "issuer", "list", "--json").stdout
    name = next(line for line in issuing.split('"') if line.startswith("issuing-"))
    done = cli(env_for, "issuer", "revoke", name, "--reason", "cACompromise")
    assert "is revoked and in the root CRL" in done.stderr
    again = cli(env_for, "issuer", "revoke", name, check=False)
    assert again.returncode == 1 and "already revoked" in again.stderr
    wrong = cli(env_for, "issuer", "revoke", name, "--reason", "keyCompromise", check=False)
    assert wrong.returncode == 1 and "cACompromise" in wrong.stderr
    crl = cli(env_for, "crl", "root", "--out", "-").stdout
    text = openssl("crl", "-noout", "-text", input=crl.encode()).stdout.decode()
    assert "CA Compromise" in text
    _, csr = make_csr(tmp_path, "7C2F80000051")
    refused = cli(env_for, "issue", "--csr", str(csr), "--out", str(tmp_path / "x.crt"), check=False)
    assert refused.returncode == 1 and "issuer rotate" in refused.stderr
    rotated = cli(env_for, "issuer", "rotate")
    assert "is active" in rotated.stderr and "retiring" not in rotated.stderr
    cli(env_for, "issue", "--csr", str(csr), "--out", str(tmp_path / "x.crt"))


def test_external_root_urls_and_crl_import(env_for: dict[str, str], tmp_path: Path) -> None:
    offline = OfflineRoot(tmp_path / "offline")
    csr = tmp_path / "issuing.csr"
    init = cli(env_for, "init", "--dev", "--issuing-csr-only", "--root", str(offline.cert), "--out", str(csr))
    lines = [
        line for line in init.stderr.splitlines() if line.startswith(("crlDistributionPoints", "authority"))
    ]
    assert len(lines) == 2 and "/crl/root-" in lines[0] and "<" not in lines[0], init.stderr
    issuing = offline.sign(csr, "\n".join(lines) + "\n")
    cli(env_for, "issuer", "import", str(issuing), "--root", str(offline.cert))
    cert = x509.load_pem_x509_certificate(issuing.read_bytes())
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert points[0].full_name[0].value == lines[0].split("URI:")[1]
    (tmp_path / "root.crl").write_bytes(offline.crl(3))
    done = cli(env_for, "crl", "import", str(tmp_path / "root.crl"))
    assert "root CRL 3 of root-" in done.stderr
    (tmp_path / "old.crl").write_bytes(offline.crl(2))
    lower = cli(env_for, "crl", "import", str(tmp_path / "old.crl"), check=False)
    assert lower.returncode == 1 and "not above the published CRL number 3" in lower.stderr
    assert cli(env_for, "crl", "root", "--out", "-").stdout == (tmp_path / "root.crl").read_text()
