"""The audit trail: append-only and hash-chained.

Each row's ``hash`` is SHA-256 over the previous row's hash and a canonical JSON of the row's
own fields, so changing, removing or inserting a row anywhere breaks every hash after it.
SQLite triggers refuse UPDATE and DELETE; the chain catches whoever bypasses them (someone
with the file and a sqlite3 shell). ``verify`` walks the chain and says where it breaks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from relais import clock

GENESIS = "0" * 64
FIELDS = ("at", "actor", "action", "object", "ip", "user_agent", "detail")


@dataclass(frozen=True)
class Who:
    """Who did something, from where: built once per request by the views."""

    actor: str = "system"
    ip: str = ""
    user_agent: str = ""


SYSTEM = Who()


def row_hash(prev_hash: str, row: dict) -> str:
    canonical = json.dumps([row[name] for name in FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def record(db, who: Who, action: str, object: str = "", **detail) -> None:
    """Append one event. Call inside a write (``Database.write``) so it commits with the change."""
    last = db.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev_hash = last[0] if last else GENESIS
    row = {
        "at": clock.now_iso(),
        "actor": who.actor,
        "action": action,
        "object": str(object),
        "ip": who.ip,
        "user_agent": who.user_agent[:500],
        "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
    }
    db.execute(
        "INSERT INTO audit_log (at, actor, action, object, ip, user_agent, detail, prev_hash, hash)"
        " VALUES (:at, :actor, :action, :object, :ip, :user_agent, :detail, :prev_hash, :hash)",
        {**row, "prev_hash": prev_hash, "hash": row_hash(prev_hash, row)},
    )


def verify(conn) -> tuple[int, str | None]:
    """Walk the whole chain. Returns (rows checked, None) or (rows checked, what broke where)."""
    prev_hash = GENESIS
    checked = 0
    for row in conn.query(f"SELECT id, {', '.join(FIELDS)}, prev_hash, hash FROM audit_log ORDER BY id"):
        if row["prev_hash"] != prev_hash:
            return checked, f"row {row['id']}: does not follow the previous row (a row was removed or inserted)"
        if row_hash(prev_hash, row) != row["hash"]:
            return checked, f"row {row['id']}: its content does not match its hash (the row was altered)"
        prev_hash = row["hash"]
        checked += 1
    return checked, None


def search(conn, text: str = "", limit: int = 200) -> list[dict]:
    """Most recent events first, optionally those whose actor, action or object contain text."""
    where, params = "", []
    if text:
        where = "WHERE actor LIKE ? OR action LIKE ? OR object LIKE ? OR ip LIKE ?"
        params = [f"%{text}%"] * 4
    return [dict(r) for r in conn.query(f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?", [*params, limit])]
