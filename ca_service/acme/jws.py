"""Flattened JWS of ACME requests (RFC 8555 section 6.2; RFC 7515 section 7.2.2).

Accepted: ES256 (P-256), ES384 (P-384) and RS256 (RSA >= 2048 bits). ``none``, MAC algorithms
and everything else are refused with ``badSignatureAlgorithm``; josepy has no EdDSA, so neither
do we. The protected header must carry exactly one of ``jwk`` and ``kid``, a ``nonce`` and a
``url``; their checks against the request are the caller's (``acme.views``).

Keys are read with josepy (JWK, RFC 7517; thumbprints, RFC 7638). Signatures are checked here
with cryptography over the JWS signing input (RFC 7515 section 5.2): every ACME request is one,
and josepy's object model cost more than the check itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import josepy as jose
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ca_service.errors import CAError, Kind

# algorithm -> the curve its key must be on (None: an RSA key)
ALGORITHMS: dict[str, str | None] = {"ES256": "secp256r1", "ES384": "secp384r1", "RS256": None}
MAC_ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_HASHES = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "RS256": hashes.SHA256()}
MIN_RSA_BITS = 2048


def refuse_algorithm(alg: object) -> CAError:
    return CAError(
        Kind.BAD_JWS_ALGORITHM,
        f"JWS algorithm '{str(alg)[:16]}' is refused; use one of {', '.join(ALGORITHMS)}.",
        algorithms=list(ALGORITHMS),
    )


@dataclass(frozen=True)
class Signed:
    """A parsed (not yet verified) flattened JWS."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes  # ASCII(BASE64URL(protected) || '.' || BASE64URL(payload))
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header.get("alg"))


def parse(body: bytes | dict[str, Any]) -> Signed:
    """Parse a flattened JWS; anything else is ``malformed``."""
    try:
        obj = json.loads(body) if isinstance(body, bytes) else body
        if (
            not isinstance(obj, dict)
            or set(obj) != {"protected", "payload", "signature"}
            or not all(isinstance(v, str) for v in obj.values())
        ):
            raise ValueError("not a flattened JWS")
        header = json.loads(jose.b64.b64decode(obj["protected"]))
        if not isinstance(header, dict):
            raise ValueError("protected header is not an object")
        if header.get("alg") not in ALGORITHMS and header.get("alg") not in MAC_ALGORITHMS:
            raise refuse_algorithm(header.get("alg"))
        payload = jose.b64.b64decode(obj["payload"])
        signature = jose.b64.b64decode(obj["signature"])
        signing_input = f"{obj['protected']}.{obj['payload']}".encode("ascii")
    except CAError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise CAError(
            Kind.MALFORMED,
            "The request body must be a flattened JWS with 'protected', 'payload' and 'signature'.",
        ) from exc
    return Signed(header, payload, signing_input, signature)


def check_outer_header(signed: Signed) -> None:
    """Section 6.2: an asymmetric algorithm we accept and exactly one of ``jwk`` and ``kid``."""
    if signed.alg not in ALGORITHMS:
        raise refuse_algorithm(signed.alg)
    if ("jwk" in signed.header) == ("kid" in signed.header):
        raise CAError(Kind.MALFORMED, "The protected header must carry exactly one of 'jwk' and 'kid'.")
    for name in ("nonce", "url"):
        if not isinstance(signed.header.get(name), str):
            raise CAError(Kind.MALFORMED, f"The protected header must carry '{name}'.")


def raw_key(key: jose.JWK) -> Any:
    """The cryptography key inside a josepy JWK (josepy wraps it for comparisons)."""
    return getattr(key.key, "_wrapped", key.key)


def load_jwk(value: Any) -> jose.JWK:
    """A public account key: ECDSA P-256/P-384 or RSA of at least 2048 bits."""
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return _load_jwk(tuple(sorted(value.items())))
    return _read_jwk(value)


@lru_cache(maxsize=4096)
def _load_jwk(items: tuple[tuple[str, str], ...]) -> jose.JWK:
    """:func:`load_jwk` of a JWK as (member, value) pairs, kept per worker: an account's key
    verifies each of its requests."""
    return _read_jwk(dict(items))


def _read_jwk(value: Any) -> jose.JWK:
    try:
        key = cast(jose.JWK, jose.JWK.from_json(value)).public_key()
    except (jose.DeserializationError, ValueError, TypeError, KeyError) as exc:
        raise CAError(Kind.BAD_PUBLIC_KEY, "The JWK cannot be read.") from exc
    raw = raw_key(key)
    if isinstance(raw, ec.EllipticCurvePublicKey) and raw.curve.name in ("secp256r1", "secp384r1"):
        return key
    if isinstance(raw, rsa.RSAPublicKey) and raw.key_size >= MIN_RSA_BITS:
        return key
    raise CAError(
        Kind.BAD_PUBLIC_KEY, f"Account keys are ECDSA P-256/P-384 or RSA of at least {MIN_RSA_BITS} bits."
    )


def thumbprint(key: jose.JWK) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url."""
    return jose.b64.b64encode(key.thumbprint()).decode()


def verify(signed: Signed, key: jose.JWK) -> None:
    """Check the signature with ``key``; the algorithm must fit the key type and curve. ECDSA
    signatures are R || S, each as long as the curve's order (RFC 7518 section 3.4)."""
    curve = ALGORITHMS[signed.alg]
    raw = raw_key(key)
    digest = _HASHES[signed.alg]
    try:
        if curve is None and isinstance(raw, rsa.RSAPublicKey):
            raw.verify(signed.signature, signed.signing_input, padding.PKCS1v15(), digest)
            return
        if isinstance(raw, ec.EllipticCurvePublicKey) and raw.curve.name == curve:
            half = (raw.curve.key_size + 7) // 8
            if len(signed.signature) == 2 * half:
                r = int.from_bytes(signed.signature[:half], "big")
                s = int.from_bytes(signed.signature[half:], "big")
                raw.verify(encode_dss_signature(r, s), signed.signing_input, ec.ECDSA(digest))
                return
    except InvalidSignature:
        pass
    raise CAError(Kind.MALFORMED, "The JWS signature does not verify with the account key.")


def verify_mac(signed: Signed, secret: bytes) -> None:
    """Verify an HMAC-signed JWS (the external account binding, section 7.3.4)."""
    digest = MAC_ALGORITHMS.get(signed.alg)
    if digest is None:
        raise CAError(
            Kind.UNAUTHORIZED, "The external account binding must be signed with HS256, HS384 or HS512."
        )
    expected = hmac.new(secret, signed.signing_input, digest).digest()
    if not hmac.compare_digest(expected, signed.signature):
        raise CAError(Kind.UNAUTHORIZED, "The external account binding signature does not verify.")
