"""One-time password links: a link's password, shown once to whoever opens the link first.

The password is encrypted under a key derived from the password link's token, which only the
link holds: the database alone cannot reveal it. Opening it deletes it in the same transaction.
"""

from __future__ import annotations

import os
from datetime import timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from relais import audit, clock, passwords, throttle
from relais.db import Database
from relais.links.core import MAX_TOKEN, Kind

PASSWORD_LINK_DAYS = 7


def _cipher(token: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"relais password link").derive(token.encode())
    return AESGCM(key)


def create_password_link(db, who: audit.Who, kind: Kind, object_id: str, password: str) -> str:
    """Inside the write that creates the link; returns the token for the one-time link."""
    token = passwords.new_token()
    nonce = os.urandom(12)
    # The object's id is the associated data: a sealed password opens for its own link only.
    sealed = nonce + _cipher(token).encrypt(nonce, password.encode(), object_id.encode())
    db.execute(
        "INSERT INTO password_links (token_hash, kind, object_id, secret, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [passwords.token_hash(token), kind.name, object_id, sealed, clock.now_iso(),
         clock.in_(timedelta(days=PASSWORD_LINK_DAYS))],
    )
    audit.record(db, who, f"{kind.name}.password_link_create", object_id)
    return token


def password_link_valid(database: Database, token: str) -> bool:
    return bool(token) and len(token) <= MAX_TOKEN and database.query_one(
        "SELECT 1 FROM password_links WHERE token_hash = ? AND expires_at > ?", [passwords.token_hash(token), clock.now_iso()]
    ) is not None


def reveal_password(database: Database, who: audit.Who, token: str) -> str | None:
    """Show the password once: the row is deleted in the same transaction that reads it."""
    if not token or len(token) > MAX_TOKEN or throttle.client_locked(database, who.ip):
        return None

    def take(db):
        row = db.execute(
            "SELECT kind, object_id, secret FROM password_links WHERE token_hash = ? AND expires_at > ?",
            [passwords.token_hash(token), clock.now_iso()],
        ).fetchone()
        if row is None:
            # An unknown token has no kind: the refusal keeps the name admins already query.
            audit.record(db, who, "share.password_link_refused")
            throttle.count_client_failure(db, who.ip)
            return None
        kind, object_id, sealed = row[0], row[1], bytes(row[2])
        db.execute("DELETE FROM password_links WHERE token_hash = ?", [passwords.token_hash(token)])
        audit.record(db, who, f"{kind}.password_link_opened", object_id)
        return _cipher(token).decrypt(sealed[:12], sealed[12:], object_id.encode()).decode()

    return database.write(take)
