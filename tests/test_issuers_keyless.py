"""What the public reads never needs a key: with the issuing key unreadable, a freshly started
service still serves CA certificates, CRLs, the trust bundle and certificate views, while
signing answers 503 with one fixed sentence that names no key file, URI or module path."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

from ca_service import Services, create_app
from ca_service.clock import MovableClock
from ca_service.config import Settings
from ca_service.issuers import CANNOT_SIGN
from ca_service.issuers.signers import MAX_BACKOFF
from tests.helpers import LiveServer, cli, make_csr
from tests.softhsm import Token

MAC = "7C2F80C6E5C2"


def _public_reads(get: object, issuer: str, serial: str) -> dict[str, int]:
    """Status of every read that must survive a key store outage."""
    paths = [
        "/ca/root.pem",
        "/ca/issuing.pem",
        "/ca/chain.pem",
        f"/ca/issuers/{issuer}.crt",
        f"/ca/issuers/{issuer}.pem",
        f"/crl/{issuer}.crl",
        f"/crl/{issuer}.pem",
        "/trust/bundle.pem",
        "/trust/bundle.json",
    ]
    return {p: get(p).status_code for p in paths}  # type: ignore[operator]


def _no_key_names(text: str, key_hint: str) -> None:
    for needle in (key_hint, "keys/", "file:", "pkcs11:", "module-path", ".so", "softhsm"):
        assert needle not in text, f"{needle!r} leaked into {text[:300]!r}"


def test_file_key_moved_away_public_reads_stay_up_signing_says_503(
    services: Services, settings: Settings, client: FlaskClient, admin: dict[str, str], tmp_path: Path
) -> None:
    _, csr = make_csr(tmp_path, MAC)
    issued = client.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
    assert issued.status_code == 201
    services.revocation.publish_due()
    issuer = issued.json["issuer"]
    key_file = next((settings.home / "keys").glob(f"{issuer}.pem"))
    key_file.rename(tmp_path / "moved-away.pem")

    clock = MovableClock()
    fresh = create_app(settings, clock)  # a worker started while the key is gone
    fresh.config["TESTING"] = True
    web = fresh.test_client()
    try:
        assert set(_public_reads(web.get, issuer, issued.json["serial"]).values()) == {200}
        view = web.get(f"/api/v1/certificates/{issued.json['serial']}", headers=admin)
        assert view.status_code == 200 and view.json["issuer"] == issuer and view.json["chain_pem"]
        assert web.get(f"/api/v1/devices/{MAC}", headers=admin).status_code == 200

        refused = web.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
        assert refused.status_code == 503 and refused.mimetype == "application/problem+json"
        assert refused.json["detail"] == CANNOT_SIGN and refused.headers["Retry-After"]
        health = web.get("/healthz")
        assert health.status_code == 503 and health.json["checks"]["keystore"] != "ok"
        for answer in (refused, health):
            _no_key_names(answer.get_data(as_text=True), key_file.name)
    finally:
        fresh.extensions["ca_service"].db.dispose()

    key_file.parent.mkdir(exist_ok=True)
    (tmp_path / "moved-away.pem").rename(key_file)  # the key is back: signing heals, no restart,
    clock.advance(MAX_BACKOFF)  # once the back-off has passed
    healed = web.post("/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin)
    assert healed.status_code == 201


@pytest.mark.slow
def test_softhsm_token_detached_fresh_gunicorn_serves_public_reads(
    settings: Settings, env_for: dict[str, str], hsm_token: Token, tmp_path: Path
) -> None:
    env = {**env_for, **hsm_token.hsm.env}
    cli(env, "init", "--key-uri", hsm_token.uri("issuing"), "--root-key-uri", hsm_token.uri("root"))
    token = cli(env, "token", "create", "--role", "admin", "--name", "a").stdout.strip()
    admin = {"Authorization": f"Bearer {token}"}
    _, csr = make_csr(tmp_path, MAC)
    issued = cli(env, "issue", "--csr", str(csr), "--out", str(tmp_path / "leaf.pem")).stderr
    serial = issued.split()[1]
    cli(env, "crl", "publish")
    issuer = next(w for w in cli(env, "issuer", "list").stdout.split() if w.startswith("issuing-"))
    hsm_token.detach()
    server = LiveServer(env, workers=2).start()
    try:

        def get(path: str) -> requests.Response:
            return requests.get(server.url + path, timeout=10)

        assert set(_public_reads(get, issuer, serial).values()) == {200}
        view = requests.get(f"{server.url}/api/v1/certificates/{serial}", headers=admin, timeout=10)
        assert view.status_code == 200
        refused = requests.post(
            server.url + "/api/v1/certificates", json={"csr": csr.read_text()}, headers=admin, timeout=10
        )
        assert refused.status_code == 503 and refused.json()["detail"] == CANNOT_SIGN
        for answer in (refused, get("/healthz")):
            _no_key_names(answer.text, hsm_token.label)
    finally:
        server.stop()
        hsm_token.attach()
