"""Our CAs as everyone reads them: certificates, chains, names and states from the database.

Nothing here loads a key. Every public URL (``/ca/*``, ``/crl/*``, ``/trust/*``), every
certificate view and the OCSP CertID index read the :class:`Directory`, so a key store outage
never takes down what relying parties fetch (keys are loaded only to sign, by
:mod:`ca_service.issuers.signers`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca_service.domain import IssuerRecord, IssuerRole, IssuerState
from ca_service.errors import CAError, Kind
from ca_service.store import Database
from ca_service.store import issuers as store

REVOKED_ISSUER = (
    "The issuing CA {name} is revoked and signs nothing; an operator makes a new one with "
    "'ca-service issuer rotate'."
)


@dataclass(frozen=True)
class CA:
    """One of our CAs with a certificate: its record and the parsed certificate."""

    record: IssuerRecord
    certificate: x509.Certificate

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def state(self) -> IssuerState:
        return self.record.state

    @cached_property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @cached_property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Snapshot:
    """The CA set as loaded at one moment: immutable, shared by the threads of a worker."""

    records: tuple[IssuerRecord, ...]
    cas: dict[int, CA]  # every CA with a certificate, by id, oldest first
    root: CA  # the newest root
    _chain_pem: dict[int, str] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, records: list[IssuerRecord]) -> Snapshot:
        cas = {
            r.id: CA(r, x509.load_pem_x509_certificate(r.certificate_pem.encode()))
            for r in records
            if r.certificate_pem
        }
        roots = [c for c in cas.values() if c.record.role is IssuerRole.ROOT]
        if not roots:
            if any(r.state is IssuerState.PENDING for r in records):
                raise CAError(
                    Kind.UNAVAILABLE,
                    "The issuing CA is waiting for its certificate from the external root; "
                    "run 'ca-service issuer import issuing.pem --root root.pem'.",
                )
            raise CAError(Kind.UNAVAILABLE, "No CA is configured; run 'ca-service init'.")
        snapshot = cls(tuple(records), cas, roots[-1])
        for ca in snapshot.issuing.values():
            snapshot._chain_pem[ca.id] = "".join(c.pem for c in snapshot.chain(ca)[:-1])
        return snapshot

    def chain(self, ca: CA) -> tuple[CA, ...]:
        """``ca`` and its parents up to a root, ``ca`` first (the newest root when the stored
        parent link is missing)."""
        out, parent = [ca], ca.record.parent_id
        while parent is not None and parent in self.cas and len(out) < 8:
            out.append(self.cas[parent])
            parent = self.cas[parent].record.parent_id
        if out[-1].record.role is not IssuerRole.ROOT:
            out.append(self.root)
        return tuple(out)

    def chain_pem(self, issuer_id: int) -> str:
        """The issuing CA and its intermediates (not the root), PEM: what a device certificate
        is served with."""
        return self._chain_pem.get(issuer_id, "")

    @cached_property
    def issuing(self) -> dict[int, CA]:
        """Every issuing CA with a certificate (whatever its state), oldest first."""
        return {k: c for k, c in self.cas.items() if c.record.role is IssuerRole.ISSUING}

    @cached_property
    def signing(self) -> dict[int, CA]:
        """Issuing CAs that sign (active and retiring): they publish CRLs and answer OCSP."""
        return {k: c for k, c in self.issuing.items() if c.state.signs}

    @cached_property
    def active(self) -> CA | None:
        """The issuing CA that signs new certificates (the newest active one)."""
        actives = [c for c in self.issuing.values() if c.state is IssuerState.ACTIVE]
        return actives[-1] if actives else None

    def require_active(self) -> CA:
        if self.active is None:
            newest = list(self.issuing.values())[-1:]
            if newest and newest[0].state is IssuerState.REVOKED:
                raise CAError(Kind.UNAVAILABLE, REVOKED_ISSUER.format(name=newest[0].name))
            raise CAError(
                Kind.UNAVAILABLE, "No active issuing CA; finish set-up with 'ca-service issuer import'."
            )
        return self.active

    def by_name(self, name: str) -> CA:
        for ca in self.cas.values():
            if ca.name == name:
                return ca
        raise CAError(Kind.NOT_FOUND, f"No CA named '{name[:64]}'.")

    def name_of(self, issuer_id: int) -> str:
        for r in self.records:
            if r.id == issuer_id:
                return r.name
        return str(issuer_id)


class Directory:
    """The per-worker view of our CAs. Loads the :class:`Snapshot` on first use and keeps it; a
    failed load (no CA yet, database down) is retried on the next call. Every
    ``refresh_seconds`` it compares a cheap version query and reloads when the stored set
    changed, so running workers pick up an issuer rotation without a restart."""

    def __init__(
        self, db: Database, refresh_seconds: float = 2.0, clock: Callable[[], float] = time.monotonic
    ):
        self.db = db
        self._refresh = refresh_seconds
        self._clock = clock
        self._value: Snapshot | None = None
        self._seen: object = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def _version(self) -> object:
        with self.db.read() as session:
            return store.version(session)

    def get(self) -> Snapshot:
        """The current snapshot. While the database cannot answer, a worker that loaded one
        keeps serving it (the CA set changes rarely); without one it raises UNAVAILABLE."""
        now = self._clock()
        value = self._value
        if value is not None and now - self._checked < self._refresh:
            return value
        with self._lock:
            if self._value is not None and now - self._checked < self._refresh:
                return self._value
            try:
                seen = self._version()
                if self._value is None or seen != self._seen:
                    with self.db.read() as session:
                        self._value = Snapshot.load(store.all_issuers(session))
            except CAError:
                if self._value is None:
                    raise
                seen = self._seen
            self._seen, self._checked = seen, now
            return self._value

    def invalidate(self) -> None:
        with self._lock:
            self._value = None
