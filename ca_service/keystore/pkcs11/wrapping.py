"""The wrapping key in a token: an AES-256 key, sensitive and never extractable, that seals
device keys and EAB HMAC keys with CKM_AES_GCM."""

from __future__ import annotations

import secrets

from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import KeyType as P11KeyType
from pkcs11.exceptions import NoSuchKey, PKCS11Error
from pkcs11.mechanisms import GCMParams

from ca_service.errors import CAError, Kind
from ca_service.keystore.pkcs11.session import LOCK, find, session_for
from ca_service.keystore.pkcs11.uri import Pkcs11Uri


class Pkcs11WrappingKey:
    """An AES-256 key inside the token that encrypts secrets the service reads back (device
    keys, EAB HMAC keys) with CKM_AES_GCM (NIST SP 800-38D): random 96-bit nonce || ciphertext ||
    tag, ``context`` bound as associated data. The key never leaves the token."""

    def __init__(self, uri: str) -> None:
        self.uri = Pkcs11Uri.parse(uri)
        self.link = session_for(self.uri)
        self.label = "pkcs11:" + self.uri.label

    @classmethod
    def create(cls, uri: str) -> Pkcs11WrappingKey:
        """Generate the AES key in the token: sensitive, never extractable, encrypt/decrypt only."""
        key = cls(uri)
        with LOCK:
            session = key.link.get()
            try:
                try:
                    find(session, key.uri, ObjectClass.SECRET_KEY)
                except NoSuchKey:
                    pass
                else:
                    raise CAError(
                        Kind.CONFLICT, f"A key already exists at {key.uri.label}; refusing to overwrite it."
                    )
                session.generate_key(
                    P11KeyType.AES,
                    256,
                    id=key.uri.id or secrets.token_bytes(8),
                    label=key.uri.object,
                    store=True,
                    template={
                        Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: False,
                        Attribute.PRIVATE: True,
                        Attribute.ENCRYPT: True,
                        Attribute.DECRYPT: True,
                        Attribute.WRAP: False,
                        Attribute.UNWRAP: False,
                        Attribute.SIGN: False,
                    },
                )
            except PKCS11Error as exc:
                key.link.fail(exc, "generate a wrapping key", key.uri)
        return key

    def _crypt(self, encrypt: bool, data: bytes, nonce: bytes, context: bytes) -> bytes:
        params = GCMParams(nonce, context, 128)
        with LOCK:
            session = self.link.get()
            try:
                secret = find(session, self.uri, ObjectClass.SECRET_KEY)
                if encrypt:
                    return bytes(secret.encrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params))
                return bytes(secret.decrypt(data, mechanism=Mechanism.AES_GCM, mechanism_param=params))
            except NoSuchKey as exc:
                self.link.fail(exc, "find the wrapping key", self.uri)
            except PKCS11Error as exc:
                self.link.fail(exc, "encrypt" if encrypt else "decrypt (wrong key or altered data)", self.uri)

    def wrap(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._crypt(True, plaintext, nonce, context)

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        return self._crypt(False, blob[12:], blob[:12], context)
