"""SQLAlchemy 2.x models. The schema changes only through Alembic migrations (alembic/)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


class IssuerRow(Base):
    """A CA of ours: the root and every issuing CA, with the URI of its key."""

    __tablename__ = "issuers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # root | issuing
    state: Mapped[str] = mapped_column(String(16))  # pending | active | retiring | retired | revoked
    subject: Mapped[str] = mapped_column(Text)
    key_uri: Mapped[str] = mapped_column(Text)
    certificate_pem: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("issuers.id"))
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the last 'ca-service issuer check' that found every key usable: workers then offer
    # credentials again that a key store had refused
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # an issuing CA revoked by its root ('ca-service issuer revoke', or listed in an imported
    # root CRL): listed in the root CRL (RFC 5280 5.3.1 reason by name)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(32))


REVOKED = text("status = 'revoked'")
UNENCODED = text("status = 'revoked' AND crl_entry IS NULL")


class CertificateRow(Base):
    """A certificate we issued. The row is committed before the certificate leaves the service."""

    __tablename__ = "certificates"
    __table_args__ = (
        Index("ix_certificates_mac_not_after", "mac", "not_after"),
        Index("ix_certificates_status_not_after", "status", "not_after"),
        # the CRL's entries, read from the index alone (a covering scan: no certificate DER read;
        # SQLite counts status as read even when the partial index implies it)
        Index(
            "ix_certificates_crl_entries",
            "issuer_id",
            "status",
            "not_after",
            "crl_entry",
            sqlite_where=REVOKED,
            postgresql_where=REVOKED,
        ),
        # revoked certificates whose CRL entry is not encoded yet (few: those since the last CRL)
        Index(
            "ix_certificates_crl_unencoded", "issuer_id", sqlite_where=UNENCODED, postgresql_where=UNENCODED
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(42), unique=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("issuers.id"))
    mac: Mapped[str] = mapped_column(String(12))
    profile: Mapped[str] = mapped_column(String(64))
    key_type: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="valid")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    invalidity_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # its revokedCertificates element (RFC 5280 5.1.2.6) once revoked, encoded by the CRL publisher
    crl_entry: Mapped[bytes | None] = mapped_column(LargeBinary)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    replaces: Mapped[str | None] = mapped_column(String(42))
    replaced_by: Mapped[str | None] = mapped_column(String(42))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeviceRow(Base):
    """A device, known by its canonical MAC. Created on registration or first issuance."""

    __tablename__ = "devices"

    mac: Mapped[str] = mapped_column(String(12), primary_key=True)
    model: Mapped[str | None] = mapped_column(String(64))
    firmware: Mapped[str | None] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TokenRow(Base):
    """An API token. Only the SHA-256 of the token is stored. A name is unique among the active
    tokens: a revoked token's name may be given to a new one."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        Index(
            "uq_api_tokens_active_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(Text, default="")  # comma-separated MAC prefixes
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditRow(Base):
    """One audited event: who did what, when, to which MAC/serial, and how it ended."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # success | refused | error
    mac: Mapped[str | None] = mapped_column(String(12), index=True)
    serial: Mapped[str | None] = mapped_column(String(42))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# -- Provisioning (issue 7): keys made for devices, their wrapped private keys, one-time URLs ----
class DeviceCredentialRow(Base):
    """A key made by the service for a device, with the certificate issued for it. Outlives the
    private key: it records when the key was delivered, which drives renewal."""

    __tablename__ = "device_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mac: Mapped[str] = mapped_column(String(12), index=True)
    serial: Mapped[str] = mapped_column(String(42), unique=True)
    key_type: Mapped[str] = mapped_column(String(16))
    bind_mac: Mapped[bool] = mapped_column(Boolean, default=False)  # downloads need the MAC in User-Agent
    download_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WrappedKeyRow(Base):
    """A device private key, AES-256-GCM encrypted under the key store's wrapping key. The row is
    deleted after the one successful key download or when the download expires."""

    __tablename__ = "wrapped_keys"

    credential_id: Mapped[int] = mapped_column(
        ForeignKey("device_credentials.id", ondelete="CASCADE"), primary_key=True
    )
    kek: Mapped[str] = mapped_column(String(64))  # which wrapping key: "file:<fingerprint>"
    blob: Mapped[bytes] = mapped_column(LargeBinary)  # 12-byte nonce || ciphertext + tag
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class DownloadTokenRow(Base):
    """A one-time download URL: looked up by the SHA-256 of its token; the token itself is kept
    only sealed under the wrapping key (bound to credential, kind and hash), so that the pending
    delivery can be shown again to the provisioning platform."""

    __tablename__ = "download_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    credential_id: Mapped[int] = mapped_column(
        ForeignKey("device_credentials.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))  # cert | key
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetches: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)  # AES-GCM; NULL for tokens before 0008


# -- trust bundle (issue 6): imported trust anchors and the bundle's version history ----------
class TrustAnchorRow(Base):
    """A CA certificate an admin imported into the trust bundle. Retiring keeps the row."""

    __tablename__ = "trust_anchors"
    __table_args__ = (
        # one active row per certificate; a retired certificate may be imported again
        Index(
            "uq_trust_anchors_active_fingerprint",
            "fingerprint_sha256",
            unique=True,
            sqlite_where=text("retired_at IS NULL"),
            postgresql_where=text("retired_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(32))  # gigaset-factory | gigaset-technologies | other
    fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    retired_by: Mapped[str | None] = mapped_column(String(160))
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TrustBundleVersionRow(Base):
    """Every distinct content of the full bundle gets the next version number. The primary key
    is given explicitly (latest + 1), so two workers publishing at once collide in the database
    and one retries: versions only grow, in commit order."""

    __tablename__ = "trust_bundle_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    digest: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- ACME (RFC 8555) and renewal lineage (issue 5) -------------------------------------------
class AcmeNonceRow(Base):
    """A redeemed ACME nonce (RFC 8555 section 6.5): its primary key makes a second use fail;
    useless once the nonce has expired (then purged). Issued nonces are not stored."""

    __tablename__ = "acme_nonces"

    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AcmeNonceKeyRow(Base):
    """The HMAC key that authenticates nonces, shared by every worker and host (one row)."""

    __tablename__ = "acme_nonce_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EabKeyRow(Base):
    """An external account binding key (RFC 8555 section 7.3.4) with the MAC scopes it grants.
    The HMAC key is stored encrypted (see enrollment.acme) and binds at most one account. A
    revoked key binds none (and its account is deactivated); its name may be used again."""

    __tablename__ = "acme_eab_keys"
    __table_args__ = (
        Index(
            "uq_acme_eab_keys_active_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[str] = mapped_column(Text)  # comma-separated MAC prefixes
    hmac_key: Mapped[bytes] = mapped_column(LargeBinary)  # AES-GCM sealed
    account_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AcmeAccountRow(Base):
    """An ACME account: its public key (JWK JSON), thumbprint and the scopes of its EAB key."""

    __tablename__ = "acme_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_thumbprint: Mapped[str] = mapped_column(String(64), unique=True)
    jwk: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="valid")  # valid | deactivated
    contact: Mapped[list[str]] = mapped_column(JSON, default=list)
    eab_id: Mapped[int] = mapped_column(ForeignKey("acme_eab_keys.id"))
    scopes: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AcmeOrderRow(Base):
    """An ACME order for one device MAC. Its authorizations are valid from the start (the EAB
    scope authorizes the MAC), so they are not stored apart: authz URLs index its identifiers."""

    __tablename__ = "acme_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("acme_accounts.id"), index=True)
    mac: Mapped[str] = mapped_column(String(12))
    identifiers: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    profile: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # ready | valid | invalid
    replaces: Mapped[str | None] = mapped_column(String(100))  # RFC 9773 certID
    serial: Mapped[str | None] = mapped_column(String(42), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- revocation (issue 4): per issuer, CRL counters and lease, and the published CRL bytes -----
class CrlRow(Base):
    """The CRL state of one issuer, touched only by the worker that publishes it.

    ``number`` is the last CRL number handed out (``UPDATE ... SET number = number + 1``, so the
    database makes it strictly increasing); the lease columns elect the one worker that
    regenerates. Revoking transactions never write this row (they insert a
    :class:`CrlPendingRow`), so a transaction stuck anywhere cannot stall another host's
    revocations. The bytes live in :class:`CrlDataRow`.
    """

    __tablename__ = "crls"

    issuer_id: Mapped[int] = mapped_column(ForeignKey("issuers.id"), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, default=0)
    published_number: Mapped[int | None] = mapped_column(BigInteger)
    entries: Mapped[int] = mapped_column(Integer, default=0)
    this_update: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyKeyRow(Base):
    """An Idempotency-Key a client sent with a write (draft-ietf-httpapi-idempotency-key-header):
    inserted in the transaction of the write it guards, so a committed write always has it and a
    retry finds what was done (``result``: the serial(s)) instead of doing it again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal: Mapped[str] = mapped_column(String(160))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of method, path and body
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class CrlPendingRow(Base):
    """A revocation that the published CRL of its issuer does not contain yet: inserted by the
    revoking transaction (an insert takes no lock another revocation needs), deleted by the
    publication that includes it."""

    __tablename__ = "crl_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("issuers.id"), index=True)
    serial: Mapped[str] = mapped_column(String(42))
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CrlDataRow(Base):
    """The published CRL of one issuer, DER (the PEM variant is derived when served)."""

    __tablename__ = "crl_data"

    issuer_id: Mapped[int] = mapped_column(ForeignKey("issuers.id"), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class RateCounterRow(Base):
    """Issuance rate limits: certificates issued for one subject (``token:<id>``,
    ``acme-account:<id>``, ``mac:<MAC>``) in the fixed window that starts at ``window_start``.
    Counted in the issuing transaction (``count = count + 1``: the row lock orders concurrent
    issuers on every worker and host); rows of ended windows are deleted."""

    __tablename__ = "rate_counters"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
