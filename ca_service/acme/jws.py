"""Flattened JWS of ACME requests (RFC 8555 section 6.2), verified with josepy.

Accepted: ES256 (P-256), ES384 (P-384) and RS256 (RSA >= 2048 bits). ``none``, MAC algorithms
and everything else are refused with ``badSignatureAlgorithm``; josepy has no EdDSA, so neither
do we. The protected header must carry exactly one of ``jwk`` and ``kid``, a ``nonce`` and a
``url``; their checks against the request are the caller's (``acme.views``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

import josepy as jose
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ca_service.errors import CAError, Kind

# algorithm -> the curve its key must be on (None: an RSA key)
ALGORITHMS: dict[str, str | None] = {"ES256": "secp256r1", "ES384": "secp384r1", "RS256": None}
MAC_ALGORITHMS = {"HS256": jose.HS256, "HS384": jose.HS384, "HS512": jose.HS512}
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
    jws: jose.JWS

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
        signed = jose.JWS.from_json(obj)
        payload = signed.payload
    except CAError:
        raise
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        RecursionError,
        jose.DeserializationError,
    ) as exc:
        raise CAError(
            Kind.MALFORMED,
            "The request body must be a flattened JWS with 'protected', 'payload' and 'signature'.",
        ) from exc
    return Signed(header, payload, signed)


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
    """Check the signature with ``key``; the algorithm must fit the key type and curve."""
    curve = ALGORITHMS[signed.alg]
    raw = raw_key(key)
    if curve is None:
        fits = isinstance(raw, rsa.RSAPublicKey)
    else:
        fits = isinstance(raw, ec.EllipticCurvePublicKey) and raw.curve.name == curve
    if not fits or not signed.jws.verify(key):
        raise CAError(Kind.MALFORMED, "The JWS signature does not verify with the account key.")


def verify_mac(signed: Signed, secret: bytes) -> None:
    """Verify an HMAC-signed JWS (the external account binding, section 7.3.4)."""
    if signed.alg not in MAC_ALGORITHMS:
        raise CAError(
            Kind.UNAUTHORIZED, "The external account binding must be signed with HS256, HS384 or HS512."
        )
    if not signed.jws.verify(jose.JWKOct(key=secret)):
        raise CAError(Kind.UNAUTHORIZED, "The external account binding signature does not verify.")
