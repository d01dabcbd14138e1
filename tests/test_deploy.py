"""Deploying as shipped: the wheel built from this tree and installed outside it, run the way
deploy/ca-service.service runs it (README "Deploying"); the unit checked by systemd-analyze
against that installed layout; the container entrypoint on an empty and a configured volume;
every imported library declared in pyproject.toml."""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import requests

from ca_service import __version__
from tests.helpers import REPO, free_port, have, make_csr, openssl, sign_with_offline_root
from tests.nginx import stop

UNIT = REPO / "deploy" / "ca-service.service"
ENTRYPOINT = REPO / "deploy" / "container-entrypoint.sh"
DEV_MAC = "7C2F80D0E1F2"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_library_is_declared() -> None:
    """Each library that ca_service imports is a dependency in pyproject.toml, or an extra for the
    code paths that need it (hsm: python-pkcs11, client: acme): an installed wheel must not lean
    on what happens to be installed beside it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = {
        _norm(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])
        for requirement in [*project["dependencies"], *extras["hsm"], *extras["client"]]
    }
    imported: set[str] = set()
    for path in (REPO / "ca_service").rglob("*.py"):  # rglob does not enter the migrations link
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"ca_service", "__future__"}
    distributions = packages_distributions()
    undeclared = {
        module: distributions.get(module, ["(not installed)"])
        for module in sorted(third_party)
        if not declared & {_norm(d) for d in distributions.get(module, [])}
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


# -- the installed layout -------------------------------------------------------------------------
@dataclass
class Host:
    """A host root in a temporary folder, laid out as README "Deploying" says: the wheel in a venv
    at /opt/ca-service, settings and the key passphrase under /etc/ca-service. ``path`` maps an
    absolute path of the host to this root."""

    root: Path

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    @property
    def venv(self) -> Path:
        return self.path("/opt/ca-service")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    """The sdist and the wheel built from this tree as a release is (the wheel from the sdist), the
    wheel installed with the hsm extra into a fresh venv outside the source tree."""
    tmp = tmp_path_factory.mktemp("release")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(tmp / "dist"), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("ca_service-*.whl")
    host = Host(tmp / "root")
    subprocess.run([sys.executable, "-m", "venv", str(host.venv)], check=True)
    installed = subprocess.run(
        [str(host.venv / "bin" / "pip"), "install", "-q", f"{wheel}[hsm]"], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return host


def clean_env(host: Host, home: Path, **variables: str) -> dict[str, str]:
    """An environment with nothing of this test process in it (no PYTHONPATH, no virtualenv):
    the installed venv first on PATH, as for an operator's shell."""
    return {"PATH": f"{host.venv}/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **variables}


@dataclass
class UnitRun:
    """What systemd would hand deploy/ca-service.service's commands on ``host``: its Environment=
    with the state (%S), runtime (%t) and credentials (%d) folders placed in ``base``, its
    LoadCredential= files copied there, its StateDirectory= and RuntimeDirectory= made. No
    sandbox: systemd-analyze checks those directives; this checks that the commands and settings
    fit the installed service."""

    host: Host
    base: Path
    env: dict[str, str] = field(default_factory=dict)
    exec_start_pre: list[list[str]] = field(default_factory=list)
    exec_start: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        specifiers = {
            "%S": str(self.base / "var/lib"),
            "%t": str(self.base / "run"),
            "%d": str(self.base / "run/credentials/ca-service.service"),
        }

        def expand(value: str) -> str:
            for specifier, replacement in specifiers.items():
                value = value.replace(specifier, replacement)
            return re.sub(
                r"(?<![\w/])/(opt|etc)/ca-service", lambda m: str(self.host.path(m.group(0))), value
            )

        credentials = Path(specifiers["%d"])
        credentials.mkdir(parents=True)
        for line in UNIT.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "Environment":
                name, _, setting = value.partition("=")
                self.env[name] = expand(setting)
            elif key == "LoadCredential":
                ident, _, source = value.partition(":")
                shutil.copyfile(expand(source), credentials / ident)
            elif key == "StateDirectory":
                for name in value.split():
                    (Path(specifiers["%S"]) / name).mkdir(parents=True, mode=0o700)
            elif key == "RuntimeDirectory":
                for name in value.split():
                    (Path(specifiers["%t"]) / name).mkdir(parents=True, mode=0o700, exist_ok=True)
            elif key == "ExecStartPre":
                self.exec_start_pre.append(shlex.split(expand(value)))
            elif key == "ExecStart":
                self.exec_start = shlex.split(expand(value))


@pytest.mark.slow
def test_installed_wheel_runs_as_the_unit_runs_it(host: Host, tmp_path: Path) -> None:
    """Outside the source tree, from the installed wheel alone: --version; migrations (the unit's
    ExecStartPre); serve --require-ca (its ExecStart) refusing an empty home; init with an
    external root as README "Deploying" does it (the passphrase read from /dev/stdin); then the
    unit's commands serve, one certificate is issued and revoked, and openssl ocsp sees it revoked.
    The passphrase never lands in the home, and gunicorn opens no control socket in $HOME."""
    port = free_port()
    etc = host.path("/etc/ca-service")
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "ca-service.toml").write_text(
        f'public_url = "http://127.0.0.1:{port}"\nbind = "127.0.0.1:{port}"\nworkers = 1\n'
    )
    passphrase = etc / "key-passphrase"
    passphrase.write_text(os.urandom(24).hex() + "\n")
    passphrase.chmod(0o600)
    unit = UnitRun(host, tmp_path / "system")
    user_home = tmp_path / "user"
    user_home.mkdir()
    env = clean_env(host, user_home, **unit.env)
    work = tmp_path / "elsewhere"
    work.mkdir()

    def run(argv: list[str], *, passphrase_on_stdin: bool = False) -> subprocess.CompletedProcess[str]:
        """A command as the unit runs it; with ``passphrase_on_stdin`` as the README runs the
        operator's CLI: the passphrase file is root's, the CLI reads it from its stdin."""
        command_env = {**env, "CA_SERVICE_KEY_PASSPHRASE_FILE": "/dev/stdin"} if passphrase_on_stdin else env
        with open(passphrase if passphrase_on_stdin else os.devnull) as stdin:
            return subprocess.run(
                argv, env=command_env, cwd=work, stdin=stdin, capture_output=True, text=True, timeout=120
            )

    ca_service = str(host.venv / "bin" / "ca-service")
    assert run([ca_service, "--version"]).stdout == f"ca-service, version {__version__}\n"
    where = run([str(host.venv / "bin" / "python"), "-c", "import ca_service; print(ca_service.__file__)"])
    assert Path(where.stdout.strip()).is_relative_to(host.venv), where
    for command in unit.exec_start_pre:
        assert run(command).returncode == 0, command
    refused = run(unit.exec_start)
    assert refused.returncode == 1 and "There is no issuing CA: run 'ca-service init'" in refused.stderr
    csr = tmp_path / "issuing.csr"
    init = [ca_service, "init", "--issuing-csr-only", "--out", str(csr), "--subject", "/O=Example/CN=Issuing"]
    made = run(init, passphrase_on_stdin=True)
    assert made.returncode == 0, made.stderr
    issuing, root = sign_with_offline_root(tmp_path, csr)
    imported = run(
        [ca_service, "issuer", "import", str(issuing), "--root", str(root)], passphrase_on_stdin=True
    )
    assert imported.returncode == 0, imported.stderr
    token = run([ca_service, "token", "create", "--role", "admin", "--name", "deploy-test"]).stdout.strip()
    state = Path(unit.env["CA_SERVICE_HOME"])
    assert (state / "ca.db").exists() and not (state / "keys" / "passphrase").exists()

    for command in unit.exec_start_pre:
        assert run(command).returncode == 0, command
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            unit.exec_start, env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, server, log)
        _, device_csr = make_csr(tmp_path, DEV_MAC)
        admin = {"Authorization": f"Bearer {token}"}
        issued = requests.post(
            f"{base}/api/v1/certificates", json={"csr": device_csr.read_text()}, headers=admin, timeout=30
        )
        assert issued.status_code == 201, issued.text
        leaf = tmp_path / "device.pem"
        leaf.write_text(issued.json()["certificate_pem"])
        chain = tmp_path / "chain.pem"
        chain.write_bytes(issuing.read_bytes() + root.read_bytes())
        assert openssl("verify", "-CAfile", str(chain), str(leaf)).stdout.strip().endswith(b"OK")
        serial = issued.json()["serial"]
        revoked = requests.post(
            f"{base}/api/v1/certificates/{serial}/revoke",
            json={"reason": "keyCompromise"},
            headers=admin,
            timeout=30,
        )
        assert revoked.status_code == 200, revoked.text
        ocsp = openssl(
            *("ocsp", "-issuer", str(issuing), "-cert", str(leaf), "-url", f"{base}/ocsp"),
            *("-CAfile", str(root), "-verify_other", str(issuing)),
        )
        assert f"{leaf}: revoked".encode() in ocsp.stdout, ocsp
    finally:
        stop(server)
    assert not (user_home / ".gunicorn").exists()  # control_socket_disable


@pytest.mark.slow
def test_systemd_unit_verifies_against_the_installed_layout(host: Host) -> None:
    """systemd-analyze verify finds every command of the unit in the installed layout (the venv
    from the wheel, this machine's systemd units and kill), and its offline security review
    rates the sandbox (ProtectSystem=strict, NoNewPrivileges=, ...) at exposure 2.0 or less of
    10 (--threshold counts tenths)."""
    if not have("systemd-analyze"):
        pytest.fail("systemd-analyze is needed; scripts/system-deps.sh installs systemd")
    units = host.path("/usr/lib/systemd/system")
    if not units.exists():
        shutil.copytree("/usr/lib/systemd/system", units, symlinks=True)
    host.path("/usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2("/usr/bin/kill", host.path("/usr/bin/kill"))
    if not host.path("/bin").exists():
        host.path("/bin").symlink_to("usr/bin")  # Debian's merged /usr
    host.path("/etc/systemd/system").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(UNIT, host.path("/etc/systemd/system/ca-service.service"))
    installed_unit = "/etc/systemd/system/ca-service.service"
    verify = subprocess.run(
        ["systemd-analyze", "verify", f"--root={host.root}", installed_unit], capture_output=True, text=True
    )
    assert verify.returncode == 0 and not verify.stdout + verify.stderr, verify.stdout + verify.stderr
    security = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=yes",
            "--threshold=20",
            f"--root={host.root}",
            installed_unit,
        ],
        capture_output=True,
        text=True,
    )
    assert security.returncode == 0, security.stdout[-3000:]


def wait_until_ready(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Until /healthz answers 200 (database, key store and CRL ready); fails when the server exits
    or is not ready within a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError("the server exited: " + log.read_text()[-3000:])
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready: " + log.read_text()[-3000:])
