"""The README stays true: its shell examples run, in order, against a live service started the
way ``make run`` starts it; its tables are whole; the settings it names exist; the files it
names are in the repository.

A fenced block whose info string is ``sh`` is an example the test runs; ``sh root`` (changes a
host: packages, users, /etc, services) and ``sh server`` (starts something that runs until
stopped) are shown, not run. The examples run in one bash, in a fresh folder whose ``./var`` is
the service's home, with ``curl`` failing on HTTP errors; the service's fixed address in the
README (http://127.0.0.1:8000, and https://ca.example for the ACME clients) is replaced by the
live one's.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from ca_service.config import unknown_variables
from tests.helpers import REPO, free_port

README = REPO / "README.md"
NOT_RUN = {"root", "server"}
_FENCE = re.compile(r"^```(.*)$")


def blocks() -> list[tuple[int, str, str]]:
    """(line, info string, text) of every fenced block of the README."""
    found, info, start, body = [], None, 0, []
    for number, line in enumerate(README.read_text().splitlines(), 1):
        match = _FENCE.match(line)
        if match and info is None:
            info, start, body = match.group(1).strip(), number, []
        elif match:
            found.append((start, info, "\n".join(body) + "\n"))
            info = None
        elif info is not None:
            body.append(line)
    assert info is None, f"README.md: the block opened at line {start} is not closed"
    return found


def shell_examples() -> list[tuple[int, str]]:
    """The examples to run, in order; every other sh block must say why it is not run."""
    run = []
    for line, info, text in blocks():
        words = info.split()
        if not words or words[0] != "sh":
            continue
        assert words[1:] in ([], *([tag] for tag in NOT_RUN)), (
            f"README.md line {line}: unknown tag in ```{info}"
        )
        if len(words) == 1:
            run.append((line, text))
    return run


def test_tables_are_whole() -> None:
    """Every row of every table has its header's number of cells (a '|' inside a cell, even
    in backticks, splits it on GitHub)."""
    rows: list[tuple[int, int]] = []
    for number, line in enumerate([*README.read_text().splitlines(), ""], 1):
        if line.startswith("|"):
            rows.append((number, len(re.split(r"(?<!\\)\|", line.strip().strip("|")))))
            continue
        if rows:
            bad = [n for n, cells in rows if cells != rows[0][1]]
            assert not bad, (
                f"README.md lines {bad}: not {rows[0][1]} cells as in the header (line {rows[0][0]})"
            )
            rows = []


def test_settings_it_names_exist() -> None:
    named = set(re.findall(r"CA_SERVICE_[A-Z][A-Z0-9_]*[A-Z0-9]", README.read_text()))
    # "every setting CA_SERVICE_X can be given as CA_SERVICE_X_FILE"; the misspelling example
    placeholders = {"CA_SERVICE_X", "CA_SERVICE_X_FILE", "CA_SERVICE_PUBLC_URL"}
    assert unknown_variables(dict.fromkeys(named - placeholders, "")) == []


def test_files_it_names_are_in_the_repository() -> None:
    roots = ("ca_service/", "tests/", "deploy/", "bench/", "alembic/", "openapi/", "scripts/")
    named = {
        path.rstrip(".,:")
        for path in re.findall(r"`([^` <>*{}]+)`", README.read_text())
        if path.startswith(roots) and not path.endswith("/")
    }
    assert named and not sorted(p for p in named if not (REPO / p).exists())


@pytest.mark.slow  # ca-service serve, the CLI, curl, openssl and lego
def test_shell_examples_run_in_order(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CA_SERVICE_", "PROMETHEUS_"))}
    clean["PATH"] = f"{Path(sys.executable).parent}:{clean.get('PATH', '/usr/bin:/bin')}"
    server_log = tmp_path / "serve.log"
    with server_log.open("wb") as out:  # what `make run` does, on a port of its own
        server = subprocess.Popen(
            [sys.executable, "-m", "ca_service.cli", "serve", "--bind", f"127.0.0.1:{port}"],
            env={**clean, "CA_SERVICE_HOME": str(tmp_path / "var"), "CA_SERVICE_PUBLIC_URL": url,
                 "CA_SERVICE_WORKERS": "2"},
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and server.poll() is None, server_log.read_text()[-3000:]
            time.sleep(0.2)
        parts = ["set -euo pipefail", 'curl() { command curl --fail-with-body "$@"; }']
        for line, text in shell_examples():
            text = text.replace("http://127.0.0.1:8000", url).replace("https://ca.example", url)
            parts += [f"echo '### README.md line {line}' >&2", text]
        script = tmp_path / "readme.sh"
        script.write_text("\n".join(parts))
        work = tmp_path / "work"
        work.mkdir()
        (work / "var").symlink_to(tmp_path / "var")  # the checkout's ./var: the service's home
        result = subprocess.run(
            ["bash", str(script)], env=clean, cwd=work, capture_output=True, text=True, timeout=600
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
    ran = result.stderr.count("### README.md line")
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    assert ran == len(shell_examples()) >= 10
    assert "N870.crt: OK" in result.stdout + result.stderr
