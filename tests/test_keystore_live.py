"""Two gunicorn workers issue concurrently from one SoftHSM2 key (each opens its own PKCS#11
session after the fork), pick up an issuer rotation made by the CLI, and never show the PIN."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from ca_service.config import Settings
from tests.helpers import LiveServer, cli, make_csr, openssl
from tests.softhsm import Token

pytestmark = pytest.mark.slow


def _issue_many(server: LiveServer, admin: dict[str, str], csrs: list[str], count: int) -> list[dict]:  # type: ignore[type-arg]
    def one(i: int) -> dict:  # type: ignore[type-arg]
        r = requests.post(
            server.url + "/api/v1/certificates", json={"csr": csrs[i % len(csrs)]}, headers=admin, timeout=30
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(one, range(count)))


def _verify_all(tmp: Path, server: LiveServer, certs: list[dict]) -> None:  # type: ignore[type-arg]
    (tmp / "root.pem").write_text(requests.get(server.url + "/ca/root.pem", timeout=10).text)
    (tmp / "chain.pem").write_text(requests.get(server.url + "/ca/chain.pem", timeout=10).text)
    names = []
    for i, cert in enumerate(certs):
        (tmp / f"c{i}.pem").write_text(cert["certificate_pem"])
        names.append(f"c{i}.pem")
    done = openssl("verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", *names, cwd=tmp)
    assert done.stdout.decode().count(": OK") == len(certs)


def test_two_workers_issue_concurrently_from_one_softhsm_key(
    settings: Settings, env_for: dict[str, str], hsm_token: Token, tmp_path: Path
) -> None:
    env = {
        **env_for,
        **hsm_token.hsm.env,
        "CA_SERVICE_ISSUER_REFRESH_SECONDS": "0",
        "CA_SERVICE_ACCESS_LOG": "1",
    }
    keys = ("--key-uri", hsm_token.uri("issuing-1"), "--root-key-uri", hsm_token.uri("root"))
    cli(env, "init", "--dev", *keys)
    admin = {
        "Authorization": "Bearer "
        + cli(env, "token", "create", "--role", "admin", "--name", "a").stdout.strip()
    }
    csrs = [make_csr(tmp_path, f"7C2F800000{i:02d}", name=f"d{i}")[1].read_text() for i in range(4)]
    server = LiveServer(env, workers=2).start()
    try:
        health = requests.get(server.url + "/healthz", timeout=10)
        assert health.status_code == 200, health.text

        first = _issue_many(server, admin, csrs, 40)
        assert len({c["serial"] for c in first}) == 40
        assert {c["issuer"] for c in first} == {first[0]["issuer"]}
        _verify_all(tmp_path, server, first)

        rotated = cli(env, "issuer", "rotate", "--key-uri", hsm_token.uri("issuing-2"))
        assert "is retiring" in rotated.stderr
        second = _issue_many(server, admin, csrs, 12)  # the running workers picked up the rotation
        assert len({c["issuer"] for c in second}) == 1 and second[0]["issuer"] != first[0]["issuer"]
        chain = requests.get(server.url + "/ca/chain.pem", timeout=10).text
        assert chain.count("BEGIN CERTIFICATE") == 3
        _verify_all(tmp_path, server, first + second)
        listing = cli(env, "issuer", "list").stdout
        assert "retiring" in listing and f"pkcs11:token={hsm_token.label};object=issuing-2" in listing
        config = cli(env, "config").stdout
    finally:
        server.stop()

    log = Path(server.log.name).read_text()
    self_tests = [line for line in log.splitlines() if "start-up self-test" in line]
    assert len(self_tests) >= 2 and all('"keystore": "ok"' in line for line in self_tests)
    pids = set()
    for line in log.splitlines():
        if line.startswith("{") and '"path": "/api/v1/certificates"' in line:
            entry = json.loads(line)
            if entry["status"] == 201:
                pids.add(entry["pid"])
    assert len(pids) == 2, "both workers signed with the token"
    for text in (log, listing, config):
        assert hsm_token.pin not in text


@pytest.fixture(scope="session")
def login_counter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/pkcs11_login_counter.c built with the system's C compiler: a PKCS#11 module that
    wraps SoftHSM2 and logs every C_Login, so a test counts the PIN attempts the token sees."""
    out = tmp_path_factory.mktemp("pkcs11-shim") / "login-counter.so"
    source = Path(__file__).with_name("pkcs11_login_counter.c")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(out), str(source), "-ldl"], check=True)
    return out


def test_a_refused_pin_is_offered_once_per_worker_until_the_operator_checks(
    settings: Settings, env_for: dict[str, str], hsm_token: Token, tmp_path: Path, login_counter: Path
) -> None:
    """A real HSM locks its user after a few wrong PINs. Workers whose PIN the token refused offer
    it once each, not once per request or per back-off step, log one line each, and try again
    only after 'ca-service issuer check' found the fixed PIN working."""
    logins = tmp_path / "logins"
    env = {
        **env_for,
        **hsm_token.hsm.env,
        "PKCS11_REAL_MODULE": hsm_token.hsm.module,
        "PKCS11_LOGIN_LOG": str(logins),
        "CA_SERVICE_ISSUER_REFRESH_SECONDS": "0",
    }
    uri = lambda name: hsm_token.uri(name).replace(hsm_token.hsm.module, str(login_counter))  # noqa: E731
    cli(env, "init", "--dev", "--key-uri", uri("issuing"), "--root-key-uri", uri("root"))
    admin = {
        "Authorization": "Bearer "
        + cli(env, "token", "create", "--role", "admin", "--name", "a").stdout.strip()
    }
    csr = make_csr(tmp_path, "7C2F80000040")[1].read_text()
    hsm_token.pin_file.write_text("wrong-pin-0000\n")
    logins.write_text("")
    server = LiveServer(env, workers=2).start()
    try:
        for _ in range(12):  # spread over both workers, past several back-off steps of theirs
            refused = requests.post(
                server.url + "/api/v1/certificates", json={"csr": csr}, headers=admin, timeout=10
            )
            assert refused.status_code == 503
            assert requests.get(server.url + "/healthz", timeout=10).status_code == 503
            time.sleep(0.3)
        assert len(logins.read_text().splitlines()) <= 2  # one refused attempt per worker at most
        hsm_token.pin_file.write_text(hsm_token.pin + "\n")
        checked = cli(env, "issuer", "check")
        assert [line.split()[-1] for line in checked.stdout.splitlines()[1:]] == ["ok", "ok"]
        assert checked.returncode == 0
        deadline = time.monotonic() + 10
        while True:
            ok = requests.post(
                server.url + "/api/v1/certificates", json={"csr": csr}, headers=admin, timeout=10
            )
            if ok.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert ok.status_code == 201, ok.text
    finally:
        server.stop()
    log = Path(server.log.name).read_text()
    assert log.count('"msg": "CA key unavailable"') <= 2  # one line per worker, no flood
    assert "Traceback" not in log and "wrong-pin" not in log and hsm_token.pin not in log
