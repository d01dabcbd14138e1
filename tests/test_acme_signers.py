"""How a worker authenticates ACME requests (RFC 8555 sections 6.2-6.5): it verifies with its own
copy of the account key (no database read per request), and the account is read again in the
transaction that redeems the nonce, so a key change or a deactivation made through another
worker or host holds at once (two apps on one database stand in for two workers). newOrder and
finalize redeem their nonce in their own write transaction, and a refused request still uses
its nonce up."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import josepy as jose
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ca_service import Services, create_app
from ca_service.store.models import AcmeOrderRow, CertificateRow
from tests.acme_helpers import acme_post, eab_binding, signed_body
from tests.helpers import make_csr

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


def count(services: Services, model: type) -> int:
    with services.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def der_csr(tmp: Path, cn: str) -> str:
    _, pem = make_csr(tmp, cn, name=cn)
    der = x509.load_pem_x509_csr(pem.read_bytes()).public_bytes(serialization.Encoding.DER)
    return jose.b64.b64encode(der).decode()


def test_new_order_and_finalize_spend_their_nonce_in_their_own_transaction(
    app: Flask, client: FlaskClient, services: Services, tmp_path: Path
) -> None:
    db = app.extensions["ca_service"].db
    writes: list[int] = []
    real: Callable[[], AbstractContextManager[Any]] = db.write

    def counted() -> AbstractContextManager[Any]:
        writes.append(1)
        return real()

    db.write = counted
    key = new_key()
    made = acme_post(client, "new-account", {"externalAccountBinding": eab_binding(services, key)}, key)
    account = made.headers["Location"]
    order = {"identifiers": [{"type": "permanent-identifier", "value": "7C2F80C6E5C2"}]}
    nonce = client.head("/acme/new-nonce").headers["Replay-Nonce"]
    writes.clear()
    created = acme_post(client, "new-order", order, key, nonce=nonce, kid=account)
    assert created.status_code == 201 and len(writes) == 1  # the order and the nonce, together
    replay = acme_post(client, "new-order", order, key, nonce=nonce, kid=account)
    assert replay.json["type"] == "urn:ietf:params:acme:error:badNonce"
    assert count(services, AcmeOrderRow) == 1

    finalize = created.json["finalize"].removeprefix(BASE)
    nonce = client.head("/acme/new-nonce").headers["Replay-Nonce"]
    wrong = acme_post(
        client, finalize, {"csr": der_csr(tmp_path, "7C2F80C6E5C3")}, key, nonce=nonce, kid=account
    )
    assert wrong.json["type"] == "urn:ietf:params:acme:error:badCSR"
    again = acme_post(
        client, finalize, {"csr": der_csr(tmp_path, "7C2F80C6E5C3")}, key, nonce=nonce, kid=account
    )
    assert again.json["type"] == "urn:ietf:params:acme:error:badNonce"  # refused, yet used up

    nonce = client.head("/acme/new-nonce").headers["Replay-Nonce"]
    good = {"csr": der_csr(tmp_path, "7C2F80C6E5C2")}
    writes.clear()
    done = acme_post(client, finalize, good, key, nonce=nonce, kid=account)
    assert done.status_code == 200 and done.json["status"] == "valid"
    assert len(writes) == 1  # certificate, order, audit and nonce in the issuing transaction
    replay = acme_post(client, finalize, good, key, nonce=nonce, kid=account)
    assert replay.json["type"] == "urn:ietf:params:acme:error:badNonce"
    assert count(services, CertificateRow) == 1


def test_each_request_of_an_order_is_one_transaction_and_a_refusal_in_it_spends_the_nonce(
    app: Flask, client: FlaskClient, services: Services, tmp_path: Path
) -> None:
    """POST-as-GET reads run in the transaction that redeems their nonce; finalize reads its
    order, then issues in one write (and reads the CA snapshot's version every few seconds). A
    request refused inside that transaction (it rolled back) still uses its nonce up."""
    db = app.extensions["ca_service"].db
    transactions: list[str] = []
    for name in ("read", "write"):

        def counted(
            real: Callable[[], AbstractContextManager[Any]] = getattr(db, name), name: str = name
        ) -> Any:
            transactions.append(name)
            return real()

        setattr(db, name, counted)
    key = new_key()
    made = acme_post(client, "new-account", {"externalAccountBinding": eab_binding(services, key)}, key)
    account = made.headers["Location"]
    step_orders = acme_post(client, account.removeprefix(BASE) + "/orders", None, key, kid=account)
    assert step_orders.status_code == 200  # this worker now holds the account's key

    def step(path: str, payload: dict[str, Any] | None) -> tuple[Any, list[str]]:
        transactions.clear()
        response = acme_post(client, path.removeprefix(BASE), payload, key, kid=account)
        assert response.status_code in (200, 201), response.json
        return response, list(transactions)

    created, in_new_order = step("new-order", {"identifiers": [{"type": "dns", "value": "7C2F80C6E5C2"}]})
    _, in_authz = step(created.json["authorizations"][0], None)
    _, in_order = step(created.headers["Location"], None)
    done, in_finalize = step(created.json["finalize"], {"csr": der_csr(tmp_path, "7C2F80C6E5C2")})
    _, in_cert = step(done.json["certificate"], None)
    assert (in_new_order, in_authz, in_order, in_cert) == (["write"],) * 4
    assert in_finalize[0] == "read" and in_finalize.count("write") == 1  # (+ the CA snapshot's refresh)

    nonce = client.head("/acme/new-nonce").headers["Replay-Nonce"]
    missing = acme_post(client, "authz/NoSuchOrderToken/0", None, key, nonce=nonce, kid=account)
    assert missing.status_code == 404
    again = acme_post(client, "authz/NoSuchOrderToken/0", None, key, nonce=nonce, kid=account)
    assert again.json["type"] == "urn:ietf:params:acme:error:badNonce"
