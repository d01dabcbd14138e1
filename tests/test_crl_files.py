"""Published CRLs served from files of the host (ca_service.revocation.files): written once per
CRL number, by the worker that published it or the first that serves it (the PEM armour when
it is first asked for); every other worker of the host sends the file without reading the
CRL's bytes from the database; a newer CRL replaces the files of the older; a home that cannot
be written costs a warning, not the CRL."""

from __future__ import annotations

import base64
import logging
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from flask import Flask

from ca_service import Services, create_app
from ca_service.authority.crl import PEM_CHUNK, crl_pem, crl_pem_pieces, der_pieces
from ca_service.domain import Principal, Role
from ca_service.store import revocations as store
from tests.helpers import make_csr

ADMIN = Principal(name="test-admin", role=Role.ADMIN)


def revoke_one(services: Services, tmp_path: Path, cn: str) -> None:
    _, csr = make_csr(tmp_path, cn, name=cn)
    serial = services.enrollment.issue(csr.read_bytes(), ADMIN).serial
    services.revocation.revoke(serial, "superseded", None, ADMIN)


@pytest.mark.parametrize("size", [0, 1, 47, 48, 49, 3 * PEM_CHUNK, 3 * PEM_CHUNK + 5])
def test_pem_in_pieces_is_rfc7468_armour(size: int) -> None:
    """64-character lines of base64 (RFC 7468 section 2), however the pieces fall."""
    der = bytes(i % 251 for i in range(size))
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    expected = f"-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n".replace("\n\n", "\n")
    assert crl_pem(der).decode() == expected
    pieces = list(crl_pem_pieces(der_pieces(der)))
    assert all(len(piece) <= PEM_CHUNK * 4 // 3 + PEM_CHUNK // 48 for piece in pieces)


def test_served_from_files_written_once_per_number(
    services: Services, app: Flask, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer_id, issuer = services.signers.active()
    revoke_one(services, tmp_path, "7C2F80000001")
    number = services.revocation.regenerate(issuer_id)
    folder = settings.home / "crl"
    assert [p.name for p in folder.iterdir()] == [f"{issuer_id}-{number}.crl"]  # PEM: when asked

    reads: list[bool] = []
    real = store.published_crl

    def counted(session: Any, issuer: int, with_der: bool = True) -> Any:
        reads.append(with_der)
        return real(session, issuer, with_der)

    monkeypatch.setattr(store, "published_crl", counted)
    other = create_app(services.settings).test_client()  # another worker of this host
    der = other.get(f"/crl/{issuer.name}.crl")
    pem = other.get(f"/crl/{issuer.name}.pem")
    assert der.status_code == pem.status_code == 200
    assert reads == [False]  # the times only: the bytes came from the file
    assert sorted(p.name for p in folder.iterdir()) == [f"{issuer_id}-{number}.{f}" for f in ("crl", "pem")]
    crl = x509.load_der_x509_crl(der.data)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number
    assert len(crl) == 1 and crl.is_signature_valid(issuer.certificate.public_key())  # type: ignore[arg-type]
    assert x509.load_pem_x509_crl(pem.data).tbs_certlist_bytes == crl.tbs_certlist_bytes
    to_pem = ["openssl", "crl", "-inform", "DER", "-outform", "PEM"]
    converted = subprocess.run(to_pem, input=der.data, capture_output=True, check=True).stdout
    assert pem.data == converted
    assert der.headers["ETag"] == f'"{issuer.name}-{number}-crl"'
    again = other.get(f"/crl/{issuer.name}.crl", headers={"If-None-Match": der.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""

    revoke_one(services, tmp_path, "7C2F80000002")
    newer = services.revocation.regenerate(issuer_id)
    assert [p.name for p in folder.iterdir()] == [f"{issuer_id}-{newer}.crl"]  # the older ones gone
    assert len(x509.load_der_x509_crl(other.get(f"/crl/{issuer.name}.crl").data)) == 2


def test_a_lost_file_is_written_again_from_the_database(
    services: Services, client: Any, settings: Any, tmp_path: Path
) -> None:
    issuer_id, issuer = services.signers.active()
    revoke_one(services, tmp_path, "7C2F80000003")
    number = services.revocation.regenerate(issuer_id)
    first = client.get(f"/crl/{issuer.name}.pem").data
    (settings.home / "crl" / f"{issuer_id}-{number}.pem").unlink()
    assert client.get(f"/crl/{issuer.name}.pem").data == first
    (settings.home / "crl" / f"{issuer_id}-{number}.crl").unlink()
    assert x509.load_der_x509_crl(client.get(f"/crl/{issuer.name}.crl").data).tbs_certlist_bytes == (
        x509.load_pem_x509_crl(first).tbs_certlist_bytes
    )


def test_a_home_that_cannot_hold_the_files_costs_a_warning(
    services: Services, settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (settings.home / "crl").write_text("not a folder")  # mkdir fails, also for root
    issuer_id, issuer = services.signers.active()
    revoke_one(services, tmp_path, "7C2F80000004")
    worker = create_app(services.settings)
    with caplog.at_level(logging.WARNING, logger="ca_service.revocation"):
        services.revocation.regenerate(issuer_id)
        served = worker.test_client().get(f"/crl/{issuer.name}.crl")
        armoured = worker.test_client().get(f"/crl/{issuer.name}.pem")
    assert served.status_code == 200 and len(x509.load_der_x509_crl(served.data)) == 1
    assert x509.load_pem_x509_crl(armoured.data).tbs_certlist_bytes == (
        x509.load_der_x509_crl(served.data).tbs_certlist_bytes
    )
    assert any("private temporary folder" in r.getMessage() for r in caplog.records)
    assert (settings.home / "crl").read_text() == "not a folder"
