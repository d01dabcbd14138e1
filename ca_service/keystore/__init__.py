"""Where CA keys live (design decision 5).

A key is named by a URI; its scheme picks the backend (``file:`` here, ``pkcs11:`` in
``keystore.pkcs11``). A backend hands back an object that cryptography's certificate and CRL
builders can sign with, so ``authority/`` never knows where the key is.
"""

from __future__ import annotations

import importlib
import sys
from typing import Protocol

from ca_service.config import Settings
from ca_service.domain import KeyType, SigningKey
from ca_service.errors import CAError, Kind


class CredentialsRefused(CAError):
    """The key store refused our credentials (a token's PIN, a file key's passphrase). Trying
    again with the same ones cannot help and may lock a token (an HSM locks a user after a few
    wrong PINs), so callers must not retry until the configuration changes."""

    def __init__(self, detail: str) -> None:
        super().__init__(Kind.UNAVAILABLE, detail)


class KeyStore(Protocol):
    """A key store backend: creates keys inside itself and loads them for signing."""

    def create(self, uri: str, key_type: KeyType) -> SigningKey:
        """Create a new key at ``uri``; refuse to overwrite an existing one."""
        ...

    def load(self, uri: str) -> SigningKey:
        """Load the key at ``uri`` for signing; raise UNAVAILABLE when the store cannot serve."""
        ...


def scheme_of(uri: str) -> str:
    scheme, sep, _ = uri.partition(":")
    if not sep:
        raise CAError(Kind.MALFORMED, "A key URI starts with its scheme, e.g. 'file:' or 'pkcs11:'.")
    return scheme.lower()


# scheme -> (module, class): backends are imported only when a key URI needs them, so the
# pkcs11 binding is loaded only by deployments that use an HSM.
BACKENDS = {
    "file": ("ca_service.keystore.file", "FileKeyStore"),
    "pkcs11": ("ca_service.keystore.pkcs11", "Pkcs11KeyStore"),
}


def keystore_for(uri: str, settings: Settings) -> KeyStore:
    """The backend that serves ``uri``."""
    scheme = scheme_of(uri)
    if scheme not in BACKENDS:
        raise CAError(Kind.MALFORMED, f"Unknown key URI scheme '{scheme[:20]}'; use file: or pkcs11:.")
    module_name, class_name = BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CAError(
            Kind.UNAVAILABLE, f"The {scheme}: key store is not available in this installation."
        ) from exc
    backend: KeyStore = getattr(module, class_name)(settings)
    return backend


def forget_refusals() -> None:
    """Let this process offer credentials once more that a key store refused (see
    :class:`CredentialsRefused`); only PKCS#11 sessions keep such state."""
    session = sys.modules.get("ca_service.keystore.pkcs11.session")
    if session is not None:
        session.forget_refusals()


def display_uri(uri: str) -> str:
    """``uri`` fit to show: a ``pin-value`` query attribute (RFC 7512 section 2.3) is removed
    (this service refuses to use one, but stored data may predate that)."""
    base, sep, query = uri.partition("?")
    kept = [a for a in query.split("&") if a and not a.lower().startswith("pin-value")]
    return base + (sep + "&".join(kept) if kept else "")


def load_key(uri: str, settings: Settings) -> SigningKey:
    return keystore_for(uri, settings).load(uri)


def create_key(uri: str, key_type: KeyType, settings: Settings) -> SigningKey:
    return keystore_for(uri, settings).create(uri, key_type)


def check_sealing(settings: Settings, uris: tuple[str, ...], *, production: bool) -> None:
    """Before keys are made at ``uris`` (and the file wrapping key, unless a token holds it):
    refuse a file key store passphrase that is unfit to seal them: weak when an operator chose
    it; with ``production``, the generated development one or any kept in a file inside the
    home (a copy of the home would be the CA). Nothing is written."""
    if settings.wrapping_key_uri and not any(scheme_of(u) == "file" for u in uris):
        return
    from ca_service.keystore.file import FileKeyStore

    store = FileKeyStore(settings)
    if production:
        store.require_outside_home()
    store.sealing_passphrase()


def reseal_key(uri: str, settings: Settings) -> bool:
    """Seal a file key again at the current KDF cost when it is sealed the old way or more
    cheaply (True when rewritten); keys in other stores are left alone (False)."""
    if scheme_of(uri) != "file":
        return False
    from ca_service.keystore.file import FileKeyStore

    return FileKeyStore(settings).reseal(uri)
