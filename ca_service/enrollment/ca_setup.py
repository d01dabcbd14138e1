"""Setting up our CAs: a root and an issuing CA in the key store, or an issuing CA whose
certificate comes from an external root (CSR out, certificate in); rotating the issuing CA.

Issuer states: ``pending`` (key made, waiting for its certificate) -> ``active`` (signs new
certificates) -> ``retiring`` (replaced by a rotation; still signs revocation data for what it
issued) -> ``retired`` (its last certificate has expired). Roots are ``active`` (key in our key
store) or ``external`` (offline, certificate only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy.orm import Session

from ca_service.authority.ca import (
    check_issuing_import,
    create_issuing,
    create_root,
    issuing_csr,
    key_type_of,
    parse_subject,
)
from ca_service.authority.issuer import pem
from ca_service.authority.keys import create_key, display_uri, ensure_wrapping_key, load_key
from ca_service.config import Settings
from ca_service.domain import IssuerRecord, KeyType
from ca_service.errors import CAError, Kind
from ca_service.store import Database, audit
from ca_service.store import issuers as issuer_repo
from ca_service.store.models import IssuerRow, utcnow

DEFAULT_ROOT_SUBJECT = "/O=ca-service development/CN=ca-service Development Root CA"
DEFAULT_ISSUING_SUBJECT = "/O=ca-service development/CN=ca-service Device Issuing CA"


@dataclass(frozen=True)
class InitResult:
    root_name: str | None
    issuing_name: str
    csr_pem: str | None


def _key_type(text: str) -> KeyType:
    try:
        return KeyType(text)
    except ValueError as exc:
        allowed = ", ".join(k.value for k in KeyType)
        raise CAError(Kind.MALFORMED, f"Unknown key type '{text[:20]}'; use one of {allowed}.") from exc


def issuer_records(db: Database) -> list[IssuerRecord]:
    with db.read() as session:
        return [
            IssuerRecord(r.id, r.name, r.role, r.state, r.key_uri, r.certificate_pem, r.parent_id)
            for r in issuer_repo.all_issuers(session)
        ]


def _row(
    name: str,
    role: str,
    state: str,
    key_uri: str,
    cert: x509.Certificate | None,
    subject: x509.Name,
    parent_id: int | None,
) -> IssuerRow:
    return IssuerRow(
        name=name,
        role=role,
        state=state,
        subject=subject.rfc4514_string(),
        key_uri=key_uri,
        certificate_pem=pem(cert) if cert else None,
        parent_id=parent_id,
        not_before=cert.not_valid_before_utc if cert else None,
        not_after=cert.not_valid_after_utc if cert else None,
        created_at=utcnow(),
    )


def initialize(
    db: Database,
    settings: Settings,
    *,
    issuing_key_type: str = "ec-p256",
    root_key_type: str = "ec-p384",
    issuing_subject: str = DEFAULT_ISSUING_SUBJECT,
    root_subject: str = DEFAULT_ROOT_SUBJECT,
    issuing_key_uri: str | None = None,
    root_key_uri: str | None = None,
    csr_only: bool = False,
) -> InitResult:
    """Create the CA. Refuses when any CA already exists: a CA is never overwritten."""
    if issuer_records(db):
        raise CAError(Kind.CONFLICT, "A CA already exists in this database; refusing to overwrite it.")
    ensure_wrapping_key(settings)  # fails early (wrong PIN, no token) before any CA key is made
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    issuing_name = f"issuing-{stamp}"
    issuing_uri = issuing_key_uri or f"file:keys/{issuing_name}.pem"
    i_subject = parse_subject(issuing_subject)
    i_key = create_key(issuing_uri, _key_type(issuing_key_type), settings)
    if csr_only:
        csr = issuing_csr(i_key, i_subject)
        with db.write() as session:
            session.add(_row(issuing_name, "issuing", "pending", issuing_uri, None, i_subject, None))
            audit.record(
                session, actor="cli", action="ca.init", detail={"issuing": issuing_name, "mode": "csr-only"}
            )
        return InitResult(None, issuing_name, csr.public_bytes(serialization.Encoding.PEM).decode())
    root_name = f"root-{stamp}"
    root_uri = root_key_uri or f"file:keys/{root_name}.pem"
    r_subject = parse_subject(root_subject)
    r_key = create_key(root_uri, _key_type(root_key_type), settings)
    root = create_root(r_key, r_subject)
    issuing = create_issuing(r_key, root, i_key.public_key(), i_subject)
    with db.write() as session:
        root_row = _row(root_name, "root", "active", root_uri, root, r_subject, None)
        session.add(root_row)
        session.flush()
        session.add(_row(issuing_name, "issuing", "active", issuing_uri, issuing, i_subject, root_row.id))
        audit.record(
            session, actor="cli", action="ca.init", detail={"root": root_name, "issuing": issuing_name}
        )
    return InitResult(root_name, issuing_name, None)


def import_issuer(db: Database, settings: Settings, issuing_pem: bytes, root_pem: bytes) -> str:
    """Activate the pending issuing CA with a certificate signed by an external root."""
    try:
        issuing = x509.load_pem_x509_certificate(issuing_pem)
        root = x509.load_pem_x509_certificate(root_pem)
    except ValueError as exc:
        raise CAError(Kind.MALFORMED, "Both files must hold one PEM certificate.") from exc
    with db.write() as session:
        pending = [
            r for r in issuer_repo.all_issuers(session) if r.role == "issuing" and r.state == "pending"
        ]
        if not pending:
            raise CAError(
                Kind.CONFLICT,
                "No issuing CA is waiting for its certificate; "
                "run 'ca-service init --issuing-csr-only' first.",
            )
        row = pending[-1]
        check_issuing_import(issuing, root, load_key(row.key_uri, settings))
        root_name = f"root-{root.fingerprint(hashes.SHA256()).hex()[:12]}"
        root_row = issuer_repo.by_name(session, root_name)
        if root_row is None:  # a rotation under the same external root reuses its row
            root_row = _row(root_name, "root", "external", "", root, root.subject, None)
            session.add(root_row)
            session.flush()
        previous = issuer_repo.active_issuing(session)
        if previous is not None:
            previous.state = "retiring"
        row.certificate_pem = pem(issuing)
        row.not_before = issuing.not_valid_before_utc
        row.not_after = issuing.not_valid_after_utc
        row.subject = issuing.subject.rfc4514_string()
        row.parent_id = root_row.id
        row.state = "active"
        audit.record(
            session,
            actor="cli",
            action="ca.import",
            detail={
                "issuing": row.name,
                "root": root_row.name,
                "retiring": previous.name if previous is not None else None,
            },
        )
        return row.name


def issuer_version(db: Database) -> object:
    """A cheap fingerprint of the stored issuer set (see ``IssuerCache``)."""
    with db.read() as session:
        return issuer_repo.version(session)


@dataclass(frozen=True)
class RotateResult:
    issuing_name: str
    retiring_name: str | None  # None while the new issuer waits for its certificate
    csr_pem: str | None


def _fresh_name(session: Session, stamp: str) -> str:
    name, n = f"issuing-{stamp}", 1
    while issuer_repo.by_name(session, name) is not None:
        n += 1
        name = f"issuing-{stamp}-{n}"
    return name


def rotate(
    db: Database,
    settings: Settings,
    *,
    key_uri: str | None = None,
    key_type: str | None = None,
    subject: str | None = None,
    csr_only: bool = False,
    actor: str = "cli",
) -> RotateResult:
    """Replace the active issuing CA: a new key in the key store and a certificate signed by the
    root key (when the root is in our key store), or a CSR for an external root that
    :func:`import_issuer` completes. The previous issuer becomes ``retiring``: it keeps signing
    revocation data for its certificates until the last of them expires."""
    retire_finished(db)
    with db.read() as session:
        current = issuer_repo.active_issuing(session)
        root_row = issuer_repo.root(session)
        if current is None or current.certificate_pem is None or root_row is None:
            raise CAError(
                Kind.CONFLICT, "There is no active issuing CA to rotate; run 'ca-service init' first."
            )
        if any(r.role == "issuing" and r.state == "pending" for r in issuer_repo.all_issuers(session)):
            raise CAError(
                Kind.CONFLICT,
                "An issuing CA is already waiting for its certificate; "
                "finish it with 'ca-service issuer import' first.",
            )
        name = _fresh_name(session, datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
    current_cert = x509.load_pem_x509_certificate(current.certificate_pem.encode())
    if key_uri is None:
        if not current.key_uri.startswith("file:"):
            raise CAError(
                Kind.MALFORMED,
                "The current issuing key is not a file key; give --key-uri for the new key "
                "(e.g. the same pkcs11: URI with a new object=).",
            )
        key_uri = f"file:keys/{name}.pem"
    new_subject = parse_subject(subject) if subject else current_cert.subject
    kind = _key_type(key_type) if key_type else key_type_of(current_cert.public_key())
    external = csr_only or root_row.state == "external" or not root_row.key_uri
    if not external:
        root_key = load_key(root_row.key_uri, settings)  # before making a key: fail early
    key = create_key(key_uri, kind, settings)
    detail: dict[str, object] = {"issuing": name, "previous": current.name, "key_uri": display_uri(key_uri)}
    if external:
        csr = issuing_csr(key, new_subject)
        with db.write() as session:
            session.add(_row(name, "issuing", "pending", key_uri, None, new_subject, None))
            audit.record(session, actor=actor, action="ca.rotate", detail={**detail, "mode": "csr"})
        return RotateResult(name, None, csr.public_bytes(serialization.Encoding.PEM).decode())
    assert root_row.certificate_pem is not None
    root_cert = x509.load_pem_x509_certificate(root_row.certificate_pem.encode())
    cert = create_issuing(root_key, root_cert, key.public_key(), new_subject)  # type: ignore[arg-type]
    with db.write() as session:
        previous = issuer_repo.by_id(session, current.id)
        if previous is None or previous.state != "active":
            raise CAError(Kind.CONFLICT, "The issuing CA changed during the rotation; run it again.")
        previous.state = "retiring"
        session.add(_row(name, "issuing", "active", key_uri, cert, new_subject, root_row.id))
        audit.record(session, actor=actor, action="ca.rotate", detail=detail)
    return RotateResult(name, current.name, None)


def retire_finished(db: Database, now: datetime | None = None) -> list[str]:
    """Mark ``retiring`` issuers ``retired`` once nothing they issued is still valid (their last
    certificate, or their own certificate, has expired). Returns the names retired."""
    now = now or datetime.now(UTC)
    done: list[str] = []
    with db.write() as session:
        for row in issuer_repo.all_issuers(session):
            if row.state != "retiring":
                continue
            last = issuer_repo.last_expiry(session, row.id)
            if (last is None or last <= now) or (row.not_after is not None and row.not_after <= now):
                row.state = "retired"
                done.append(row.name)
                audit.record(session, actor="system", action="ca.retire", detail={"issuing": row.name})
    return done


@dataclass(frozen=True)
class IssuerInfo:
    """One of our CAs as listed to operators: never key material, never a PIN."""

    name: str
    role: str
    state: str
    subject: str
    key_uri: str
    not_before: datetime | None
    not_after: datetime | None
    parent: str | None
    certificates: int
    last_certificate_expires: datetime | None


def list_issuers(db: Database) -> list[IssuerInfo]:
    with db.read() as session:
        rows = issuer_repo.all_issuers(session)
        stats = issuer_repo.certificate_stats(session)
    names = {r.id: r.name for r in rows}
    return [
        IssuerInfo(
            name=r.name,
            role=r.role,
            state=r.state,
            subject=r.subject,
            key_uri=display_uri(r.key_uri) if r.key_uri else "",
            not_before=r.not_before,
            not_after=r.not_after,
            parent=names.get(r.parent_id) if r.parent_id is not None else None,
            certificates=stats.get(r.id, (0, None))[0],
            last_certificate_expires=stats.get(r.id, (0, None))[1],
        )
        for r in rows
    ]
