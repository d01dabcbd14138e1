"""The ``pkcs11:`` key store backend: creates keys inside the token and loads them for signing."""

from __future__ import annotations

import secrets

from pkcs11 import Attribute, ObjectClass
from pkcs11 import KeyType as P11KeyType
from pkcs11.exceptions import NoSuchKey, PKCS11Error
from pkcs11.util.ec import encode_named_curve_parameters

from ca_service.config import Settings
from ca_service.domain import KeyType, SigningKey
from ca_service.errors import CAError, Kind
from ca_service.keystore.pkcs11.keys import CURVES, public_key_of, wrap_key
from ca_service.keystore.pkcs11.session import LOCK, TokenKey, find, session_for
from ca_service.keystore.pkcs11.uri import Pkcs11Uri


class Pkcs11KeyStore:
    """Keys in a PKCS#11 token, named by RFC 7512 URIs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def create(self, uri: str, key_type: KeyType) -> SigningKey:
        """Generate a key pair inside the token: private key sensitive, never extractable, sign
        only; public key stored beside it with the same label and CKA_ID."""
        parsed = Pkcs11Uri.parse(uri)
        with LOCK:
            link = session_for(parsed)
            session = link.get()
            try:
                try:
                    find(session, parsed, ObjectClass.PRIVATE_KEY)
                except NoSuchKey:
                    pass
                else:
                    raise CAError(
                        Kind.CONFLICT, f"A key already exists at {parsed.label}; refusing to overwrite it."
                    )
                common = {
                    "id": parsed.id or secrets.token_bytes(8),
                    "label": parsed.object,
                    "store": True,
                    "public_template": {
                        Attribute.VERIFY: True,
                        Attribute.ENCRYPT: False,
                        Attribute.WRAP: False,
                    },
                    "private_template": {
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.PRIVATE: True,
                        Attribute.SIGN: True,
                        Attribute.DECRYPT: False,
                        Attribute.UNWRAP: False,
                        Attribute.DERIVE: False,
                    },
                }
                if key_type in CURVES:
                    params = session.create_domain_parameters(
                        P11KeyType.EC,
                        {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVES[key_type].name)},
                        local=True,
                    )
                    public, _ = params.generate_keypair(**common)
                else:
                    bits = int(key_type.value.split("-")[1])
                    public, _ = session.generate_keypair(P11KeyType.RSA, bits, **common)
                return wrap_key(TokenKey(parsed), public_key_of(public))
            except PKCS11Error as exc:
                link.fail(exc, "generate a key", parsed)

    def load(self, uri: str) -> SigningKey:
        parsed = Pkcs11Uri.parse(uri)
        with LOCK:
            link = session_for(parsed)
            session = link.get()
            try:
                public = find(session, parsed, ObjectClass.PUBLIC_KEY)
                return wrap_key(TokenKey(parsed), public_key_of(public))
            except NoSuchKey as exc:
                link.drop()  # a token swapped or re-initialised under us: look again next time
                raise CAError(Kind.UNAVAILABLE, f"The token holds no key at {parsed.label}.") from exc
            except PKCS11Error as exc:
                link.fail(exc, "load the key", parsed)
