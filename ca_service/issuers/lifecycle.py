"""The life of our CAs: set-up (a root and an issuing CA in the key store, or an issuing CA
whose certificate comes from an external root: CSR out, certificate in), rotation of the issuing
CA, retirement, and the listing operators see. States are :class:`~ca_service.domain.IssuerState`."""

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
    parse_subject,
)
from ca_service.authority.issuer import CaUrls, Issuer, pem
from ca_service.config import Settings
from ca_service.domain import IssuerRecord, IssuerRole, IssuerState, KeyType
from ca_service.errors import CAError, Kind
from ca_service.keystore import check_sealing, create_key, display_uri, load_key, reseal_key
from ca_service.keystore.wrapping import ensure_wrapping_key
from ca_service.store import Database, audit
from ca_service.store import issuers as store
from ca_service.store.db import exclusive

DEFAULT_ROOT_SUBJECT = "/O=ca-service development/CN=ca-service Development Root CA"
DEFAULT_ISSUING_SUBJECT = "/O=ca-service development/CN=ca-service Device Issuing CA"


@dataclass(frozen=True)
class InitResult:
    root_name: str | None
    issuing_name: str
    csr_pem: str | None


def external_root_name(root: x509.Certificate) -> str:
    """The name an external root gets when its first issuing CA is imported (and so the name in
    its CRL and certificate URLs): ``root-`` and 12 hex digits of its SHA-256 fingerprint."""
    return f"root-{root.fingerprint(hashes.SHA256()).hex()[:12]}"


def root_urls(settings: Settings, root_name: str) -> CaUrls:
    """The root CRL and certificate URLs that issuing CA certificates under ``root_name`` carry."""
    return CaUrls.of(settings.public_url, root_name)


def extension_text(settings: Settings, root_name: str) -> str:
    """The openssl ``-extfile`` lines that put the root's CRL and certificate URLs into the
    issuing CA certificate an external root signs (what ``init --issuing-csr-only`` and a CSR
    rotation tell the operator)."""
    urls = root_urls(settings, root_name)
    return f"crlDistributionPoints = URI:{urls.crl}\nauthorityInfoAccess = caIssuers;URI:{urls.certificate}\n"


def records(db: Database) -> list[IssuerRecord]:
    with db.read() as session:
        return store.all_issuers(session)


def require_active(db: Database) -> None:
    """Refuse (CONFLICT, naming the next step) unless an issuing CA is active. Neither migrates
    nor creates anything: production runs ``ca-service db upgrade`` and ``init`` itself."""
    found = records(db)
    if any(r.role is IssuerRole.ISSUING and r.state is IssuerState.ACTIVE for r in found):
        return
    if any(r.role is IssuerRole.ISSUING and r.state is IssuerState.PENDING for r in found):
        raise CAError(
            Kind.CONFLICT,
            "The issuing CA is waiting for its certificate: run 'ca-service issuer import' first.",
        )
    raise CAError(
        Kind.CONFLICT,
        "There is no issuing CA: run 'ca-service init' first (or serve without --require-ca for a "
        "development CA).",
    )


def _add(
    session: Session,
    name: str,
    role: IssuerRole,
    state: IssuerState,
    key_uri: str,
    cert: x509.Certificate | None,
    subject: x509.Name,
    parent_id: int | None,
) -> int:
    return store.add(
        session,
        name=name,
        role=role,
        state=state,
        subject=subject.rfc4514_string(),
        key_uri=key_uri,
        certificate_pem=pem(cert) if cert else None,
        parent_id=parent_id,
        not_before=cert.not_valid_before_utc if cert else None,
        not_after=cert.not_valid_after_utc if cert else None,
    )


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


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
    production: bool = False,
) -> InitResult:
    """Create the CA. Refuses when any CA already exists: a CA is never overwritten (two
    processes or hosts creating one at once take turns; the second is refused). Before any key
    is made, the file key store's passphrase must be fit to seal them (see
    :func:`~ca_service.keystore.check_sealing`; ``production``: not kept in the home)."""
    with exclusive(db.url, "ca-init"):
        return _initialize(
            db,
            settings,
            issuing_key_type=issuing_key_type,
            root_key_type=root_key_type,
            issuing_subject=issuing_subject,
            root_subject=root_subject,
            issuing_key_uri=issuing_key_uri,
            root_key_uri=root_key_uri,
            csr_only=csr_only,
            production=production,
        )


def _initialize(
    db: Database,
    settings: Settings,
    *,
    issuing_key_type: str,
    root_key_type: str,
    issuing_subject: str,
    root_subject: str,
    issuing_key_uri: str | None,
    root_key_uri: str | None,
    csr_only: bool,
    production: bool,
) -> InitResult:
    if records(db):
        raise CAError(Kind.CONFLICT, "A CA already exists in this database; refusing to overwrite it.")
    stamp = _stamp()
    issuing_name, root_name = f"issuing-{stamp}", f"root-{stamp}"
    issuing_uri = issuing_key_uri or f"file:keys/{issuing_name}.pem"
    root_uri = root_key_uri or f"file:keys/{root_name}.pem"
    check_sealing(settings, (issuing_uri,) if csr_only else (issuing_uri, root_uri), production=production)
    ensure_wrapping_key(settings)  # fails early (wrong PIN, no token) before any CA key is made
    i_subject = parse_subject(issuing_subject)
    i_key = create_key(issuing_uri, KeyType.parse(issuing_key_type), settings)
    if csr_only:
        csr = issuing_csr(i_key, i_subject)
        with db.write() as session:
            _add(
                session,
                issuing_name,
                IssuerRole.ISSUING,
                IssuerState.PENDING,
                issuing_uri,
                None,
                i_subject,
                None,
            )
            audit.record(
                session, actor="cli", action="ca.init", detail={"issuing": issuing_name, "mode": "csr-only"}
            )
        return InitResult(None, issuing_name, csr.public_bytes(serialization.Encoding.PEM).decode())
    r_subject = parse_subject(root_subject)
    r_key = create_key(root_uri, KeyType.parse(root_key_type), settings)
    root = create_root(r_key, r_subject)
    issuing = create_issuing(r_key, root, i_key.public_key(), i_subject, root_urls(settings, root_name))
    with db.write() as session:
        root_id = _add(
            session, root_name, IssuerRole.ROOT, IssuerState.ACTIVE, root_uri, root, r_subject, None
        )
        _add(
            session,
            issuing_name,
            IssuerRole.ISSUING,
            IssuerState.ACTIVE,
            issuing_uri,
            issuing,
            i_subject,
            root_id,
        )
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
            r
            for r in store.all_issuers(session)
            if r.role is IssuerRole.ISSUING and r.state is IssuerState.PENDING
        ]
        if not pending:
            raise CAError(
                Kind.CONFLICT,
                "No issuing CA is waiting for its certificate; "
                "run 'ca-service init --issuing-csr-only' first.",
            )
        record = pending[-1]
        check_issuing_import(issuing, root, load_key(record.key_uri, settings))
        root_name = external_root_name(root)
        root_record = store.by_name(session, root_name)
        # a rotation under the same external root reuses its record
        root_id = (
            root_record.id
            if root_record is not None
            else _add(session, root_name, IssuerRole.ROOT, IssuerState.EXTERNAL, "", root, root.subject, None)
        )
        previous = store.active_issuing(session)
        if previous is not None:
            store.set_state(session, previous.id, IssuerState.RETIRING)
        store.activate(
            session,
            record.id,
            certificate_pem=pem(issuing),
            subject=issuing.subject.rfc4514_string(),
            parent_id=root_id,
            not_before=issuing.not_valid_before_utc,
            not_after=issuing.not_valid_after_utc,
        )
        audit.record(
            session,
            actor="cli",
            action="ca.import",
            detail={
                "issuing": record.name,
                "root": root_name,
                "retiring": previous.name if previous is not None else None,
            },
        )
        return record.name


@dataclass(frozen=True)
class RotateResult:
    issuing_name: str
    retiring_name: str | None  # None while the new issuer waits for its certificate
    csr_pem: str | None
    root_name: str  # the root that signs (or is asked to sign) the new issuing CA


def _newest_revoked(session: Session) -> IssuerRecord | None:
    revoked = [
        r
        for r in store.all_issuers(session)
        if r.role is IssuerRole.ISSUING and r.state is IssuerState.REVOKED
    ]
    return revoked[-1] if revoked else None


def _fresh_name(session: Session, stamp: str) -> str:
    name, n = f"issuing-{stamp}", 1
    while store.by_name(session, name) is not None:
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
    revocation data for its certificates until the last of them expires. After the root revoked
    the active issuing CA (there is none then), the newest revoked one is replaced."""
    retire_finished(db)
    with db.read() as session:
        current = store.active_issuing(session) or _newest_revoked(session)
        root_record = store.root(session)
        if current is None or current.certificate_pem is None or root_record is None:
            raise CAError(
                Kind.CONFLICT, "There is no active issuing CA to rotate; run 'ca-service init' first."
            )
        if any(
            r.role is IssuerRole.ISSUING and r.state is IssuerState.PENDING
            for r in store.all_issuers(session)
        ):
            raise CAError(
                Kind.CONFLICT,
                "An issuing CA is already waiting for its certificate; "
                "finish it with 'ca-service issuer import' first.",
            )
        name = _fresh_name(session, _stamp())
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
    kind = KeyType.parse(key_type) if key_type else KeyType.of(current_cert.public_key())
    external = csr_only or root_record.state is IssuerState.EXTERNAL or not root_record.key_uri
    if not external:
        root_key = load_key(root_record.key_uri, settings)  # before making a key: fail early
    key = create_key(key_uri, kind, settings)
    detail: dict[str, object] = {"issuing": name, "previous": current.name, "key_uri": display_uri(key_uri)}
    if external:
        csr = issuing_csr(key, new_subject)
        with db.write() as session:
            _add(session, name, IssuerRole.ISSUING, IssuerState.PENDING, key_uri, None, new_subject, None)
            audit.record(session, actor=actor, action="ca.rotate", detail={**detail, "mode": "csr"})
        csr_text = csr.public_bytes(serialization.Encoding.PEM).decode()
        return RotateResult(name, None, csr_text, root_record.name)
    assert root_record.certificate_pem is not None
    root_cert = x509.load_pem_x509_certificate(root_record.certificate_pem.encode())
    urls = root_urls(settings, root_record.name)
    cert = create_issuing(root_key, root_cert, key.public_key(), new_subject, urls)  # type: ignore[arg-type]
    with db.write() as session:
        if current.state is IssuerState.ACTIVE and not store.set_state(
            session, current.id, IssuerState.RETIRING, expected=IssuerState.ACTIVE
        ):
            raise CAError(Kind.CONFLICT, "The issuing CA changed during the rotation; run it again.")
        _add(
            session, name, IssuerRole.ISSUING, IssuerState.ACTIVE, key_uri, cert, new_subject, root_record.id
        )
        audit.record(session, actor=actor, action="ca.rotate", detail=detail)
    retiring = current.name if current.state is IssuerState.ACTIVE else None
    return RotateResult(name, retiring, None, root_record.name)


def reseal_keys(db: Database, settings: Settings, actor: str = "cli") -> list[str]:
    """Seal every CA key of ours that lives in the file key store again with scrypt at the
    current cost, where it is sealed the old way (PBKDF2) or more cheaply; the keys themselves
    do not change. Returns the names of the CAs whose key files were rewritten (audited)."""
    done = [r.name for r in records(db) if r.key_uri and reseal_key(r.key_uri, settings)]
    if done:
        with db.write() as session:
            audit.record(session, actor=actor, action="ca.reseal", detail={"issuers": done})
    return done


def retire_finished(db: Database, now: datetime | None = None) -> list[str]:
    """Mark ``retiring`` issuers ``retired`` once nothing they issued is still valid (their last
    certificate, or their own certificate, has expired). Returns the names retired."""
    now = now or datetime.now(UTC)
    done: list[str] = []
    with db.write() as session:
        for record in store.all_issuers(session):
            if record.state is not IssuerState.RETIRING:
                continue
            last = store.last_expiry(session, record.id)
            if (last is None or last <= now) or (record.not_after is not None and record.not_after <= now):
                store.set_state(session, record.id, IssuerState.RETIRED)
                done.append(record.name)
                audit.record(session, actor="system", action="ca.retire", detail={"issuing": record.name})
    return done


def check_keys(db: Database, settings: Settings) -> list[tuple[str, str]]:
    """Load the key of every CA that signs (and the root, when its key is here) in this
    process, sign and verify a test message with it, and say per CA "ok" or why not (this is
    the operator's terminal: the reason may name the key). When all are usable, the check is
    recorded, and every worker offers credentials again that a key store had refused."""
    results: list[tuple[str, str]] = []
    for record in records(db):
        wanted = record.state.signs or (record.role is IssuerRole.ROOT and record.key_uri)
        if not wanted or not record.certificate_pem:
            continue
        try:
            cert = x509.load_pem_x509_certificate(record.certificate_pem.encode())
            Issuer(record.name, cert, load_key(record.key_uri, settings), settings.public_url).self_test()
            results.append((record.name, "ok"))
        except CAError as exc:
            results.append((record.name, exc.detail))
    if results and all(outcome == "ok" for _, outcome in results):
        with db.write() as session:
            store.mark_checked(session, datetime.now(UTC))
            audit.record(session, actor="cli", action="ca.check", detail={"issuers": [n for n, _ in results]})
    return results


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
        found = store.all_issuers(session)
        stats = store.certificate_stats(session)
    names = {r.id: r.name for r in found}
    return [
        IssuerInfo(
            name=r.name,
            role=r.role.value,
            state=r.state.value,
            subject=r.subject,
            key_uri=display_uri(r.key_uri) if r.key_uri else "",
            not_before=r.not_before,
            not_after=r.not_after,
            parent=names.get(r.parent_id) if r.parent_id is not None else None,
            certificates=stats.get(r.id, (0, None))[0],
            last_certificate_expires=stats.get(r.id, (0, None))[1],
        )
        for r in found
    ]
