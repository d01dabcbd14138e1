"""CRL entries stored as DER (migration 0014): every revoked certificate gets its entry encoded
once, by the publisher, also those revoked before the migration or written straight into the
table; the CRL from the database is the builder's CRL over the same rows; the entries stream
in batches (on PostgreSQL through a server-side cursor) without losing a row."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import insert, select, text, update

from ca_service import Services
from ca_service.domain import Principal, Role
from ca_service.policy.reasons import reason_flag
from ca_service.store import revocations as store
from ca_service.store.migrate import upgrade
from ca_service.store.models import CertificateRow
from tests.helpers import make_csr
from tests.test_crl_der import builder_crl

ADMIN = Principal(name="test-admin", role=Role.ADMIN)
REASONS = ["unspecified", "keyCompromise", "superseded", "cessationOfOperation", "privilegeWithdrawn"]


def _fill(services: Services, issuer_id: int, n: int, expired: int = 0) -> None:
    """``n`` revoked certificates written straight into the table (no stored entry), the first
    ``expired`` of them expired."""
    now = datetime.now(UTC)
    rows = [
        {
            "serial": format(int.from_bytes(secrets.token_bytes(20), "big") >> 1, "X"),
            "issuer_id": issuer_id,
            "mac": "7C2F80000000",
            "profile": "device",
            "key_type": "ec-p256",
            "not_before": now - timedelta(days=400),
            "not_after": now + timedelta(days=-1 if i < expired else 30),
            "status": "revoked",
            "revoked_at": now - timedelta(seconds=i, microseconds=i),
            "revocation_reason": REASONS[i % len(REASONS)],
            "invalidity_date": now - timedelta(hours=1) if i % 3 == 0 else None,
            "fingerprint_sha256": "0" * 64,
            "der": b"",
            "created_by": "test",
            "created_at": now,
        }
        for i in range(n)
    ]
    with services.db.write() as session:
        session.execute(insert(CertificateRow), rows)


def _revoked_rows(
    services: Services, issuer_id: int
) -> list[tuple[int, datetime, x509.ReasonFlags | None, datetime | None]]:
    with services.db.read() as session:
        rows = session.execute(
            select(
                CertificateRow.serial,
                CertificateRow.revoked_at,
                CertificateRow.revocation_reason,
                CertificateRow.invalidity_date,
            ).where(
                CertificateRow.issuer_id == issuer_id,
                CertificateRow.status == "revoked",
                CertificateRow.not_after > datetime.now(UTC),
            )
        ).all()
    return [(int(s, 16), at, reason_flag(r), inv) for s, at, r, inv in rows]


def test_crl_from_the_database_is_the_builders(services: Services, tmp_path: Path) -> None:
    issuer_id, issuer = services.signers.active()
    _fill(services, issuer_id, 2_000, expired=50)
    _, csr = make_csr(tmp_path, "7C2F80000AAA")
    serial = services.enrollment.issue(csr.read_bytes(), ADMIN).serial
    services.revocation.revoke(serial, "keyCompromise", None, ADMIN)  # through the one revoke()
    number = services.revocation.regenerate(issuer_id)
    with services.db.read() as session:
        assert store.unencoded_entries(session, issuer_id, 10) == []  # all encoded, once
    crl = x509.load_der_x509_crl(services.revocation.published(issuer.name).der)
    assert len(crl) == 2_000 - 50 + 1  # the expired ones are dropped (crl_drop_expired)
    # the same entries in the order the database streamed them, through cryptography's builder
    order = {r.serial_number: i for i, r in enumerate(crl)}
    expected = sorted(_revoked_rows(services, issuer_id), key=lambda e: order[e[0]])
    this_update = crl.last_update_utc
    reference = builder_crl(issuer, expected, number, this_update, crl.next_update_utc)
    assert crl.tbs_certlist_bytes == reference.tbs_certlist_bytes
    assert crl.is_signature_valid(issuer.certificate.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None


def _read(services: Services, issuer_id: int, size: int) -> tuple[int, bytes]:
    with services.db.read() as session:
        batches = list(store.entry_batches(session, issuer_id, None, size=size))
    return sum(n for n, _ in batches), b"".join(der for _, der in batches)


def test_entries_stream_in_batches_without_losing_a_row(services: Services) -> None:
    """Every stored entry once, whatever the batch size (SQLite) or as one aggregate
    (PostgreSQL); the count of each batch matches its bytes."""
    issuer_id, _ = services.signers.active()
    _fill(services, issuer_id, 53)
    services.revocation.regenerate(issuer_id)
    with services.db.read() as session:
        stored = set(
            session.scalars(select(CertificateRow.crl_entry).where(CertificateRow.crl_entry.is_not(None)))
        )
    count, whole = _read(services, issuer_id, 1_000)
    assert count == len(stored) == 53 and len(whole) == sum(len(e) for e in stored)
    assert all(entry in whole for entry in stored)
    for size in (1, 7, 53):  # batches of one row, a few rows, exactly all rows
        assert _read(services, issuer_id, size) == (count, whole)


def test_entries_of_rows_revoked_before_the_migration(tmp_path: Path) -> None:
    """A database at 0013 (just before 0014) with revoked certificates: after the upgrade their
    entries are encoded by the first CRL, which lists every one of them."""
    from ca_service import build_services
    from ca_service.issuers import lifecycle
    from tests.conftest import base_settings

    settings = base_settings(home=tmp_path, database_url="")
    upgrade(settings.sqlalchemy_url, "0013")
    old = build_services(settings)
    lifecycle.initialize(old.db, settings)
    issuer_id = old.directory.get().require_active().id
    with old.db.write() as session:  # a revoked certificate as 0013 kept it (no crl_entry column)
        session.connection().exec_driver_sql(
            "INSERT INTO certificates (serial, issuer_id, mac, profile, key_type, not_before, not_after,"
            " status, revoked_at, revocation_reason, fingerprint_sha256, der, created_by, created_at)"
            " VALUES ('0ABC', ?, '7C2F80000000', 'device', 'ec-p256', '2026-01-01 00:00:00.000000',"
            " '2099-01-01 00:00:00.000000', 'revoked', '2026-06-01 12:00:00.000000', 'superseded', ?,"
            " x'00', 'test', '2026-01-01 00:00:00.000000')",
            (issuer_id, "0" * 64),
        )
    old.db.dispose()
    upgrade(settings.sqlalchemy_url)
    services = build_services(settings)
    services.revocation.regenerate(issuer_id)
    crl = x509.load_der_x509_crl(
        services.revocation.published(services.directory.get().cas[issuer_id].name).der
    )
    entry = crl.get_revoked_certificate_by_serial_number(0xABC)
    assert entry is not None and entry.revocation_date_utc == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.superseded
    )
    services.db.dispose()


def test_a_revocation_after_the_entries_were_read_waits_for_the_next_crl(
    services: Services, tmp_path: Path
) -> None:
    """An entry not encoded yet is left out of the stream (and its revocation stays pending)."""
    issuer_id, issuer = services.signers.active()
    _, csr = make_csr(tmp_path, "7C2F80000BBB")
    serial = services.enrollment.issue(csr.read_bytes(), ADMIN).serial
    services.revocation.revoke(serial, "superseded", None, ADMIN)
    with services.db.read() as session:
        assert list(store.entry_batches(session, issuer_id, None)) == []  # not encoded yet
        assert store.crl_states(session, issuer_id)[issuer_id].pending == 1
    services.revocation.regenerate(issuer_id)
    with services.db.read() as session:
        assert [n for n, _ in store.entry_batches(session, issuer_id, None)] == [1]
        assert store.crl_states(session, issuer_id)[issuer_id].pending == 0
    with services.db.write() as session:  # a status flipped outside mark_revoked is encoded too
        session.execute(update(CertificateRow).where(CertificateRow.serial == serial).values(crl_entry=None))
    services.revocation.regenerate(issuer_id)
    assert len(x509.load_der_x509_crl(services.revocation.published(issuer.name).der)) == 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_stored_crl_is_lz4_compressed_on_postgresql(services: Services) -> None:
    """Migration 0015: the stored CRL bytes are compressed with lz4, not the slower pglz, and
    read back whole (a CRL of a few hundred entries is above PostgreSQL's TOAST threshold)."""
    issuer_id, issuer = services.signers.active()
    _fill(services, issuer_id, 300)
    services.revocation.regenerate(issuer_id)
    with services.db.read() as session:
        method = session.execute(text("SELECT pg_column_compression(der) FROM crl_data")).scalar_one()
    assert method == "lz4"
    crl = x509.load_der_x509_crl(services.revocation.published(issuer.name).der)
    assert len(crl) == 300 and crl.is_signature_valid(issuer.certificate.public_key())  # type: ignore[arg-type]
