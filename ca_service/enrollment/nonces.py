"""ACME nonces that cost no write to issue (RFC 8555 section 6.5).

A nonce is ``base64url(issued_at[4] || random[12] || tag[16])`` where ``tag`` is HMAC-SHA256 over
the first 16 octets with a 256-bit key that every worker and host reads from the database (made
once, on first use). Any worker can check a nonce it never saw: the tag proves we issued it and
``issued_at`` bounds its age. Single use is enforced by recording only redeemed nonces (a
primary key refuses the second redemption, across workers and hosts); a record is useless once
its nonce has expired and is purged now and then. Issued but unused nonces leave no trace, so a
``HEAD new-nonce`` or a garbage POST writes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from ca_service.clock import SYSTEM, Clock
from ca_service.store import Database
from ca_service.store import acme as store

RANDOM_BYTES = 12
TAG_BYTES = 16
NONCE_CHARS = 43  # base64url of 32 octets, unpadded
PURGE_ONE_IN = 64  # redemptions that also purge expired records


class Nonces:
    """Mints and redeems nonces for one worker; the key is loaded once."""

    def __init__(self, db: Database, lifetime_seconds: int, clock: Clock = SYSTEM) -> None:
        self.db = db
        self.lifetime = lifetime_seconds
        self.clock = clock
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def _hmac_key(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    with self.db.write() as session:
                        self._key = store.nonce_key(session, secrets.token_bytes(32))
        return self._key

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._hmac_key(), body, hashlib.sha256).digest()[:TAG_BYTES]

    def mint(self) -> str:
        """A fresh nonce; no database write (after the key was loaded once)."""
        body = struct.pack(">I", int(self.clock.now().timestamp())) + secrets.token_bytes(RANDOM_BYTES)
        return base64.urlsafe_b64encode(body + self._tag(body)).rstrip(b"=").decode("ascii")

    def check(self, presented: object) -> tuple[str, datetime] | None:
        """(record key, expiry) of a nonce we issued that has not expired; None for anything
        else. Pure computation: a forged or garbage nonce never reaches the database."""
        if not isinstance(presented, str) or len(presented) != NONCE_CHARS:
            return None
        try:
            raw = base64.urlsafe_b64decode(presented + "=")
        except (binascii.Error, ValueError):
            return None
        body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        if len(raw) != 4 + RANDOM_BYTES + TAG_BYTES or not hmac.compare_digest(tag, self._tag(body)):
            return None
        issued = struct.unpack(">I", body[:4])[0]
        age = self.clock.now().timestamp() - issued
        if not -60 <= age <= self.lifetime:  # a minute of clock skew between hosts
            return None
        return presented, datetime.fromtimestamp(issued, UTC) + timedelta(seconds=self.lifetime)

    def redeem(
        self, session: Session, presented: object, signer: tuple[int, str] | None = None
    ) -> bool:
        """Use ``presented`` once, in the caller's transaction: True when it is ours, unexpired
        and not redeemed before (by any worker or host). With ``signer`` (account id, key
        thumbprint) only while that account is valid and still has that key, in the same
        statement; False says only that one of the conditions failed."""
        checked = self.check(presented)
        if checked is None:
            return False
        value, expires_at = checked
        if not store.redeem_nonce(session, value, expires_at, signer):
            return False
        if secrets.randbelow(PURGE_ONE_IN) == 0:
            store.purge_nonces(session, self.clock.now())
        return True
