"""ACME test helpers: certbot's acme library as the client, and raw signed requests."""

from __future__ import annotations

import json
from typing import Any

import josepy as jose
import requests
from acme import client, messages
from acme import jws as acme_jws
from cryptography.hazmat.primitives.asymmetric import ec

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
    nonce_value: str,
    kid: str | None = None,
    url_header: str | None = None,
    alg: Any = jose.ES256,
) -> requests.Response:
    """A hand-made ACME POST (for refusals the acme library would never send)."""
    body = b"" if payload is None else json.dumps(payload).encode()
    signed = acme_jws.JWS.sign(body, key, alg, jose.b64.b64decode(nonce_value), url_header or url, kid)
    return requests.post(
        url,
        data=json.dumps(signed.to_partial_json()),
        headers={"Content-Type": "application/jose+json"},
        timeout=10,
    )
