"""The audit trail: append-only and chained with a key the database does not hold.

Each row's ``hash`` is HMAC-SHA256, under the audit key, over the previous row's hash and a
canonical JSON of the row's own fields, so changing, removing or inserting a row anywhere breaks
every hash after it. SQLite triggers refuse UPDATE and DELETE; the chain catches whoever bypasses
them. The key is derived from the master key (``RELAIS_MASTER_KEY_FILE``, outside the data folder
in production): someone with the database file alone can drop the triggers and rewrite rows, but
cannot recompute hashes that ``verify`` accepts. What a key cannot show: rows cut off the end of
the chain (the last rows deleted and nothing after them), which only a copy kept elsewhere (a
backup, the log shipped off the machine) reveals.

Rows written before the chain had a key (``hash`` plain SHA-256, anyone could recompute it) are
accepted only at the start of the chain and only once an ``audit.seal`` row, itself keyed, names
the last of them and its hash: ``python app.py seal-audit`` writes it, once, at the upgrade. It is
a command, not something every start does, because a start cannot tell an old chain from one that
someone rewrote from the first row with plain hashes: sealing is the operator saying "this is the
trail as it was when the key came".

Every text stored here goes through :func:`safe_text` first: names, user agents and addresses come
from outside, and the audit page, its CSV export and an admin's terminal must never receive a line
feed that starts a fake row, an escape sequence, or a bidi override that reorders what is shown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from relais import clock, paging

GENESIS = "0" * 64
FIELDS = ("at", "actor", "action", "object", "ip", "user_agent", "detail")
# Registered on every connection the app's Database opens (see connection_setup); a connection
# without it, so without the key, cannot append to the trail at all.
MAC_FUNCTION = "relais_audit_mac"
SEAL = "audit.seal"


@dataclass(frozen=True)
class Who:
    """Who did something, from where: built once per request by the views."""

    actor: str = "system"
    ip: str = ""
    user_agent: str = ""


SYSTEM = Who()


class NothingToSeal(Exception):
    """seal-audit found no rows from before the key that still need sealing."""


class ChainBroken(Exception):
    """seal-audit refuses to seal a chain that is broken for another reason than being old."""


# -- keeping stored text harmless ------------------------------------------------------------------

# C0 and C1 controls (Cc: line feed, carriage return, ESC, CSI...), the line and paragraph
# separators U+2028/U+2029 (line breaks to JavaScript and to some CSV readers), bidi embeddings,
# overrides and isolates, and lone surrogates (not text). The backslash too, so that an escape
# typed by an attacker ("\x0a" as four characters) cannot pass for one made here.
_UNSAFE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: str) -> str:
    r"""``text`` with every unsafe character written as an escape: a line feed as ``\x0a``, ESC as
    ``\x1b``, U+2028 as ``\u2028``, a backslash as ``\\``. Everything else, accents and other
    scripts included, is kept as it is."""
    return _UNSAFE.sub(_escape, text)


def _safe_value(value):
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(str(k)): _safe_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_safe_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return safe_text(str(value))


# -- the key and the hashes ------------------------------------------------------------------------

def derive_key(master: bytes) -> bytes:
    """The audit key: HKDF-SHA256 of the master key, with its own label, so it is never the key
    that wraps files and learning one says nothing about the other."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"RELAIS-AUDIT-CHAIN1").derive(master)


def _message(prev_hash: str, row: dict) -> str:
    return prev_hash + json.dumps([row[name] for name in FIELDS], ensure_ascii=False, separators=(",", ":"))


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def row_hash(key: bytes, prev_hash: str, row: dict) -> str:
    """What a row's ``hash`` must be."""
    return _mac(key, _message(prev_hash, row))


def plain_hash(prev_hash: str, row: dict) -> str:
    """The hash of a row written before the chain had a key (and what a forger can recompute)."""
    return hashlib.sha256(_message(prev_hash, row).encode("utf-8")).hexdigest()


def connection_setup(key: bytes):
    """For ``Database(prepare_connection=...)``: gives each connection the keyed hash as an SQL
    function. The key thus reaches every write without being passed through each caller, and it
    lives only in the process, never in the database."""

    def prepare(conn) -> None:
        conn.create_function(MAC_FUNCTION, 1, lambda message: _mac(key, message), deterministic=True)

    return prepare


# -- writing ---------------------------------------------------------------------------------------

def record(db, who: Who, action: str, object: str = "", **detail) -> None:
    """Append one event. Call inside a write (``Database.write``) so it commits with the change."""
    last = db.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev_hash = last[0] if last else GENESIS
    row = {
        "at": clock.now_iso(),
        "actor": safe_text(who.actor),
        "action": safe_text(action),
        "object": safe_text(str(object)),
        "ip": safe_text(who.ip),
        "user_agent": safe_text(who.user_agent[:500]),
        "detail": json.dumps(_safe_value(detail), ensure_ascii=False, sort_keys=True),
    }
    db.execute(
        "INSERT INTO audit_log (at, actor, action, object, ip, user_agent, detail, prev_hash, hash)"
        f" VALUES (:at, :actor, :action, :object, :ip, :user_agent, :detail, :prev_hash, {MAC_FUNCTION}(:message))",
        {**row, "prev_hash": prev_hash, "message": _message(prev_hash, row)},
    )


# -- checking --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Walk:
    checked: int
    problem: str | None
    # The rows from before the key that no seal names yet: (first id, last id, last row's hash).
    unsealed: tuple[int, int, str] | None = None


def _walk(database, key: bytes) -> Walk:
    return database.read_sync(_walk_rows, key)


def _walk_rows(conn, key: bytes) -> Walk:
    """The chain's rows in order on one connection (one read: the walk sees one state of it)."""
    prev_hash = GENESIS
    checked = 0
    old: tuple[int, int, str] | None = None  # the rows from before the key, while we are in them
    keyed = sealed = False
    columns = ", ".join(FIELDS)
    for row in conn.query(f"SELECT id, {columns}, prev_hash, hash FROM audit_log ORDER BY id"):
        where = f"row {row['id']}"
        if row["prev_hash"] != prev_hash:
            return Walk(checked, f"{where}: does not follow the previous row (a row was removed or inserted)")
        if row["hash"] == row_hash(key, prev_hash, row):
            keyed = True
            if old and row["action"] == SEAL:
                named = json.loads(row["detail"])
                sealed = sealed or (named.get("through") == old[1] and named.get("hash") == old[2])
        elif not keyed and row["hash"] == plain_hash(prev_hash, row):
            old = (old[0] if old else row["id"], row["id"], row["hash"])
        elif row["hash"] == plain_hash(prev_hash, row):
            return Walk(checked, f"{where}: its hash was not made with this instance's audit key (the row was"
                                 " rewritten by someone without the key, or the master key is not the one it was"
                                 " written with)")
        else:
            return Walk(checked, f"{where}: its content does not match its hash (the row was altered)")
        prev_hash = row["hash"]
        checked += 1
    if old and not sealed:
        return Walk(checked, f"rows {old[0]} to {old[1]} have hashes made without the audit key and no seal names"
                             " them: rewritten by someone without the key, or written before the chain had one"
                             " (then run `python app.py seal-audit` once)", unsealed=old)
    return Walk(checked, None)


def verify(database, key: bytes) -> tuple[int, str | None]:
    """Walk the whole chain. Returns (rows checked, None) or (rows checked, what broke where)."""
    walk = _walk(database, key)
    return walk.checked, walk.problem


def seal(database, key: bytes) -> tuple[int, int]:
    """Accept the rows written before the chain had a key, as they are now: append a keyed
    ``audit.seal`` row naming the last of them and its hash. Returns their first and last id."""
    walk = _walk(database, key)
    if walk.unsealed is None:
        if walk.problem:
            raise ChainBroken(walk.problem)
        raise NothingToSeal()
    first, last, last_hash = walk.unsealed
    database.write(lambda db: record(db, SYSTEM, SEAL, f"{first}-{last}", through=last, hash=last_hash))
    return first, last


def _matching(text: str) -> tuple[str, list]:
    """The WHERE clause of a search: events whose actor, action, object or address contain text."""
    if not text:
        return "", []
    return "WHERE actor LIKE ? OR action LIKE ? OR object LIKE ? OR ip LIKE ?", [f"%{text}%"] * 4


def search(conn, text: str = "", limit: int = 200) -> list[dict]:
    """Most recent events first, optionally those whose actor, action or object contain text."""
    where, params = _matching(text)
    return [dict(r) for r in conn.query(f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?", [*params, limit])]


def search_page(database, text: str = "", page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """One page of :func:`search`'s events, most recent first: the trail only grows, the page does not."""
    where, params = _matching(text)
    rows, page, total = database.read_sync(
        paging.fetch, f"SELECT count(*) FROM audit_log {where}", f"SELECT * FROM audit_log {where} ORDER BY id DESC",
        params, page, per_page,
    )
    return paging.Page(rows, page, per_page, total)
