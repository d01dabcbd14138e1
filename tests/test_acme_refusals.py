"""ACME refusals: each answers its RFC 8555 section 6.7 type and stores nothing."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import josepy as jose
import pytest
import requests
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select

from ca_service import Services
from ca_service.renewal.certid import cert_id_of
from ca_service.store.models import AcmeAccountRow, AcmeOrderRow, CertificateRow, EabKeyRow
from tests.acme_helpers import acme_client, new_key, nonce, raw_post, register
from tests.helpers import LiveServer, make_csr

ERR = "urn:ietf:params:acme:error:"


def stored(services: Services) -> tuple[int, ...]:
    with services.db.read() as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(m)) or 0)
            for m in (AcmeAccountRow, EabKeyRow, AcmeOrderRow, CertificateRow)
        )


def refused(response: requests.Response, acme_type: str, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == ERR + acme_type, body
    assert body["detail"]
    assert response.headers.get("Replay-Nonce")  # clients retry badNonce with it
    return body


@pytest.mark.slow  # against gunicorn
def test_jws_refusals(live: LiveServer, services: Services) -> None:
    acme = acme_client(live.url)
    regr = register(services, acme)
    key, kid = acme.net.key, regr.uri
    new_order = acme.directory["newOrder"]
    order = {"identifiers": [{"type": "permanent-identifier", "value": "7C2F80C6E5C2"}]}
    before = stored(services)

    refused(raw_post(new_order, order, key, "made-up-nonce", kid=kid), "badNonce")
    used = nonce(live.url)
    assert raw_post(new_order, order, key, used, kid=kid).status_code == 201
    before = stored(services)
    refused(raw_post(new_order, order, key, used, kid=kid), "badNonce")  # reused (on any worker)
    refused(
        raw_post(new_order, order, key, nonce(live.url), kid=kid, url_header=live.url + "/acme/other"),
        "unauthorized",
        403,
    )
    refused(raw_post(new_order, order, key, nonce(live.url), kid=kid, tamper=True), "malformed")
    refused(
        raw_post(new_order, order, key, nonce(live.url), kid=live.url + "/acme/acct/999999"),
        "accountDoesNotExist",
    )
    body = refused(
        raw_post(new_order, order, key, nonce(live.url), kid=kid, alg="none"), "badSignatureAlgorithm"
    )
    assert "ES256" in body["algorithms"]
    refused(raw_post(new_order, order, key, nonce(live.url), kid=kid, alg="HS256"), "badSignatureAlgorithm")
    refused(
        raw_post(
            new_order,
            order,
            key,
            nonce(live.url),
            kid=kid,
            extra_header={"jwk": key.public_key().to_partial_json()},
        ),
        "malformed",
    )
    # another key signing with this account's kid
    refused(raw_post(new_order, order, new_key(), nonce(live.url), kid=kid), "malformed")
    assert stored(services) == before


@pytest.mark.slow  # against gunicorn
def test_new_account_refusals(live: LiveServer, services: Services) -> None:
    acme = acme_client(live.url)
    url = acme.directory["newAccount"]
    key = new_key()
    kid, hmac_key = services.acme.create_eab("platform", ("7C2F80",))
    before = stored(services)
    refused(raw_post(url, {"termsOfServiceAgreed": True}, key, nonce(live.url)), "externalAccountRequired")
    wrong = messages.ExternalAccountBinding.from_data(
        account_public_key=key.public_key(),
        kid=kid,
        hmac_key=jose.b64.b64encode(b"x" * 32).decode(),
        directory=acme.directory,
    )
    refused(raw_post(url, {"externalAccountBinding": wrong}, key, nonce(live.url)), "unauthorized", 403)
    other_key = messages.ExternalAccountBinding.from_data(
        account_public_key=new_key().public_key(), kid=kid, hmac_key=hmac_key, directory=acme.directory
    )
    refused(raw_post(url, {"externalAccountBinding": other_key}, key, nonce(live.url)), "unauthorized", 403)
    unknown = messages.ExternalAccountBinding.from_data(
        account_public_key=key.public_key(), kid="eab-nope", hmac_key=hmac_key, directory=acme.directory
    )
    refused(raw_post(url, {"externalAccountBinding": unknown}, key, nonce(live.url)), "unauthorized", 403)
    assert stored(services) == before
    # the right binding works once; a second account cannot reuse the key
    good = messages.ExternalAccountBinding.from_data(
        account_public_key=key.public_key(), kid=kid, hmac_key=hmac_key, directory=acme.directory
    )
    assert raw_post(url, {"externalAccountBinding": good}, key, nonce(live.url)).status_code == 201
    key2 = new_key()
    reuse = messages.ExternalAccountBinding.from_data(
        account_public_key=key2.public_key(), kid=kid, hmac_key=hmac_key, directory=acme.directory
    )
    after = stored(services)
    refused(raw_post(url, {"externalAccountBinding": reuse}, key2, nonce(live.url)), "unauthorized", 403)
    assert stored(services) == after


@pytest.mark.slow  # against gunicorn
def test_order_refusals(live: LiveServer, services: Services, tmp_path: Path) -> None:
    acme = acme_client(live.url)
    regr = register(services, acme, scope="7C2F80")
    other = acme_client(live.url)
    other_regr = register(services, other, scope="7C2F80", name="other")
    # a certificate of the other account, for 'replaces'
    _, csr = make_csr(tmp_path, "7C2F80000001", name="other")
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
    theirs = other.poll_and_finalize(other.new_order(csr.read_bytes()), deadline)
    their_cert = x509.load_pem_x509_certificate(theirs.fullchain_pem.encode())
    assert other_regr.uri != regr.uri
    new_order = acme.directory["newOrder"]
    before = stored(services)

    def order(*values: str, **extra: Any) -> requests.Response:
        idents = [{"type": "dns", "value": v} for v in values]
        return raw_post(
            new_order, {"identifiers": idents, **extra}, acme.net.key, nonce(live.url), kid=regr.uri
        )

    body = refused(order("00:1A:2B:00:00:01"), "rejectedIdentifier")
    assert body["subproblems"][0]["type"] == ERR + "rejectedIdentifier"
    assert body["subproblems"][0]["identifier"] == {"type": "dns", "value": "00:1A:2B:00:00:01"}
    refused(order("example.com"), "rejectedIdentifier")
    ip = raw_post(
        new_order,
        {"identifiers": [{"type": "ip", "value": "10.0.0.1"}]},
        acme.net.key,
        nonce(live.url),
        kid=regr.uri,
    )
    refused(ip, "unsupportedIdentifier")
    refused(order("7C2F80000002", profile="nope"), "invalidProfile")
    refused(order("7C2F80000001", replaces=cert_id_of(their_cert)), "unauthorized", 403)
    refused(order("7C2F80000001", replaces="not-a-cert-id"), "malformed")
    assert stored(services) == before

    # finalize with a CSR whose CN is another MAC: badCSR, no certificate, order still ready
    created = order("7C2F80C6E5C2")
    assert created.status_code == 201
    _, wrong_csr = make_csr(tmp_path, "7C2F80C6E5C3", name="wrong")
    der = x509.load_pem_x509_csr(wrong_csr.read_bytes()).public_bytes(Encoding.DER)
    before = stored(services)
    finalize = created.json()["finalize"]
    body = refused(
        raw_post(
            finalize, {"csr": jose.b64.b64encode(der).decode()}, acme.net.key, nonce(live.url), kid=regr.uri
        ),
        "badCSR",
    )
    assert "7C2F80C6E5C3" in body["detail"] and "7C2F80C6E5C2" in body["detail"]
    assert stored(services) == before
    state = raw_post(created.headers["Location"], None, acme.net.key, nonce(live.url), kid=regr.uri).json()
    assert state["status"] == "ready"
    # another account cannot read this order
    peek = raw_post(created.headers["Location"], None, other.net.key, nonce(live.url), kid=other_regr.uri)
    refused(peek, "malformed", 404)


HEADER = jose.b64.b64encode(b'{"alg":"ES256"}').decode()
NESTED = jose.b64.b64encode(b"[" * 20000 + b"]" * 20000).decode()


@pytest.mark.parametrize(
    "body",
    [
        {"protected": HEADER, "payload": {}, "signature": ""},
        {"protected": HEADER, "payload": "", "signature": 5},
        {"protected": NESTED, "payload": "", "signature": "x"},
    ],
    ids=["payload-not-a-string", "signature-not-a-string", "nested-header"],
)
def test_malformed_jws_is_malformed_not_a_500(client: Any, services: Services, body: dict[str, Any]) -> None:
    """Found in review: josepy and json raise other errors than ValueError on such bodies."""
    import json

    response = client.post("/acme/new-account", data=json.dumps(body), content_type="application/jose+json")
    assert response.status_code == 400
    assert response.json["type"] == "urn:ietf:params:acme:error:malformed"
    with services.db.read() as session:
        assert session.scalar(select(func.count()).select_from(AcmeAccountRow)) == 0
