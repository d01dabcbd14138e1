"""Start-up and CLI failures, each run as the operator meets it (the real command as a
subprocess): one line on stderr that names the setting or file and the fix, a non-zero exit,
no traceback unless --debug."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ca_service import Services
from ca_service.config import Settings
from tests.helpers import REPO, cli, free_port, make_csr

# the CLI as subprocesses; they fail before the database matters, so SQLite only
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]


NOBODY = 65534  # a user other than root: the service's own, in a deployment


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The failure's one stderr line (warnings aside), after checking the exit status and that
    no traceback was printed."""
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this user cannot write in: mode 0500, or for root (whom modes do not stop) a
    folder of sysfs."""
    if os.geteuid() == 0:
        return Path("/sys/kernel")
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    return folder


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CA_SERVICE_DATABASE_URL", "garbage", "CA_SERVICE_DATABASE_URL is refused: give a postgresql://"),
        ("CA_SERVICE_DATABASE_URL", "mysql://ca:secret@db/ca", "'mysql' databases are not supported"),
        ("CA_SERVICE_VALIDITY_DAYS", "-5", "CA_SERVICE_VALIDITY_DAYS = -5 is refused"),
        ("CA_SERVICE_MIN_RSA_BITS", "512", "CA_SERVICE_MIN_RSA_BITS = 512 is refused"),
        ("CA_SERVICE_ALLOWED_CURVES", "secp192r1", "the supported curves are"),
        ("CA_SERVICE_CRL_LIFETIME_SECONDS", "-60", "CA_SERVICE_CRL_LIFETIME_SECONDS = -60 is refused"),
        ("CA_SERVICE_PUBLIC_URL", "ca.example.com", "CA_SERVICE_PUBLIC_URL = 'ca.example.com' is refused"),
        ("CA_SERVICE_BIND", "127.0.0.1:80000", "the port 80000 is not within 1 to 65535"),
    ],
)
def test_a_refused_setting(env_for: dict[str, str], variable: str, value: str, says: str) -> None:
    line = one_line_error(cli({**env_for, variable: value}, "db", "upgrade", check=False))
    assert says in line and "secret" not in line


def test_an_unreachable_postgresql(env_for: dict[str, str]) -> None:
    url = f"postgresql://ca:secret@127.0.0.1:{free_port()}/ca"
    line = one_line_error(cli({**env_for, "CA_SERVICE_DATABASE_URL": url}, "db", "upgrade", check=False))
    assert "Connection refused" in line and "Check CA_SERVICE_DATABASE_URL" in line
    assert "ca:***@127.0.0.1" in line and "secret" not in line


@pytest.mark.parametrize("where", ["under /proc", "a file", "unwritable"])
def test_a_home_that_cannot_be_used(env_for: dict[str, str], tmp_path: Path, where: str) -> None:
    home = {
        "under /proc": Path("/proc/ca-service-home"),
        "a file": tmp_path / "a-file",
        "unwritable": unwritable_folder(tmp_path) / "home",
    }[where]
    if where == "a file":
        home.write_text("")
    if where == "unwritable" and os.geteuid() == 0:
        home = home.parent  # sysfs: even the folder itself takes no file
    line = one_line_error(cli({**env_for, "CA_SERVICE_HOME": str(home)}, "init", check=False))
    assert f"CA_SERVICE_HOME = {home} cannot be used" in line and "a folder this user can create" in line
    if where == "a file":
        assert "it is a file, not a folder" in line


def test_no_home_anywhere(env_for: dict[str, str], tmp_path: Path) -> None:
    """Without CA_SERVICE_HOME and without ./var the CLI says so instead of looking for a
    database in the current folder; with ./var there, it uses it; a config file's home too."""
    env = {k: v for k, v in {**os.environ, **env_for}.items() if k != "CA_SERVICE_HOME"}
    run = lambda *args, cwd=tmp_path: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "ca_service.cli", *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    line = one_line_error(run("token", "list"))
    assert "No service home: set CA_SERVICE_HOME" in line and "./var" in line
    (tmp_path / "var").mkdir()
    assert run("init", "--dev").returncode == 0 and (tmp_path / "var" / "keys").is_dir()
    assert run("token", "list").stdout.split() == [
        "NAME",
        "ROLE",
        "SCOPES",
        "STATE",
        "CREATED",
        "AT",
        "REVOKED",
        "AT",
    ]
    config = tmp_path / "ca.toml"
    config.write_text(f'home = "{tmp_path / "var"}"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["CA_SERVICE_CONFIG"] = str(config)
    assert run("token", "list", cwd=elsewhere).returncode == 0


def test_a_home_that_does_not_exist(env_for: dict[str, str], tmp_path: Path) -> None:
    line = one_line_error(
        cli({**env_for, "CA_SERVICE_HOME": str(tmp_path / "nowhere")}, "token", "list", check=False)
    )
    assert "is not a folder; run 'ca-service init'" in line


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p): (p.lstat().st_uid, p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal is of root; CI runs the suite as root")
@pytest.mark.parametrize(
    "command", [("issuer", "rotate"), ("token", "create", "--role", "admin", "--name", "x")]
)
def test_root_on_the_service_users_home(
    services: Services, env_for: dict[str, str], settings: Settings, command: tuple[str, ...]
) -> None:
    """Root (an operator who forgot runuser) on a home that the service's user owns: refused
    before anything is written. A rotated issuing key owned by root would stop every issuance of
    the service, which then cannot read it."""
    services.db.dispose()
    for path in (settings.home, *settings.home.rglob("*")):
        os.lchown(path, NOBODY, NOBODY)
    around = Path(settings.database_url.removeprefix("sqlite:///")).parent  # the database and the home
    before = snapshot(around)
    line = one_line_error(cli(env_for, *command, check=False))
    owner = pwd.getpwuid(NOBODY).pw_name
    assert f"ca-service runs as root, but CA_SERVICE_HOME = {settings.home} belongs to user {owner}" in line
    assert f"runuser -u {owner} -- ca-service {command[0]} {command[1]}" in line
    assert snapshot(around) == before


def test_a_bind_address_in_use(env_for: dict[str, str]) -> None:
    """The port is checked before anything is set up or printed: no "serving on", no retries."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(env_for, "serve", "--bind", f"127.0.0.1:{port}", check=False)
    line = one_line_error(result)
    assert line == (
        f"error: Cannot listen on 127.0.0.1:{port}: another program listens there (a running "
        "ca-service?); stop the other server or choose another address with --bind."
    )
    assert "serving on" not in result.stderr and not (Path(env_for["CA_SERVICE_HOME"]) / "metrics").exists()
    bad = cli(env_for, "serve", "--bind", "127.0.0.1:80000", check=False)
    assert bad.returncode == 2 and "the port 80000 is not within 1 to 65535" in bad.stderr


def test_an_unexpected_error_is_one_line_unless_debug(env_for: dict[str, str], tmp_path: Path) -> None:
    env_for = {**env_for, "CA_SERVICE_KEY_PASSPHRASE": "correct horse battery staple"}  # no warning
    cli(env_for, "init")
    _, csr = make_csr(tmp_path, "7C2F80C6E5C2")
    out = str(tmp_path / "missing" / "dev.crt")
    line = one_line_error(cli(env_for, "issue", "--csr", str(csr), "--out", out, check=False))
    assert line.startswith("error: unexpected FileNotFoundError:") and "--debug" in line
    debug = cli(env_for, "--debug", "issue", "--csr", str(csr), "--out", out, check=False)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_a_misspelled_variable_is_named(env_for: dict[str, str]) -> None:
    result = cli({**env_for, "CA_SERVICE_PUBLC_URL": "https://ca.example.net"}, "config")
    assert (
        "warning: CA_SERVICE_PUBLC_URL is not a setting and is ignored; did you mean CA_SERVICE_PUBLIC_URL?"
        in result.stderr.splitlines()
    )


def test_version_help_and_standalone_help(env_for: dict[str, str]) -> None:
    from ca_service import __version__

    assert cli(env_for, "--version").stdout.strip() == f"ca-service, version {__version__}"
    assert cli(env_for, "-h").stdout.startswith("Usage: ca-service")
    assert cli(env_for, "token", "create", "-h").stdout.startswith("Usage: ca-service token create")
    renew = cli(env_for, "renew", "--help").stdout
    assert "[[certificate]]" in renew and "account_key" in renew and ".py" not in renew
    assert REPO.name not in renew
