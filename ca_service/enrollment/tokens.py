"""API tokens: created once, shown once, stored as SHA-256 hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from ca_service.domain import Principal, Role
from ca_service.errors import CAError, Kind
from ca_service.policy.scope import normalize_scope
from ca_service.store import Database, audit, tokens

TOKEN_PREFIX = "cas_"  # noqa: S105 - a marker, not a secret


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    role: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


def create_token(
    db: Database, *, name: str, role: str, scopes: tuple[str, ...] = (), actor: str = "cli"
) -> str:
    """Create a token and return it; only its hash is stored, so it cannot be shown again."""
    try:
        role_value = Role(role)
    except ValueError as exc:
        raise CAError(Kind.MALFORMED, "Role must be one of admin, provisioner, auditor.") from exc
    if not name or len(name) > 128:
        raise CAError(Kind.MALFORMED, "A token name is 1 to 128 characters.")
    clean = tuple(normalize_scope(s) for s in scopes)
    if role_value is Role.PROVISIONER and not clean:
        raise CAError(
            Kind.MALFORMED, "A provisioner token needs at least one --scope (a MAC prefix such as 7C2F80)."
        )
    if role_value is not Role.PROVISIONER and clean:
        raise CAError(
            Kind.MALFORMED,
            f"An {role_value.value} token acts on every MAC; --scope is for provisioner tokens only.",
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        tokens.add(session, name=name, role=role_value.value, scopes=clean, token_hash=token_hash(token))
        audit.record(
            session,
            actor=actor,
            action="token.create",
            detail={"name": name, "role": role, "scopes": list(clean)},
        )
    return token


def revoke_token(db: Database, name: str, actor: str = "cli") -> None:
    with db.write() as session:
        row = tokens.by_name(session, name)
        if row is None:
            raise CAError(Kind.NOT_FOUND, f"No token named '{name[:128]}'.")
        if row.revoked_at is not None:
            raise CAError(Kind.CONFLICT, f"Token '{name[:128]}' is already revoked.")
        tokens.revoke(session, row.id)
        audit.record(session, actor=actor, action="token.revoke", detail={"name": name})


def list_tokens(db: Database) -> list[TokenInfo]:
    with db.read() as session:
        return [
            TokenInfo(
                r.id, r.name, r.role, tuple(s for s in r.scopes.split(",") if s), r.created_at, r.revoked_at
            )
            for r in tokens.all_tokens(session)
        ]


def authenticate(db: Database, presented: str | None) -> Principal:
    """The principal of a bearer token, or UNAUTHORIZED. The lookup is by hash (a token has 256
    bits of entropy, so its hash reveals nothing) and the stored hash is compared in constant time."""
    if not presented:
        raise CAError(Kind.UNAUTHORIZED, "This endpoint needs 'Authorization: Bearer <token>'.")
    digest = token_hash(presented)
    row = tokens.by_hash(db, digest)
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
        raise CAError(Kind.UNAUTHORIZED, "The bearer token is unknown or revoked.")
    return Principal(
        name=row.name,
        role=Role(row.role),
        scopes=tuple(s for s in row.scopes.split(",") if s),
        token_id=row.id,
    )
