"""Published CRLs as files of this host, which workers serve instead of holding the bytes.

A CRL is written once per CRL number (DER, and its PEM armour beside it) by the first worker
that serves it, from the database, the one source of truth; every worker of the host then
sends the file (gunicorn passes it to ``sendfile``), so a worker's memory does not grow with
the CRL: 53 MB of DER and 72 MB of PEM at a million entries (shared/measurements.md). Files are
replaced atomically (a temporary file renamed over the name), so a reader sees a whole file or
none; older numbers of the same issuer are deleted after a newer one is written. While the
database cannot answer, the files serve until their nextUpdate. A home that cannot be written
(a read-only volume) costs a warning: the worker then keeps its files in a private temporary
folder.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ca_service.authority.crl import crl_pem_pieces

log = logging.getLogger("ca_service.revocation")

FORMATS = ("crl", "pem")  # DER (the URL in our CRL distribution points), PEM


class CrlFiles:
    """CRL files under ``folder`` (``<home>/crl``), named ``<issuer id>-<CRL number>.crl|pem``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._private = False  # the home could not be written: a temporary folder of our own

    def path(self, issuer_id: int, number: int, fmt: str) -> Path:
        if fmt not in FORMATS:
            raise ValueError(f"no CRL format {fmt!r}")
        return self.folder / f"{issuer_id}-{number}.{fmt}"

    def has(self, issuer_id: int, number: int) -> bool:
        """Both files of the CRL are there, and this process may read them (not left behind
        by another user)."""
        return all(os.access(self.path(issuer_id, number, fmt), os.R_OK) for fmt in FORMATS)

    def write(self, issuer_id: int, number: int, der: bytes | bytearray | memoryview) -> None:
        """Write the DER CRL and its PEM armour (the PEM first: :meth:`has` looks for both),
        then delete this issuer's files of lower numbers."""
        try:
            self._write(issuer_id, number, der)
        except OSError as exc:
            if self._private:
                raise
            private = Path(tempfile.mkdtemp(prefix="ca-service-crl-"))
            log.warning(
                "CRL files cannot be written in the service home; this worker keeps them in a "
                "private temporary folder",
                extra={"folder": str(self.folder), "error": exc.strerror, "instead": str(private)},
            )
            self.folder, self._private = private, True
            self._write(issuer_id, number, der)

    def _write(self, issuer_id: int, number: int, der: bytes | bytearray | memoryview) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _replace(self.path(issuer_id, number, "pem"), crl_pem_pieces(der))
        _replace(self.path(issuer_id, number, "crl"), (der,))
        for old in self.folder.glob(f"{issuer_id}-*.*"):
            stem, _, fmt = old.name.partition(".")
            older = stem.split("-", 1)[1]
            if fmt in FORMATS and older.isdigit() and int(older) < number:
                old.unlink(missing_ok=True)


def _replace(target: Path, pieces: Iterable[bytes | bytearray | memoryview]) -> None:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            for piece in pieces:
                fh.write(piece)
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
