"""ACME nonces live in the database: single use across workers (two Services instances stand in
for two gunicorn workers or hosts), expiring, and the directory advertises what clients need."""

from __future__ import annotations

import dataclasses

from flask.testing import FlaskClient
from sqlalchemy import func, select

from ca_service import Services, build_services
from ca_service.store.models import AcmeNonceRow


def test_nonce_single_use_across_instances(services: Services) -> None:
    other = build_services(services.settings)  # another worker, own engine and pool
    try:
        nonce = services.acme.new_nonce()
        ok, fresh = other.acme.use_nonce(nonce)
        assert ok and fresh != nonce
        assert services.acme.use_nonce(nonce)[0] is False  # used on the other worker
        assert other.acme.use_nonce(nonce)[0] is False
        assert services.acme.use_nonce(fresh)[0] is True
        assert services.acme.use_nonce("")[0] is False
        assert services.acme.use_nonce("x" * 500)[0] is False
    finally:
        other.db.dispose()


def nonce_rows(services: Services) -> int:
    with services.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(AcmeNonceRow)) or 0)


def test_nonce_expires(services: Services) -> None:
    expired = dataclasses.replace(services.settings, acme_nonce_seconds=-120)
    short = build_services(expired)
    try:
        nonce = services.acme.new_nonce()
        assert short.acme.use_nonce(nonce)[0] is False  # older than the lifetime where it is checked
        assert nonce_rows(services) == 0  # refused before any write
    finally:
        short.db.dispose()


def test_forged_and_garbage_nonces_write_nothing(services: Services, client: FlaskClient) -> None:
    good = services.acme.new_nonce()
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    for bad in ("", "x" * 500, "x" * 43, tampered, None, 7):
        assert services.acme.use_nonce(bad)[0] is False  # type: ignore[arg-type]
    for _ in range(5):
        assert client.head("/acme/new-nonce").headers["Replay-Nonce"]
    garbage = client.post("/acme/new-order", data=b"garbage", content_type="application/jose+json")
    assert garbage.status_code == 400 and garbage.headers["Replay-Nonce"]
    assert nonce_rows(services) == 0
    assert services.acme.use_nonce(good)[0] is True and nonce_rows(services) == 1
    assert services.acme.use_nonce(good)[0] is False and nonce_rows(services) == 1


def test_directory_and_new_nonce(client: FlaskClient) -> None:
    directory = client.get("/acme/directory")
    assert directory.status_code == 200
    body = directory.json
    assert body["meta"]["externalAccountRequired"] is True
    assert "device" in body["meta"]["profiles"]
    for name in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange", "renewalInfo"):
        assert body[name].startswith("http://ca.test/acme/")  # the public URL, not the Host
    head = client.head("/acme/new-nonce")
    get = client.get("/acme/new-nonce")
    assert head.status_code == 200 and get.status_code == 204
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]
    assert head.headers["Cache-Control"] == "no-store"
    assert 'rel="index"' in head.headers["Link"]
    plain = client.post("/acme/new-order", data="{}", content_type="application/json")
    assert plain.status_code == 400 and plain.json["type"] == "urn:ietf:params:acme:error:malformed"
    assert plain.headers["Replay-Nonce"]
    bad_id = client.get("/acme/renewal-info/not-a-cert-id")
    assert bad_id.status_code == 400 and bad_id.json["type"] == "urn:ietf:params:acme:error:malformed"
    unknown = client.get("/acme/renewal-info/AAAA.AQ")
    assert unknown.status_code == 404
