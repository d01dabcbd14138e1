"""ACME (RFC 8555 + RFC 9773) against the service under gunicorn (2 workers), with certbot's
acme library as the client, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import josepy as jose
import pytest
import requests
from acme import errors, messages
from acme import jws as acme_jws
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import func, select

from ca_service import Services
from ca_service.renewal.certid import cert_id_of
from ca_service.store.models import AcmeOrderRow, AuditRow, CertificateRow
from tests.acme_helpers import ReplacingOrder, acme_client, new_key, nonce, raw_post, register
from tests.helpers import LiveServer, make_csr, openssl

pytestmark = pytest.mark.slow  # against gunicorn


def verify_chain(base_url: str, fullchain: str, tmp: Path) -> None:
    (tmp / "root.pem").write_bytes(requests.get(base_url + "/ca/root.pem", timeout=10).content)
    (tmp / "full.pem").write_text(fullchain)
    leaf = fullchain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    (tmp / "leaf.pem").write_text(leaf)
    out = openssl(
        "verify", "-CAfile", str(tmp / "root.pem"), "-untrusted", str(tmp / "full.pem"), str(tmp / "leaf.pem")
    )
    assert out.stdout.strip().endswith(b"OK")


def count(services: Services, model: type) -> int:
    with services.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_certbot_acme_enroll_renew_revoke(live: LiveServer, services: Services, tmp_path: Path) -> None:
    acme = acme_client(live.url)
    assert acme.external_account_required()
    assert "renewalInfo" in acme.directory.to_partial_json()
    regr = register(services, acme)
    assert regr.body.status == "valid" and regr.uri.startswith(live.url + "/acme/acct/")

    _, csr = make_csr(tmp_path, "7c:2f:80:c6:e5:c2", name="first")
    order = acme.new_order(csr.read_bytes())
    assert [i.value for i in order.body.identifiers] == ["7c:2f:80:c6:e5:c2"]
    assert all(a.body.status == messages.STATUS_VALID for a in order.authorizations)
    (challenge,) = order.authorizations[0].body.challenges  # section 7.1.4: the validated one
    assert challenge.status == messages.STATUS_VALID and challenge.validated is not None
    fetched = acme._post_as_get(challenge.uri).json()
    assert fetched["status"] == "valid" and fetched["url"] == challenge.uri
    done = acme.poll_and_finalize(order, datetime.datetime.now() + datetime.timedelta(seconds=30))
    verify_chain(live.url, done.fullchain_pem, tmp_path)
    cert = x509.load_pem_x509_certificate(done.fullchain_pem.encode())
    assert cert.subject.rfc4514_string() == "CN=7C2F80C6E5C2"

    # renewal information: a window inside the lifetime, with Retry-After
    when, _ = acme.renewal_time(done.fullchain_pem.encode())
    assert (
        when is not None
        and cert.not_valid_before_utc < when.astimezone(datetime.UTC) < cert.not_valid_after_utc
    )
    info = requests.get(f"{live.url}/acme/renewal-info/{cert_id_of(cert)}", timeout=10)
    assert info.status_code == 200 and int(info.headers["Retry-After"]) > 0

    # renewal with 'replaces': lineage recorded on both certificates
    _, csr2 = make_csr(tmp_path, "7C2F80C6E5C2", name="second")
    new_order = ReplacingOrder(identifiers=order.body.identifiers, replaces=cert_id_of(cert))
    response = acme._post(acme.directory["newOrder"], new_order)
    assert response.status_code == 201 and response.json()["replaces"] == cert_id_of(cert)
    body = messages.Order.from_json(response.json())
    order2 = messages.OrderResource(body=body, uri=response.headers["Location"], csr_pem=csr2.read_bytes())
    done2 = acme.finalize_order(order2, datetime.datetime.now() + datetime.timedelta(seconds=30))
    cert2 = x509.load_pem_x509_certificate(done2.fullchain_pem.encode())
    serial1, serial2 = (format(c.serial_number, "X") for c in (cert, cert2))
    serial1, serial2 = (s if len(s) % 2 == 0 else "0" + s for s in (serial1, serial2))
    with services.db.read() as session:
        old = session.scalar(select(CertificateRow).where(CertificateRow.serial == serial1))
        new = session.scalar(select(CertificateRow).where(CertificateRow.serial == serial2))
        assert old.replaced_by == serial2 and new.replaces == serial1
    # the same certificate cannot be replaced twice
    twice = {"identifiers": [{"type": "dns", "value": "7C2F80C6E5C2"}], "replaces": cert_id_of(cert)}
    refused = raw_post(acme.directory["newOrder"], twice, acme.net.key, nonce(live.url), kid=regr.uri)
    assert refused.status_code == 409
    assert refused.json()["type"] == "urn:ietf:params:acme:error:alreadyReplaced"

    # orders list of the account
    account_body = acme._post(regr.uri, messages.UpdateRegistration()).json()
    orders = acme._post_as_get(account_body["orders"]).json()["orders"]
    assert len(orders) == 2

    # revocation by the account; renewal info then says "now"
    acme.revoke(cert2, 4)
    with services.db.read() as session:
        row = session.scalar(select(CertificateRow).where(CertificateRow.serial == serial2))
        assert row.status == "revoked" and row.revocation_reason == "superseded"
        assert (
            session.scalar(
                select(func.count()).select_from(AuditRow).where(AuditRow.action == "certificate.revoke")
            )
            == 1
        )
    urgent = requests.get(f"{live.url}/acme/renewal-info/{cert_id_of(cert2)}", timeout=10).json()
    start = datetime.datetime.fromisoformat(urgent["suggestedWindow"]["start"].replace("Z", "+00:00"))
    assert start <= datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
    again = acme_post_error(
        acme, messages.Revocation(certificate=cert2, reason=4), acme.directory["revokeCert"]
    )
    assert again.typ == "urn:ietf:params:acme:error:alreadyRevoked"
    # revocation signed with the certificate's own key (no account)
    key1 = (tmp_path / "first.key").read_bytes()

    by_key = acme_client(live.url, jose.JWKEC(key=load_pem_private_key(key1, None)))
    by_key.revoke(cert, 1)
    with services.db.read() as session:
        assert (
            session.scalar(select(CertificateRow.status).where(CertificateRow.serial == serial1)) == "revoked"
        )

    # account deactivation: later requests are refused
    acme.deactivate_registration(regr)
    _, csr3 = make_csr(tmp_path, "7C2F80C6E5C3", name="third")
    with pytest.raises(messages.Error) as err:
        acme.new_order(csr3.read_bytes())
    assert err.value.typ == "urn:ietf:params:acme:error:unauthorized"
    assert count(services, AcmeOrderRow) == 2


def acme_post_error(acme, obj, url=None) -> messages.Error:
    with pytest.raises(messages.Error) as err:
        acme._post(url or acme.directory["newOrder"], obj)
    return err.value


def test_key_change_and_existing_account(live: LiveServer, services: Services) -> None:
    acme = acme_client(live.url)
    regr = register(services, acme)
    # newAccount with the same key returns the same account without a second EAB
    same_key = acme_client(live.url, acme.net.key)
    with pytest.raises(errors.ConflictError) as existing:  # the acme library's way to say "200 + Location"
        same_key.new_account(messages.NewRegistration.from_data(only_return_existing=True))
    assert existing.value.location == regr.uri
    new = new_key()
    inner_payload = {"account": regr.uri, "oldKey": acme.net.key.public_key().to_partial_json()}

    inner = acme_jws.JWS.sign(
        json.dumps(inner_payload).encode(), new, jose.ES256, None, acme.directory["keyChange"], None
    )

    class Raw(jose.JSONDeSerializable):
        def to_partial_json(self):
            return inner.to_partial_json()

        @classmethod
        def from_json(cls, jobj):
            raise NotImplementedError

    response = acme._post(acme.directory["keyChange"], Raw())
    assert response.status_code == 200
    # rolling another account onto a key that is taken: 409 with the key's account in Location
    taken = acme_client(live.url)
    taken_regr = register(services, taken, name="taken")
    inner_payload = {"account": taken_regr.uri, "oldKey": taken.net.key.public_key().to_partial_json()}
    inner = acme_jws.JWS.sign(
        json.dumps(inner_payload).encode(), new, jose.ES256, None, acme.directory["keyChange"], None
    )
    with pytest.raises(errors.ConflictError) as conflict:
        taken._post(acme.directory["keyChange"], Raw())
    assert conflict.value.location == regr.uri
    moved = acme_client(live.url, new)
    moved.net.account = regr
    assert moved._post_as_get(regr.uri + "/orders").status_code == 200
    with pytest.raises(messages.Error) as err:
        acme._post_as_get(regr.uri + "/orders")
    assert err.value.typ == "urn:ietf:params:acme:error:malformed"
