"""Each worker verifies ACME requests with its own copy of the account key (no database read per
request); the account is read again in the transaction that redeems the nonce, so a key change
or a deactivation made through another worker or host holds at once. Two apps on one database
stand in for two workers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import josepy as jose
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient

from ca_service import Services, create_app
from tests.acme_helpers import acme_post, eab_binding, signed_body

BASE = "http://ca.test/acme/"


@pytest.fixture
def other(services: Services) -> Iterator[FlaskClient]:
    """A second worker: its own app, engine and account copies, on the same database."""
    second: Flask = create_app(services.settings)
    yield second.test_client()
    second.extensions["ca_service"].db.dispose()


def new_key() -> jose.JWKEC:
    return jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))


def test_key_change_and_deactivation_hold_on_every_worker(
    client: FlaskClient, other: FlaskClient, services: Services
) -> None:
    old, new = new_key(), new_key()
    made = acme_post(client, "new-account", {"externalAccountBinding": eab_binding(services, old)}, old)
    assert made.status_code == 201, made.json
    account = made.headers["Location"]
    path = account.removeprefix(BASE)
    for worker in (client, other):  # both workers now hold the old key
        assert acme_post(worker, path + "/orders", None, old, kid=account).status_code == 200

    inner = signed_body(
        {"alg": "ES256", "jwk": new.public_key().to_partial_json(), "url": BASE + "key-change"},
        json.dumps({"account": account, "oldKey": old.public_key().to_partial_json()}).encode(),
        lambda m: jose.ES256.sign(new.key, m),
    )
    changed = acme_post(client, "key-change", json.loads(inner), old, kid=account)
    assert changed.status_code == 200, changed.json

    refused = acme_post(other, path + "/orders", None, old, kid=account)  # the stale copy's key
    assert refused.status_code == 400 and "does not verify" in refused.json["detail"]
    assert acme_post(other, path + "/orders", None, new, kid=account).status_code == 200

    gone = acme_post(client, path, {"status": "deactivated"}, new, kid=account)
    assert gone.status_code == 200 and gone.json["status"] == "deactivated"
    late = acme_post(other, path + "/orders", None, new, kid=account)
    assert late.status_code == 403 and late.json["type"] == "urn:ietf:params:acme:error:unauthorized"
