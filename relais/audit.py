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
the last of them and its hash. A start cannot tell such an old chain from one that someone rewrote
from its first row with plain hashes, so the fact "this chain is keyed, and which rows may be
plain" is kept outside the database: a marker file next to the master key (``<key file>.audit``),
MACed with the audit key, written by the first start of the keyed version (:func:`mark_keyed`,
which seals a genuine upgrade's old rows then). Once it exists, a plain row the marker does not
name is a forgery, and nothing seals it any more.

Every text stored here goes through :func:`safe_text` first: names, user agents and addresses come
from outside, and the audit page, its CSV export and an admin's terminal must never receive a line
feed that starts a fake row, an escape sequence, or a bidi override that reorders what is shown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from relais import clock

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


class AlreadyKeyed(Exception):
    """The marker says this chain is keyed: plain rows after what it names are forged, not old."""


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


# -- the marker: "this chain is keyed", kept where the database is not -------------------------

@dataclass(frozen=True)
class Marker:
    plain_through: int  # the last row that may have a plain hash (0: none may)
    plain_hash: str  # that row's hash (GENESIS when none)


def marker_file(master_key_file: Path) -> Path:
    """Next to the master key: outside the data folder wherever the key is, and lost with it."""
    master_key_file = Path(master_key_file)
    return master_key_file.with_name(master_key_file.name + ".audit")


def _marker_mac(key: bytes, marker: Marker) -> str:
    return _mac(key, f"RELAIS-AUDIT-KEYED:{marker.plain_through}:{marker.plain_hash}")


def read_marker(path: Path, key: bytes) -> Marker | None:
    """The marker, None if there is none yet; ChainBroken if it was not made with this key."""
    try:
        data = json.loads(Path(path).read_text())
        marker = Marker(int(data["plain_through"]), str(data["plain_hash"]))
        mac = str(data["mac"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ChainBroken(f"the audit marker {path} is unreadable ({exc.__class__.__name__})") from None
    if not hmac.compare_digest(mac, _marker_mac(key, marker)):
        raise ChainBroken(f"the audit marker {path} was not made with this instance's audit key")
    return marker


def _write_marker(path: Path, key: bytes, marker: Marker) -> None:
    text = json.dumps({"plain_through": marker.plain_through, "plain_hash": marker.plain_hash,
                       "mac": _marker_mac(key, marker)}) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # never replaces one another process wrote first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


# -- checking --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Walk:
    checked: int
    problem: str | None
    # The rows from before the key that no seal names yet: (first id, last id, last row's hash).
    unsealed: tuple[int, int, str] | None = None
    # The rows from before the key seen before the walk ended, sealed or not.
    old: tuple[int, int, str] | None = None


def _walk(database, key: bytes, marker: Marker | None) -> Walk:
    return database.read_sync(_walk_rows, key, marker)


def _walk_rows(conn, key: bytes, marker: Marker | None) -> Walk:
    """The chain's rows in order on one connection (one read: the walk sees one state of it)."""
    prev_hash = GENESIS
    checked = 0
    old: tuple[int, int, str] | None = None  # the rows from before the key, while we are in them
    keyed = sealed = False
    columns = ", ".join(FIELDS)
    for row in conn.query(f"SELECT id, {columns}, prev_hash, hash FROM audit_log ORDER BY id"):
        where = f"row {row['id']}"
        if row["prev_hash"] != prev_hash:
            return Walk(checked, f"{where}: does not follow the previous row (a row was removed or inserted)", old=old)
        if row["hash"] == row_hash(key, prev_hash, row):
            keyed = True
            if old and row["action"] == SEAL:
                named = json.loads(row["detail"])
                sealed = sealed or (named.get("through") == old[1] and named.get("hash") == old[2])
        elif (not keyed and row["hash"] == plain_hash(prev_hash, row)
              and (marker is None or row["id"] <= marker.plain_through)):
            old = (old[0] if old else row["id"], row["id"], row["hash"])
        elif row["hash"] == plain_hash(prev_hash, row):
            return Walk(checked, f"{where}: its hash was not made with this instance's audit key (the row was"
                                 " rewritten by someone without the key, or the master key is not the one it was"
                                 " written with)", old=old)
        else:
            return Walk(checked, f"{where}: its content does not match its hash (the row was altered)", old=old)
        prev_hash = row["hash"]
        checked += 1
    if old and marker is not None and old[1] == marker.plain_through and old[2] != marker.plain_hash:
        return Walk(checked, f"row {old[1]}: it is not the row the audit marker names (the rows before the key"
                             " were rewritten)", old=old)
    if old and not sealed:
        if marker is not None:
            return Walk(checked, f"rows {old[0]} to {old[1]} have hashes made without the audit key and no seal"
                                 " names them: rewritten by someone without the key", old=old)
        return Walk(checked, f"rows {old[0]} to {old[1]} have hashes made without the audit key and no seal names"
                             " them: written before the chain had one (the next start seals them) or rewritten"
                             " by someone without the key", unsealed=old, old=old)
    return Walk(checked, None, old=old)


def verify(database, key: bytes, marker_path: Path) -> tuple[int, str | None]:
    """Walk the whole chain. Returns (rows checked, None) or (rows checked, what broke where)."""
    try:
        marker = read_marker(marker_path, key)
    except ChainBroken as exc:
        return 0, str(exc)
    walk = _walk(database, key, marker)
    return walk.checked, walk.problem


def seal(database, key: bytes, marker_path: Path) -> tuple[int, int]:
    """Accept the rows written before the chain had a key, as they are now: append a keyed
    ``audit.seal`` row naming the last of them and its hash. Returns their first and last id.
    Refused (AlreadyKeyed) once the marker exists: plain rows are then forged, not old."""
    if read_marker(marker_path, key) is not None:
        raise AlreadyKeyed()
    walk = _walk(database, key, None)
    if walk.unsealed is None:
        if walk.problem:
            raise ChainBroken(walk.problem)
        raise NothingToSeal()
    first, last, last_hash = walk.unsealed

    def append(db) -> None:
        # Two processes starting at once (the server and a command): seal once.
        done = db.execute("SELECT 1 FROM audit_log WHERE action = ? AND object = ?", [SEAL, f"{first}-{last}"]).fetchone()
        if not done:
            record(db, SYSTEM, SEAL, f"{first}-{last}", through=last, hash=last_hash)

    database.write(append)
    return first, last


def mark_keyed(database, key: bytes, marker_path: Path) -> None:
    """At every start, once: record outside the database that this chain is keyed from now on.
    A genuine upgrade's plain rows (at the start of the chain, nothing else wrong) are sealed first
    and named by the marker; a chain found broken is marked as it is, so it stays reported."""
    try:
        if read_marker(marker_path, key) is not None:
            return
    except ChainBroken:  # not made with this key: verify says so; the start goes on
        return
    try:
        seal(database, key, marker_path)
    except (NothingToSeal, ChainBroken):
        pass
    old = _walk(database, key, None).old
    _write_marker(Path(marker_path), key, Marker(old[1], old[2]) if old else Marker(0, GENESIS))
