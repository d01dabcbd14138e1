"""Keys in a token that cryptography's builders sign with: ECDSA (CKM_ECDSA over a digest made
here) and RSA PKCS#1 v1.5 with SHA-2. They hold only object handles; nothing can be exported."""

from __future__ import annotations

from typing import Any, NoReturn, Self

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.utils import Buffer
from pkcs11 import Attribute, Mechanism
from pkcs11 import KeyType as P11KeyType
from pkcs11.util.ec import encode_named_curve_parameters

from ca_service.domain import KeyType, SigningKey
from ca_service.errors import CAError, Kind
from ca_service.keystore.pkcs11.session import TokenKey

CURVES = {KeyType.EC_P256: ec.SECP256R1(), KeyType.EC_P384: ec.SECP384R1()}


class InToken:
    """What every key in a token shares: the token object it signs with, its public half, no
    export, and copies that are the same object (cryptography's builders copy keys)."""

    def __init__(self, token_key: TokenKey, public: Any) -> None:
        self._key = token_key
        self._public = public

    @property
    def key_size(self) -> int:
        return int(self._public.key_size)

    def private_numbers(self) -> NoReturn:
        raise CAError(Kind.INTERNAL, "A key in a PKCS#11 token cannot be exported.")

    def private_bytes(self, *args: Any, **kwargs: Any) -> bytes:
        raise CAError(Kind.INTERNAL, "A key in a PKCS#11 token cannot be exported.")

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


class Pkcs11EcKey(InToken, ec.EllipticCurvePrivateKey):
    """An ECDSA key in a token. ``sign`` hashes here and has the token sign the digest
    (CKM_ECDSA); the token's raw r||s becomes the DER ``Ecdsa-Sig-Value`` (RFC 5480 section 2.2
    via RFC 3279 section 2.2.3)."""

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise CAError(Kind.INTERNAL, "PKCS#11 EC keys sign with ECDSA only.")
        digest = _digest(bytes(data), signature_algorithm.algorithm)
        raw = self._key.sign(digest, Mechanism.ECDSA)
        half = len(raw) // 2
        r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        return utils.encode_dss_signature(r, s)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public  # type: ignore[no-any-return]

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve  # type: ignore[no-any-return]

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise CAError(Kind.INTERNAL, "CA keys in a PKCS#11 token only sign.")


RSA_MECHANISMS = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}


class Pkcs11RsaKey(InToken, rsa.RSAPrivateKey):
    """An RSA key in a token; signs RSASSA-PKCS1-v1_5 with SHA-2 (RFC 8017 section 8.2) through
    CKM_SHA256_RSA_PKCS and its siblings."""

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        mechanism = RSA_MECHANISMS.get(getattr(algorithm, "name", ""))
        if padding.name != "EMSA-PKCS1-v1_5" or mechanism is None:
            raise CAError(Kind.INTERNAL, "PKCS#11 RSA keys sign PKCS#1 v1.5 with SHA-256/384/512 only.")
        return self._key.sign(bytes(data), mechanism)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public  # type: ignore[no-any-return]

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        raise CAError(Kind.INTERNAL, "CA keys in a PKCS#11 token only sign.")


def _digest(data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> bytes:
    if isinstance(algorithm, utils.Prehashed):
        return data
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def public_key_of(public: Any) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The public half as a cryptography object, from the token's public key object."""
    if public.key_type == P11KeyType.RSA:
        n = int.from_bytes(public[Attribute.MODULUS], "big")
        e = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    params = bytes(public[Attribute.EC_PARAMS])
    curve = next((c for c in CURVES.values() if encode_named_curve_parameters(c.name) == params), None)
    if curve is None:
        raise CAError(Kind.UNAVAILABLE, "The token key is on a curve other than P-256 or P-384.")
    point = bytes(public[Attribute.EC_POINT])
    if len(point) != 1 + 2 * ((curve.key_size + 7) // 8):
        point = point[2:]  # CKA_EC_POINT wrapped in a DER OCTET STRING (short form up to P-384)
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)


def wrap_key(token_key: TokenKey, public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> SigningKey:
    if isinstance(public, rsa.RSAPublicKey):
        return Pkcs11RsaKey(token_key, public)
    return Pkcs11EcKey(token_key, public)
