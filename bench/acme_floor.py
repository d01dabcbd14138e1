"""The floor of the stack for one complete ACME order: what gunicorn, Flask and SQLAlchemy Core
cost when they do only what every order must do, with none of the service around it.
bench/acme.py serves it through the same gunicorn configuration and drives it with the same
certbot-acme client code, beside the service and pebble, so that the service's CPU per order
can be read against the best this stack reaches on this machine.

Per request, as RFC 8555 asks and the service does it: the flattened JWS parsed and its
signature verified with the account key (``ca_service.acme.jws``; the key from the worker's copy
of the account); its ``url`` checked; its nonce checked by the service's own HMAC nonces
(``ca_service.enrollment.nonces``, no I/O) and redeemed once by a primary key, in the request's
own write transaction (SQLite WAL with BEGIN IMMEDIATE on the service's engines); a fresh nonce
in every answer. newOrder stores the order; the authorization
is read back; finalize checks the CSR with the service's policy, signs the certificate with the
active issuing CA and stores it; the certificate is read back as PEM with its chain. Left out,
as the service's cost above the floor: external account binding, account status and key-change
checks, audit rows, the device row, the issuer-still-signs check, renewal lineage, rate limits,
ACME problem documents, metrics and logs. Its tables are its own (``floor_*``).

    gunicorn -c deploy/gunicorn.conf.py 'bench.acme_floor:floor_app()'   (env as the service)
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask import Flask, Response, request
from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
    update,
)

from ca_service import build_services
from ca_service.acme import jws
from ca_service.acme.views import PEM_CHAIN
from ca_service.authority import pem, random_serial
from ca_service.config import load_settings
from ca_service.domain import MacAddress, serial_text
from ca_service.policy import CsrRules, check_csr, device_mac
from ca_service.store import Database

METADATA = MetaData()
NONCES = Table("floor_nonces", METADATA, Column("value", String(64), primary_key=True))
ACCOUNTS = Table("floor_accounts", METADATA, Column("id", Integer, primary_key=True), Column("jwk", Text))
ORDERS = Table(
    "floor_orders",
    METADATA,
    Column("token", String(32), primary_key=True),
    Column("account_id", Integer),
    Column("mac", String(12)),
    Column("serial", String(42)),
)
CERTIFICATES = Table(
    "floor_certificates",
    METADATA,
    Column("serial", String(42), primary_key=True),
    Column("account_id", Integer),
    Column("der", LargeBinary),
)


def create_tables(db: Database) -> None:
    """The floor's tables in the service's database (before gunicorn starts its workers)."""
    METADATA.create_all(db.write_engine)


def floor_app() -> Flask:
    settings = load_settings()
    services = build_services(settings)
    db, profile, rules = services.db, settings.profile("device"), CsrRules()
    base = str(settings.public_url).rstrip("/") + "/acme"
    nonces = services.acme.nonces  # the service's own HMAC nonces: minted and checked without I/O
    add_nonce, add_order, add_certificate = insert(NONCES), insert(ORDERS), insert(CERTIFICATES)
    add_account = insert(ACCOUNTS).returning(ACCOUNTS.c.id)
    jwk_of = select(ACCOUNTS.c.jwk).where(ACCOUNTS.c.id == bindparam("id"))
    order_of = select(ORDERS).where(ORDERS.c.token == bindparam("token"))
    certificate_of = select(CERTIFICATES).where(CERTIFICATES.c.serial == bindparam("serial"))
    complete = (
        update(ORDERS)
        .where(ORDERS.c.token == bindparam("order"), ORDERS.c.serial.is_(None))
        .values(serial=bindparam("done"))
    )
    keys: dict[int, Any] = {}  # account id -> JWK: the worker's copy of each account key
    app = Flask("acme_floor")
    app.extensions["ca_service"] = services  # the configuration's worker hooks, as for the service

    def answer(body: object, status: int = 200, location: str | None = None) -> Response:
        response = Response(json.dumps(body), status, mimetype="application/json")
        if location:
            response.headers["Location"] = location
        return response

    def refuse(status: int, kind: str) -> Response:
        body = {"type": f"urn:ietf:params:acme:error:{kind}", "status": status}
        return Response(json.dumps(body), status, mimetype="application/problem+json")

    def account_key(account_id: int) -> Any:
        if account_id not in keys:
            with db.engine.connect() as conn:
                jwk = conn.scalar(jwk_of, {"id": account_id})
            keys[account_id] = jws.load_jwk(json.loads(jwk))
        return keys[account_id]

    def verified() -> tuple[jws.Signed, int | None]:
        """The request's JWS, verified; its account id (None: signed with its own ``jwk``)."""
        signed = jws.parse(request.get_data())
        jws.check_outer_header(signed)
        url = base + request.path.removeprefix("/acme")
        if signed.header["url"] != url or nonces.check(signed.header["nonce"]) is None:
            raise ValueError("url or nonce")
        kid = signed.header.get("kid")
        account_id = int(kid.rsplit("/", 1)[1]) if kid else None
        key = account_key(account_id) if account_id is not None else jws.load_jwk(signed.header["jwk"])
        jws.verify(signed, key)
        return signed, account_id

    @app.after_request
    def replay_nonce(response: Response) -> Response:
        response.headers["Replay-Nonce"] = nonces.mint()
        return response

    @app.errorhandler(Exception)
    def failed(exc: Exception) -> Response:
        return refuse(400, "malformed")

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.get("/acme/directory")
    def directory() -> Response:
        return answer({name: f"{base}/{path}" for name, path in DIRECTORY.items()})

    @app.route("/acme/new-nonce", methods=["HEAD", "GET"])
    def new_nonce() -> Response:
        return Response(status=200)

    @app.post("/acme/new-account")
    def new_account() -> Response:
        signed, _ = verified()
        with db.write_engine.begin() as conn:
            conn.execute(add_nonce, {"value": signed.header["nonce"]})
            account_id = conn.execute(add_account, {"jwk": json.dumps(signed.header["jwk"])}).scalar_one()
        return answer({"status": "valid"}, 201, f"{base}/acct/{account_id}")

    @app.post("/acme/new-order")
    def new_order() -> Response:
        signed, account_id = verified()
        identifiers = json.loads(signed.payload)["identifiers"]
        mac = device_mac(identifiers[0]["value"], settings.oui_allowlist, label="identifier")
        token = secrets.token_urlsafe(16)
        with db.write_engine.begin() as conn:
            conn.execute(add_nonce, {"value": signed.header["nonce"]})
            conn.execute(add_order, {"token": token, "account_id": account_id, "mac": mac.value})
        return answer(order_body(token, identifiers, "ready", None), 201, f"{base}/order/{token}")

    def order_body(token: str, identifiers: list[Any], status: str, serial: str | None) -> dict[str, Any]:
        body = {
            "status": status,
            "identifiers": identifiers,
            "authorizations": [f"{base}/authz/{token}"],
            "finalize": f"{base}/order/{token}/finalize",
        }
        if serial:
            body["certificate"] = f"{base}/cert/{serial}"
        return body

    def owned(statement: Any, params: dict[str, str]) -> Any:
        """A POST-as-GET: the nonce redeemed and the row read in one write transaction; the row
        only when the signing account owns it."""
        signed, account_id = verified()
        with db.write_engine.begin() as conn:
            conn.execute(add_nonce, {"value": signed.header["nonce"]})
            row = conn.execute(statement, params).one()
        return row if row.account_id == account_id else None

    @app.post("/acme/authz/<token>")
    def authorization(token: str) -> Response:
        order = owned(order_of, {"token": token})
        if order is None:
            return refuse(404, "malformed")
        challenge = {"type": "http-01", "url": f"{base}/chall/{token}", "status": "valid", "token": token}
        body = {
            "identifier": {"type": "dns", "value": order.mac},
            "status": "valid",
            "challenges": [challenge],
        }
        return answer(body)

    @app.post("/acme/order/<token>/finalize")
    def finalize(token: str) -> Response:
        signed, account_id = verified()
        with db.engine.connect() as conn:
            order = conn.execute(order_of, {"token": token}).one()
        if order.account_id != account_id or order.serial is not None:
            return refuse(403, "orderNotReady")
        csr = base64.urlsafe_b64decode(json.loads(signed.payload)["csr"] + "==")
        facts = check_csr(csr, rules, MacAddress(order.mac))
        _, issuer = services.signers.active()
        cert = issuer.sign_device_certificate(facts.public_key, facts.mac, profile, random_serial())
        serial = serial_text(cert.serial_number)
        der = cert.public_bytes(serialization.Encoding.DER)
        with db.write_engine.begin() as conn:
            conn.execute(add_nonce, {"value": signed.header["nonce"]})
            conn.execute(add_certificate, {"serial": serial, "account_id": account_id, "der": der})
            done = conn.execute(complete, {"order": token, "done": serial})
            if done.rowcount != 1:
                raise ValueError("finalized meanwhile")
        identifiers = [{"type": "dns", "value": order.mac}]
        return answer(order_body(token, identifiers, "valid", serial), 200, f"{base}/order/{token}")

    @app.post("/acme/cert/<serial>")
    def certificate(serial: str) -> Response:
        row = owned(certificate_of, {"serial": serial})
        if row is None:
            return refuse(404, "malformed")
        issuer_id, _ = services.signers.active()
        chain = services.enrollment.directory.get().chain_pem(issuer_id)
        return Response(pem(x509.load_der_x509_certificate(row.der)) + chain, mimetype=PEM_CHAIN)

    return app


DIRECTORY = {"newNonce": "new-nonce", "newAccount": "new-account", "newOrder": "new-order"}
