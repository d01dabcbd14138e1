"""Setting up our CAs: a root and an issuing CA in the key store, or an issuing CA whose
certificate comes from an external root (CSR out, certificate in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ca_service.authority.ca import (
    check_issuing_import,
    create_issuing,
    create_root,
    issuing_csr,
    parse_subject,
)
from ca_service.authority.issuer import pem
from ca_service.authority.keys import create_key, load_key
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
    csr_only: bool = False,
) -> InitResult:
    """Create the CA. Refuses when any CA already exists: a CA is never overwritten."""
    if issuer_records(db):
        raise CAError(Kind.CONFLICT, "A CA already exists in this database; refusing to overwrite it.")
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
    root_uri = f"file:keys/{root_name}.pem"
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
        root_row = _row(
            f"root-{root.fingerprint(hashes.SHA256()).hex()[:12]}",
            "root",
            "external",
            "",
            root,
            root.subject,
            None,
        )
        session.add(root_row)
        session.flush()
        row.certificate_pem = pem(issuing)
        row.not_before = issuing.not_valid_before_utc
        row.not_after = issuing.not_valid_after_utc
        row.subject = issuing.subject.rfc4514_string()
        row.parent_id = root_row.id
        row.state = "active"
        audit.record(
            session, actor="cli", action="ca.import", detail={"issuing": row.name, "root": root_row.name}
        )
        return row.name
