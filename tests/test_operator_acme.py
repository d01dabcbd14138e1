"""What operators manage of ACME: EAB keys listed and revoked, accounts listed and
deactivated (CLI and REST), and the per-account issuance limit answered as ACME rateLimited;
with certbot's acme library as the client against gunicorn."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import requests
from acme import errors, messages

from ca_service import Services
from tests.acme_helpers import acme_client
from tests.helpers import LiveServer, cli, make_csr

pytestmark = pytest.mark.slow  # gunicorn and the CLI


def _register(acme: object, kid: str, hmac_key: str) -> messages.RegistrationResource:
    eab = messages.ExternalAccountBinding.from_data(
        account_public_key=acme.net.key.public_key(),  # type: ignore[attr-defined]
        kid=kid,
        hmac_key=hmac_key,
        directory=acme.directory,  # type: ignore[attr-defined]
    )
    reg = messages.NewRegistration.from_data(terms_of_service_agreed=True, external_account_binding=eab)
    return acme.new_account(reg)  # type: ignore[attr-defined,no-any-return]


def _finalize(acme: object, csr: Path) -> messages.OrderResource:
    order = acme.new_order(csr.read_bytes())  # type: ignore[attr-defined]
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
    return acme.poll_and_finalize(order, deadline)  # type: ignore[attr-defined,no-any-return]


def test_eab_and_accounts_through_cli_and_rest(
    services: Services, env_for: dict[str, str], tmp_path: Path
) -> None:
    env = {**env_for, "CA_SERVICE_RATE_LIMIT_ACME_ACCOUNT": "1"}
    created = json.loads(
        cli(env, "eab", "create", "--name", "platform-1", "--scope", "7C2F80", "--json").stdout
    )
    admin = {
        "Authorization": "Bearer "
        + cli(env, "token", "create", "--role", "admin", "--name", "ops").stdout.strip()
    }
    auditor = {
        "Authorization": "Bearer "
        + cli(env, "token", "create", "--role", "auditor", "--name", "audit").stdout.strip()
    }
    server = LiveServer(env, workers=2).start()
    try:
        acme = acme_client(server.url)
        account = _register(acme, created["kid"], created["hmac_key"])
        _, first = make_csr(tmp_path, "7C2F80C6E5C2", name="first")
        assert "BEGIN CERTIFICATE" in _finalize(acme, first).fullchain_pem
        # the account's limit is one certificate per hour: ACME rateLimited, 429, Retry-After
        _, second = make_csr(tmp_path, "7C2F80C6E5C3", name="second")
        with pytest.raises(errors.Error) as limited:
            _finalize(acme, second)
        assert limited.value.typ == "urn:ietf:params:acme:error:rateLimited"
        assert "ACME account" in limited.value.detail and "rate_limit_acme_account" in limited.value.detail

        listing = json.loads(cli(env, "eab", "list", "--json").stdout)
        assert [(k["name"], k["state"], k["account_id"]) for k in listing] == [
            ("platform-1", "bound", int(account.uri.rsplit("/", 1)[1]))
        ]
        assert "hmac" not in json.dumps(listing)
        table = cli(env, "acme", "accounts", "list").stdout.splitlines()
        assert table[0].split()[:3] == ["ID", "STATUS", "EAB"] and "platform-1" in table[1]
        api = server.url + "/api/v1/acme"
        accounts = requests.get(api + "/accounts", headers=auditor, timeout=10)
        assert accounts.status_code == 200 and accounts.json()[0]["certificates"] == 1
        assert requests.post(api + "/accounts/1/deactivate", headers=auditor, timeout=10).status_code == 403

        # an admin deactivates the account: its next request is refused
        done = requests.post(
            api + f"/accounts/{accounts.json()[0]['id']}/deactivate", headers=admin, timeout=10
        )
        assert done.status_code == 200 and done.json()["status"] == "deactivated"
        with pytest.raises(errors.Error) as refused:
            acme.new_order(second.read_bytes())
        assert refused.value.typ == "urn:ietf:params:acme:error:unauthorized"

        # a second key through the API; revoked, it binds no account; its name is free again
        fresh = requests.post(
            api + "/eab-keys", json={"name": "platform-2", "scopes": ["7C2F80"]}, headers=admin, timeout=10
        )
        assert fresh.status_code == 201
        kid = fresh.json()["kid"]
        assert "revoked" in cli(env, "eab", "revoke", kid).stderr
        assert cli(env, "eab", "revoke", kid, check=False).returncode == 1
        with pytest.raises(errors.Error) as revoked:
            _register(acme_client(server.url), kid, fresh.json()["hmac_key"])
        assert "revoked" in revoked.value.detail
        again = requests.post(
            api + "/eab-keys", json={"name": "platform-2", "scopes": ["7C2F80"]}, headers=admin, timeout=10
        )
        assert again.status_code == 201
        states = {
            k["kid"]: k["state"] for k in requests.get(api + "/eab-keys", headers=auditor, timeout=10).json()
        }
        assert states == {created["kid"]: "bound", kid: "revoked", again.json()["kid"]: "unused"}
    finally:
        server.stop()
    actions = [
        json.loads(line)["action"]
        for line in cli(env_for, "audit", "--action", "acme.*", "--json").stdout.splitlines()
    ]
    assert actions.count("acme.account.deactivate") == 1 and actions.count("acme.eab.revoke") == 1
