"""ACME nonces live in the database: single use across workers (two Services instances stand in
for two gunicorn workers or hosts), expiring, and the directory advertises what clients need."""

from __future__ import annotations

import dataclasses

from flask.testing import FlaskClient
from sqlalchemy import func, select

from ca_service import Services, build_services
from ca_service.errors import CAError, Kind
from ca_service.store.models import AcmeNonceRow


def use(services: Services, presented: object) -> bool:
    """Redeem ``presented`` as the web layer does for a request without an account (its own
    transaction): True when it was good, False on badNonce."""
    try:
        services.acme.redeem(presented, None)  # type: ignore[arg-type]
    except CAError as exc:
        assert exc.kind is Kind.BAD_NONCE
        return False
    return True


def test_nonce_single_use_across_instances(services: Services) -> None:
    other = build_services(services.settings)  # another worker, own engine and pool
    try:
        nonce, fresh = services.acme.new_nonce(), other.acme.new_nonce()
        assert fresh != nonce
        assert use(other, nonce)
        assert not use(services, nonce)  # used on the other worker
        assert not use(other, nonce)
        assert use(services, fresh)
        assert not use(services, "")
        assert not use(services, "x" * 500)
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
        assert not use(short, nonce)  # older than the lifetime where it is checked
        assert nonce_rows(services) == 0  # refused before any write
    finally:
        short.db.dispose()


def test_forged_and_garbage_nonces_write_nothing(services: Services, client: FlaskClient) -> None:
    good = services.acme.new_nonce()
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    for bad in ("", "x" * 500, "x" * 43, tampered, None, 7):
        assert not use(services, bad)
    for _ in range(5):
        assert client.head("/acme/new-nonce").headers["Replay-Nonce"]
    garbage = client.post("/acme/new-order", data=b"garbage", content_type="application/jose+json")
    assert garbage.status_code == 400 and garbage.headers["Replay-Nonce"]
    assert nonce_rows(services) == 0
    assert use(services, good) and nonce_rows(services) == 1
    assert not use(services, good) and nonce_rows(services) == 1


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
