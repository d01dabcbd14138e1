"""Per-process PKCS#11 libraries and logged-in sessions, re-opened when lost (after a fork, a
token re-initialised or re-attached)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any, NoReturn

import pkcs11
from pkcs11 import Mechanism, ObjectClass
from pkcs11.exceptions import (
    NoSuchKey,
    NoSuchToken,
    PinExpired,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    UserAlreadyLoggedIn,
)

from ca_service.errors import CAError, Kind
from ca_service.keystore import CredentialsRefused
from ca_service.keystore.pkcs11.uri import Pkcs11Uri


class _Module:
    """One loaded PKCS#11 library in this process. ``generation`` counts initialisations: a
    session opened under an older generation is dead (C_Finalize closes every session)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = -1
        self.generation = 0
        self.lib: Any = None

    def ready(self) -> Any:
        if self.pid != os.getpid():  # new process (or first use): the parent's state is not ours
            self.reinitialize()
        return self.lib

    def reinitialize(self) -> None:
        """C_Finalize then C_Initialize: drops every session of this process, makes the library
        rescan its slots (a re-initialised or re-attached token)."""
        try:
            if self.lib is None:
                self.lib = pkcs11.lib(self.path)
            try:
                self.lib.finalize()
            except PKCS11Error:
                pass  # already finalised or inherited from a parent process
            self.lib.initialize()
        except PKCS11Error as exc:
            raise CAError(Kind.UNAVAILABLE, "The PKCS#11 module cannot be initialised.") from exc
        self.pid = os.getpid()
        self.generation += 1


LOCK = threading.RLock()  # one PKCS#11 caller at a time per process: sessions are not thread-safe
MODULES: dict[str, _Module] = {}
SESSIONS: dict[tuple[str, str | None, str | None, str | None], _Session] = {}


def _module(path: str) -> _Module:
    if path not in MODULES:
        if not Path(path).is_file():
            raise CAError(Kind.UNAVAILABLE, f"The PKCS#11 module {path} does not exist.")
        MODULES[path] = _Module(path)
    return MODULES[path]


REFUSED = (
    "The token of {label} refused the PIN (CKR_PIN_INCORRECT or similar); it is not offered again "
    "until the PIN in its pin-source changes or 'ca-service issuer check' succeeds."
)
PIN_REFUSALS = (PinIncorrect, PinInvalid, PinLenRange, PinExpired, PinLocked)


def forget_refusals() -> None:
    """Let every session of this process offer a refused PIN once more (an operator fixed the
    token and said so with ``ca-service issuer check``)."""
    for link in SESSIONS.values():
        link.refused = None


class _Session:
    """The logged-in session of this process to one token, re-opened when it is lost. A PIN the
    token refused is remembered (as a digest) and never offered again."""

    refused: bytes | None = None

    def __init__(self, uri: Pkcs11Uri) -> None:
        self.uri = uri
        self.module = _module(uri.module_path)
        self.session: Any = None
        self.generation = -1
        self.pid = -1
        self.failed_at: int | None = None  # module generation when the last failure happened

    def get(self) -> Any:
        """An open session, opening (or re-opening) one when needed."""
        module = self.module
        module.ready()
        if self.failed_at == module.generation:
            module.reinitialize()  # the failure happened on the current initialisation
        if self.session is None or self.generation != module.generation or self.pid != os.getpid():
            self._open()
        return self.session

    def _open(self) -> None:
        self.session = None
        pin = self.uri.read_pin()
        tried = hashlib.sha256((pin or "").encode()).digest()
        if tried == self.refused:  # never offer a PIN again that this token refused
            raise CredentialsRefused(REFUSED.format(label=self.uri.label))
        token = self._token()
        try:
            try:
                session = token.open(rw=True, user_pin=pin)
            except UserAlreadyLoggedIn:  # login is per process, and this one is logged in
                session = token.open(rw=True)
        except PIN_REFUSALS as exc:
            self.failed_at, self.refused = self.module.generation, tried
            raise CredentialsRefused(REFUSED.format(label=self.uri.label)) from exc
        except PKCS11Error as exc:
            self.failed_at = self.module.generation
            raise CAError(
                Kind.UNAVAILABLE,
                f"Cannot log in to the token of {self.uri.label} ({type(exc).__name__}); "
                "check the PIN in its pin-source.",
            ) from exc
        self.session = session
        self.generation, self.pid, self.failed_at = self.module.generation, os.getpid(), None

    def _token(self) -> Any:
        criteria: dict[str, Any] = {"token_label": self.uri.token} if self.uri.token else {}
        if self.uri.serial:
            criteria["token_serial"] = self.uri.serial.encode()
        for attempt in range(2):
            try:
                return self.module.lib.get_token(**criteria)
            except NoSuchToken as exc:
                if attempt:
                    self.failed_at = self.module.generation
                    raise CAError(Kind.UNAVAILABLE, f"No PKCS#11 token matches {self.uri.label}.") from exc
                self.module.reinitialize()  # the library lists only tokens present at C_Initialize
            except PKCS11Error as exc:
                self.failed_at = self.module.generation
                raise CAError(
                    Kind.UNAVAILABLE, f"The PKCS#11 token of {self.uri.label} is not reachable."
                ) from exc
        raise AssertionError("unreachable")

    def drop(self) -> None:
        """Forget the session after a failure; the next :meth:`get` re-initialises the module
        (SoftHSM2 and others rescan their tokens only then) and logs in again."""
        self.failed_at = self.module.generation
        try:
            if self.session is not None:
                self.session.close()
        except PKCS11Error:
            pass
        self.session = None

    def fail(self, exc: PKCS11Error, action: str, uri: Pkcs11Uri) -> NoReturn:
        """Drop the session after ``exc`` and raise the UNAVAILABLE error callers see."""
        self.drop()
        raise CAError(
            Kind.UNAVAILABLE,
            f"The key store cannot {action} with {uri.label} ({type(exc).__name__}); "
            "the PKCS#11 session is re-opened on the next request.",
        ) from exc


def session_for(uri: Pkcs11Uri) -> _Session:
    key = (uri.module_path, uri.token, uri.serial, uri.pin_source)
    if key not in SESSIONS:
        SESSIONS[key] = _Session(uri)
    return SESSIONS[key]


def find(session: Any, uri: Pkcs11Uri, object_class: ObjectClass) -> Any:
    criteria: dict[str, Any] = {"object_class": object_class}
    if uri.object:
        criteria["label"] = uri.object
    if uri.id:
        criteria["id"] = uri.id
    return session.get_key(**criteria)


class TokenKey:
    """A private key in a token, found again by its URI whenever the session was re-opened."""

    def __init__(self, uri: Pkcs11Uri) -> None:
        self.uri = uri
        self.link = session_for(uri)
        self._handle: Any = None
        self._generation = -1

    def sign(self, data: bytes, mechanism: Mechanism) -> bytes:
        with LOCK:
            session = self.link.get()
            try:
                if self._handle is None or self._generation != self.link.generation:
                    self._handle = find(session, self.uri, ObjectClass.PRIVATE_KEY)
                    self._generation = self.link.generation
                return bytes(self._handle.sign(data, mechanism=mechanism))
            except NoSuchKey as exc:
                self._handle = None
                self.link.fail(exc, "find the key", self.uri)
            except PKCS11Error as exc:
                self._handle = None
                self.link.fail(exc, "sign", self.uri)
