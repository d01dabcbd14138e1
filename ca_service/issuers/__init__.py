"""Our CAs: a key-free directory that everyone reads, signers that load a key only to sign, and
the life cycle (init, import, rotate, retire)."""

from ca_service.issuers.directory import CA, REVOKED_ISSUER, Directory, Snapshot
from ca_service.issuers.signers import CANNOT_SIGN, Signers

__all__ = ["CA", "CANNOT_SIGN", "REVOKED_ISSUER", "Directory", "Signers", "Snapshot"]
