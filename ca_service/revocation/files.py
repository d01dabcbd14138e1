"""Published CRLs as files of this host, which workers serve instead of holding the bytes.

A CRL is written once per CRL number, as DER, by the worker that built it or by the first that
serves it (from the database, the one source of truth); its PEM armour is made from that file
the first time it is asked for. Every worker of the host then sends the files (gunicorn passes
them to ``sendfile``), so a worker's memory does not grow with the CRL: 53 MB of DER and 72 MB
of PEM at a million entries (shared/measurements.md). Files are replaced atomically (a
temporary file renamed over the name), so a reader sees a whole file or none; older numbers of
the same issuer are deleted after a newer one is written. While the database cannot answer,
the files serve until their nextUpdate. A home that cannot be written (a read-only volume)
costs a warning: the worker then keeps its files in a private temporary folder.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from ca_service.authority.crl import PEM_CHUNK, crl_pem_pieces

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
        """The DER file of the CRL is there and this process may read it (it was not left
        behind by another user)."""
        return os.access(self.path(issuer_id, number, "crl"), os.R_OK)

    def write(self, issuer_id: int, number: int, der: bytes | bytearray | memoryview) -> None:
        """Write the DER CRL, then delete this issuer's files of lower numbers."""
        try:
            self._write(issuer_id, number, der)
        except OSError as exc:
            self._go_private(exc)
            self._write(issuer_id, number, der)

    def pem(self, issuer_id: int, number: int) -> Path:
        """The PEM file of a CRL whose DER file is written, made from it on first use."""
        if not os.access(self.path(issuer_id, number, "pem"), os.R_OK):
            try:
                self._armour(issuer_id, number)
            except OSError as exc:
                der = self.path(issuer_id, number, "crl").read_bytes()  # taken along
                self._go_private(exc)
                self._write(issuer_id, number, der)
                self._armour(issuer_id, number)
        return self.path(issuer_id, number, "pem")

    def _write(self, issuer_id: int, number: int, der: bytes | bytearray | memoryview) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _replace(self.path(issuer_id, number, "crl"), (der,))
        for old in self.folder.glob(f"{issuer_id}-*.*"):
            stem, _, fmt = old.name.partition(".")
            older = stem.split("-", 1)[1]
            if fmt in FORMATS and older.isdigit() and int(older) < number:
                old.unlink(missing_ok=True)

    def _armour(self, issuer_id: int, number: int) -> None:
        source = self.path(issuer_id, number, "crl")
        _replace(self.path(issuer_id, number, "pem"), crl_pem_pieces(_pieces(source)))

    def _go_private(self, exc: OSError) -> None:
        """The folder cannot be written: from now on, a private temporary folder (once)."""
        if self._private:
            raise exc
        private = Path(tempfile.mkdtemp(prefix="ca-service-crl-"))
        log.warning(
            "CRL files cannot be written in the service home; this worker keeps them in a "
            "private temporary folder",
            extra={"folder": str(self.folder), "error": exc.strerror, "instead": str(private)},
        )
        self.folder, self._private = private, True


def _pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while piece := fh.read(PEM_CHUNK):
            yield piece


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
