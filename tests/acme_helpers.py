"""ACME test helpers: certbot's acme library as the client, and raw signed requests."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import josepy as jose
import requests
from acme import client, messages
from cryptography.hazmat.primitives.asymmetric import ec
from flask.testing import FlaskClient

from ca_service import Services


class ReplacingOrder(messages.NewOrder):
    """newOrder with RFC 9773 'replaces' (the acme library does not send it yet)."""

    replaces: str = jose.field("replaces", omitempty=True)


def new_key() -> jose.JWKEC:
    return jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))


def acme_client(base_url: str, key: jose.JWK | None = None, alg: Any = jose.ES256) -> client.ClientV2:
    net = client.ClientNetwork(key or new_key(), alg=alg, user_agent="ca-service-tests")
    directory = client.ClientV2.get_directory(base_url + "/acme/directory", net)
    return client.ClientV2(directory, net)


def register(
    services: Services, acme: client.ClientV2, scope: str = "7C2F80", name: str | None = None
) -> Any:
    kid, hmac_key = services.acme.create_eab(name or f"eab-{id(acme)}", (scope,))
    eab = messages.ExternalAccountBinding.from_data(
        account_public_key=acme.net.key.public_key(), kid=kid, hmac_key=hmac_key, directory=acme.directory
    )
    reg = messages.NewRegistration.from_data(terms_of_service_agreed=True, external_account_binding=eab)
    return acme.new_account(reg)


def nonce(base_url: str) -> str:
    return requests.head(base_url + "/acme/new-nonce", timeout=10).headers["Replay-Nonce"]


def raw_post(
    url: str,
    payload: dict[str, Any] | None,
    key: jose.JWK,
    nonce_value: str | None,
    kid: str | None = None,
    url_header: str | None = None,
    alg: str = "ES256",
    extra_header: dict[str, Any] | None = None,
    tamper: bool = False,
) -> requests.Response:
    """A hand-made flattened-JWS ACME POST, for refusals the acme library would never send."""
    header: dict[str, Any] = {"alg": alg, "url": url_header or url}
    if nonce_value is not None:
        header["nonce"] = nonce_value
    if kid:
        header["kid"] = kid
    else:
        header["jwk"] = key.public_key().to_partial_json()
    header.update(extra_header or {})
    protected = jose.b64.b64encode(json.dumps(header).encode()).decode()
    body = jose.b64.b64encode(b"" if payload is None else json.dumps(payload).encode()).decode()
    signing_input = f"{protected}.{body}".encode()
    if alg == "none":
        signature = b""
    elif alg.startswith("HS"):
        signature = getattr(jose, alg).sign(b"k" * 32, signing_input)
    else:
        signature = getattr(jose, alg).sign(key.key, signing_input)
    if tamper:
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    jws_body = {"protected": protected, "payload": body, "signature": jose.b64.b64encode(signature).decode()}
    return requests.post(
        url, data=json.dumps(jws_body), headers={"Content-Type": "application/jose+json"}, timeout=10
    )


# -- in-process requests through a Flask test client ---------------------------------------------
def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_body(header: dict[str, Any], payload: bytes, sign: Any) -> bytes:
    protected = jose.b64.b64encode(json.dumps(header).encode()).decode()
    body = jose.b64.b64encode(payload).decode()
    signature = sign(f"{protected}.{body}".encode())
    return json.dumps(
        {"protected": protected, "payload": body, "signature": jose.b64.b64encode(signature).decode()}
    ).encode()


def acme_post(
    client: FlaskClient,
    path: str,
    payload: dict[str, Any] | None,
    key: jose.JWKEC,
    nonce: str | None = None,
    signer: jose.JWKEC | None = None,
    **header: Any,
) -> Any:
    """A flattened-JWS ACME POST through the test client (``signer``: another key signs it;
    ``payload`` None: POST-as-GET)."""
    url = "http://ca.test/acme/" + path
    nonce = nonce or client.head("/acme/new-nonce").headers["Replay-Nonce"]
    head = {"alg": "ES256", "url": url, "nonce": nonce, **header}
    if "kid" not in head:
        head["jwk"] = key.public_key().to_partial_json()
    content = b"" if payload is None else json.dumps(payload).encode()
    body = signed_body(head, content, lambda m: jose.ES256.sign((signer or key).key, m))
    return client.post("/acme/" + path, data=body, content_type="application/jose+json")


def eab_binding(services: Services, key: jose.JWKEC) -> dict[str, Any]:
    """A fresh EAB key's externalAccountBinding for ``key`` (RFC 8555 section 7.3.4)."""
    kid, hmac_key = services.acme.create_eab(f"eab-{secrets.token_hex(4)}", ("7C2F80",))
    return json.loads(  # type: ignore[no-any-return]
        signed_body(
            {"alg": "HS256", "kid": kid, "url": "http://ca.test/acme/new-account"},
            json.dumps(key.public_key().to_partial_json()).encode(),
            lambda m: jose.HS256.sign(b64url(hmac_key), m),
        )
    )
