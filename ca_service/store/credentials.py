"""Keys made for devices: the credential record, the wrapped private key, one-time URL tokens."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from ca_service.store.models import DeviceCredentialRow, DownloadTokenRow, WrappedKeyRow, utcnow

TOKEN_RETENTION = timedelta(days=30)  # expired token hashes kept this long, to answer 410 not 404


def add_credential(
    session: Session,
    *,
    mac: str,
    serial: str,
    key_type: str,
    bind_mac: bool,
    download_expires_at: datetime,
    created_by: str,
) -> int:
    row = DeviceCredentialRow(
        mac=mac,
        serial=serial,
        key_type=key_type,
        bind_mac=bind_mac,
        download_expires_at=download_expires_at,
        created_by=created_by,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row.id


def add_wrapped_key(
    session: Session, *, credential_id: int, kek: str, blob: bytes, expires_at: datetime
) -> None:
    session.execute(
        insert(WrappedKeyRow).values(credential_id=credential_id, kek=kek, blob=blob, expires_at=expires_at)
    )


def add_token(
    session: Session,
    *,
    token_hash: str,
    credential_id: int,
    kind: str,
    expires_at: datetime,
    sealed: bytes,
) -> None:
    session.execute(
        insert(DownloadTokenRow).values(
            token_hash=token_hash,
            credential_id=credential_id,
            kind=kind,
            expires_at=expires_at,
            fetches=0,
            created_at=utcnow(),
            sealed=sealed,
        )
    )


def token(session: Session, token_hash: str) -> tuple[DownloadTokenRow, DeviceCredentialRow] | None:
    found = session.execute(
        select(DownloadTokenRow, DeviceCredentialRow)
        .join(DeviceCredentialRow, DeviceCredentialRow.id == DownloadTokenRow.credential_id)
        .where(DownloadTokenRow.token_hash == token_hash)
    ).first()
    return (found[0], found[1]) if found else None


def count_fetch(session: Session, token_id: int) -> None:
    session.execute(
        update(DownloadTokenRow)
        .where(DownloadTokenRow.id == token_id)
        .values(fetches=DownloadTokenRow.fetches + 1, used_at=utcnow())
    )


def claim_key(session: Session, token_id: int, credential_id: int, now: datetime) -> bytes | None:
    """Take the wrapped key for its one download; returns its blob, or None when the URL is used
    or expired or the key is gone. Two conditional statements decide, atomically on every
    backend and whichever URL of the credential each request holds: the token is marked used
    only if it is unused and unexpired, and the key row is taken by one ``DELETE ... RETURNING``
    that also checks its expiry (a second deleter gets no row). On None the caller must roll
    back (the token may have been marked)."""
    claimed = session.execute(
        update(DownloadTokenRow)
        .where(
            DownloadTokenRow.id == token_id,
            DownloadTokenRow.used_at.is_(None),
            DownloadTokenRow.expires_at > now,
        )
        .values(used_at=now, fetches=DownloadTokenRow.fetches + 1)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    blob = session.execute(
        delete(WrappedKeyRow)
        .where(WrappedKeyRow.credential_id == credential_id, WrappedKeyRow.expires_at > now)
        .returning(WrappedKeyRow.blob)
    ).scalar_one_or_none()
    if blob is None:
        return None
    session.execute(
        update(DeviceCredentialRow)
        .where(DeviceCredentialRow.id == credential_id)
        .values(key_delivered_at=now)
    )
    return bytes(blob)


def pending_tokens(
    session: Session, credential_id: int, now: datetime
) -> tuple[DownloadTokenRow, DownloadTokenRow] | None:
    """The newest live URLs of a credential that can be shown again, (cert, key): a sealed,
    unexpired certificate token and a sealed, unused, unexpired key token; None otherwise."""

    def newest(kind: str, *conditions: Any) -> DownloadTokenRow | None:
        return session.scalar(
            select(DownloadTokenRow)
            .where(
                DownloadTokenRow.credential_id == credential_id,
                DownloadTokenRow.kind == kind,
                DownloadTokenRow.expires_at > now,
                DownloadTokenRow.sealed.is_not(None),
                *conditions,
            )
            .order_by(DownloadTokenRow.id.desc())
            .limit(1)
        )

    cert = newest("cert")
    key = newest("key", DownloadTokenRow.used_at.is_(None))
    return (cert, key) if cert is not None and key is not None else None


def wrapped_key_pending(session: Session, credential_id: int, now: datetime) -> bool:
    key = session.get(WrappedKeyRow, credential_id)
    return key is not None and key.expires_at > now


def latest_for_device(session: Session, mac: str) -> DeviceCredentialRow | None:
    return session.scalar(
        select(DeviceCredentialRow)
        .where(DeviceCredentialRow.mac == mac)
        .order_by(DeviceCredentialRow.id.desc())
        .limit(1)
    )


def expire_unused_tokens(session: Session, credential_id: int, now: datetime) -> None:
    """Make the outstanding URLs of a credential expire (superseded by fresh ones)."""
    session.execute(
        update(DownloadTokenRow)
        .where(
            DownloadTokenRow.credential_id == credential_id,
            DownloadTokenRow.used_at.is_(None),
            DownloadTokenRow.expires_at > now,
        )
        .values(expires_at=now)
    )


def purge(session: Session, now: datetime) -> int:
    """Delete wrapped keys whose download expired, and token hashes long expired. Returns the
    number of keys deleted."""
    keys = session.execute(delete(WrappedKeyRow).where(WrappedKeyRow.expires_at <= now))
    session.execute(delete(DownloadTokenRow).where(DownloadTokenRow.expires_at <= now - TOKEN_RETENTION))
    return int(keys.rowcount or 0)  # type: ignore[attr-defined]
