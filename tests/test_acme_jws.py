"""The flattened-JWS check of ACME requests (ca_service.acme.jws) against JWS made by josepy,
an independent implementation (RFC 7515; ES256/ES384 signatures as R || S, RFC 7518 3.4)."""

from __future__ import annotations

import json

import josepy as jose
import pytest
from acme import jws as acme_jws
from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ca_service.acme import jws
from ca_service.errors import CAError, Kind

KEYS = {
    "ES256": (lambda: jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1())), jose.ES256),
    "ES384": (lambda: jose.JWKEC(key=ec.generate_private_key(ec.SECP384R1())), jose.ES384),
    "RS256": (lambda: jose.JWKRSA(key=rsa.generate_private_key(65537, 2048)), jose.RS256),
}


def signed_by(key: jose.JWK, alg: jose.JWASignature, payload: bytes = b'{"a":1}') -> bytes:
    """A flattened JWS as certbot's acme library signs it (on josepy)."""
    made = acme_jws.JWS.sign(payload, key, alg, nonce=b"n0nce", url="https://ca.example/acme/new-order")
    return made.json_dumps().encode()


@pytest.mark.parametrize("alg", sorted(KEYS))
def test_josepy_signatures_verify(alg: str) -> None:
    make, algorithm = KEYS[alg]
    key = make()
    signed = jws.parse(signed_by(key, algorithm))
    assert signed.alg == alg and signed.payload == b'{"a":1}'
    assert signed.header["url"] == "https://ca.example/acme/new-order"
    jws.verify(signed, jws.load_jwk(signed.header["jwk"]))


@pytest.mark.parametrize("alg", sorted(KEYS))
def test_tampered_and_foreign_signatures_are_refused(alg: str) -> None:
    make, algorithm = KEYS[alg]
    key, other = make(), make()
    body = json.loads(signed_by(key, algorithm))
    public = jws.load_jwk(key.public_key().to_partial_json())
    with pytest.raises(CAError) as foreign:
        jws.verify(jws.parse(json.dumps(body).encode()), jws.load_jwk(other.public_key().to_partial_json()))
    assert foreign.value.kind is Kind.MALFORMED
    raw = jose.b64.b64decode(body["signature"])
    for bad in (bytes([raw[0] ^ 1]) + raw[1:], raw[:-1], raw + b"\0", b""):
        body["signature"] = jose.b64.b64encode(bad).decode()
        with pytest.raises(CAError) as refused:
            jws.verify(jws.parse(json.dumps(body).encode()), public)
        assert refused.value.kind is Kind.MALFORMED


def test_algorithm_must_fit_the_key() -> None:
    """An ES384 header on a P-256 signature, or RS256 on an EC key, does not verify."""
    p256 = KEYS["ES256"][0]()
    rsa_key = KEYS["RS256"][0]()
    es256 = json.loads(signed_by(p256, jose.ES256))
    header = json.loads(jose.b64.b64decode(es256["protected"]))
    for alg, key in (("ES384", p256), ("RS256", p256), ("ES256", rsa_key)):
        header["alg"] = alg
        es256["protected"] = jose.b64.b64encode(json.dumps(header).encode()).decode()
        public = jws.load_jwk(key.public_key().to_partial_json())
        with pytest.raises(CAError):
            jws.verify(jws.parse(json.dumps(es256).encode()), public)


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_external_account_binding_mac(alg: str) -> None:
    secret = b"s" * 32
    account = KEYS["ES256"][0]().public_key()
    directory = messages.Directory({"newAccount": "https://ca.example/acme/new-account"})
    binding = messages.ExternalAccountBinding.from_data(
        account, "eab-1", jose.b64.b64encode(secret).decode(), directory, hmac_alg=alg
    )
    assert isinstance(binding, dict)
    jws.verify_mac(jws.parse(binding), secret)
    with pytest.raises(CAError) as wrong:
        jws.verify_mac(jws.parse(binding), b"t" * 32)
    assert wrong.value.kind is Kind.UNAUTHORIZED


def test_account_keys_are_loaded_once_and_checked() -> None:
    key = KEYS["ES256"][0]().public_key().to_partial_json()
    assert jws.load_jwk(dict(key)) is jws.load_jwk(dict(key))
    small = jose.JWKRSA(key=rsa.generate_private_key(65537, 1024)).public_key().to_partial_json()
    with pytest.raises(CAError) as refused:
        jws.load_jwk(small)
    assert refused.value.kind is Kind.BAD_PUBLIC_KEY
    with pytest.raises(CAError):
        jws.load_jwk({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"})
