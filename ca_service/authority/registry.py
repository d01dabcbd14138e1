"""The set of our CAs loaded for signing: the root certificate and the issuing CAs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography import x509

from ca_service.authority.issuer import Issuer, pem
from ca_service.config import Settings
from ca_service.domain import IssuerRecord
from ca_service.errors import CAError, Kind
from ca_service.keystore import load_key

SIGNING_STATES = ("active", "retiring")


@dataclass
class IssuerSet:
    """Issuers by id. ``active`` signs new certificates; retiring issuers still sign revocation
    data for what they issued. Keys are loaded from the key store when the set is built."""

    root: x509.Certificate
    by_id: dict[int, Issuer]
    active: Issuer | None
    ids: dict[str, int]

    @classmethod
    def load(cls, records: Iterable[IssuerRecord], settings: Settings) -> IssuerSet:
        records = list(records)
        roots = [r for r in records if r.role == "root" and r.certificate_pem]
        if not roots:
            if any(r.state == "pending" for r in records):
                raise CAError(
                    Kind.UNAVAILABLE,
                    "The issuing CA is waiting for its certificate from the external root; "
                    "run 'ca-service issuer import issuing.pem --root root.pem'.",
                )
            raise CAError(Kind.UNAVAILABLE, "No CA is configured; run 'ca-service init'.")
        root = x509.load_pem_x509_certificate(roots[-1].certificate_pem.encode())  # type: ignore[union-attr]
        certs = {
            r.id: x509.load_pem_x509_certificate(r.certificate_pem.encode())
            for r in records
            if r.certificate_pem
        }
        by_id: dict[int, Issuer] = {}
        active: Issuer | None = None
        for r in records:
            if r.role != "issuing" or r.state not in SIGNING_STATES or r.certificate_pem is None:
                continue
            chain = []
            parent = r.parent_id
            while parent is not None and parent in certs:
                chain.append(certs[parent])
                parent = next((p.parent_id for p in records if p.id == parent), None)
            if not chain:
                chain = [root]
            issuer = Issuer(
                r.name, certs[r.id], load_key(r.key_uri, settings), tuple(chain), settings.public_url
            )
            by_id[r.id] = issuer
            if r.state == "active":
                active = issuer  # records come oldest first: the newest active one wins
        return cls(root=root, by_id=by_id, active=active, ids={i.name: k for k, i in by_id.items()})

    def signing(self) -> tuple[int, Issuer]:
        if self.active is None:
            raise CAError(
                Kind.UNAVAILABLE,
                "No active issuing CA; finish set-up with 'ca-service issuer import'.",
            )
        return self.ids[self.active.name], self.active

    @property
    def root_pem(self) -> str:
        return pem(self.root)


class IssuerCache:
    """Loads the :class:`IssuerSet` on first use and keeps it; a failed load is retried on the
    next call, so a worker started before ``ca-service init`` (or while the key store was
    unreachable) recovers without a restart."""

    def __init__(self, loader: Callable[[], IssuerSet]) -> None:
        self._loader = loader
        self._value: IssuerSet | None = None

    def get(self) -> IssuerSet:
        if self._value is None:
            self._value = self._loader()
        return self._value

    def invalidate(self) -> None:
        self._value = None

    def self_test(self) -> None:
        """Sign a throw-away message with the active issuing key (the start-up signing test)."""
        _, issuer = self.get().signing()
        issuer.self_test()
