"""Everything still open, for admins: every share whose link works, every request whose link
takes files or whose received files wait for retrieval, and every file in a partner's space,
each with whose it is and its deadlines, nearest deadline first (the admin's "Open links" page).

An item's deadline is when it goes: a share's link expiry; a space file's deletion; for a request
the nearer of its link's expiry (while the link takes files) and the retrieval deadline of its
earliest submission still waiting (its files are shredded then, retrieved or not).

At a registry's volumes (tens of thousands of each) the page never sorts a table: each kind is
read in deadline order from an index of its own (migration ``0016_lists_at_volume``) and SQLite
merges the kinds (a compound SELECT whose arms are each in order), stopping after a page. A
request is read by its link and by each waiting submission, and kept where its deadline is.
Pages are keyset pages on (deadline, id, kind), as the audit trail's are on its ids, so page
500 costs what page 1 costs. The count is made only when it is quick, as the audit trail's.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from relais import clock, db, paging
from relais.db import Database

KINDS = ("request", "share", "space")  # in the order they sort at one deadline and id
TEXT_LIMIT = 200
MAX_DAYS = 3650
COUNT_SECONDS = 0.03  # a count that would take longer is not made: the page says "many"

_OPEN_SHARE = "shares.deleted_at IS NULL AND shares.revoked_at IS NULL AND shares.locked_at IS NULL"
_OPEN_REQUEST = ("requests.deleted_at IS NULL AND requests.revoked_at IS NULL AND requests.locked_at IS NULL"
                 " AND requests.closed_at IS NULL")
_WAITING = "{s}.retrieved_at IS NULL AND {s}.purged_at IS NULL"


@dataclass(frozen=True)
class Filters:
    kind: str = ""  # one of KINDS, or every kind
    person: str = ""  # the owner (staff) or the partner: an address or a name, or part of one
    within_days: int | None = None  # deadline within this many days from now

    @property
    def empty(self) -> bool:
        return self == Filters()

    def query(self) -> dict[str, str]:
        """As the page's query string."""
        return {"kind": self.kind, "person": self.person,
                "within": "" if self.within_days is None else str(self.within_days)}


def from_query(params: Mapping) -> Filters:
    """The filters of a query string; whatever is unreadable is left out."""
    kind = str(params.get("kind") or "")
    within = paging.whole(str(params.get("within") or "").strip(), 5)
    return Filters(kind=kind if kind in KINDS else "", person=str(params.get("person") or "").strip()[:TEXT_LIMIT],
                   within_days=None if within is None else min(within, MAX_DAYS))


@dataclass(frozen=True)
class Key:
    """Where an item sits in the list: its deadline, its kind, its id (a file's id for space files)."""

    due: str
    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.due},{self.kind},{self.id}"


_ID = re.compile(r"[\w-]{1,64}")


def key(raw: str | None) -> Key | None:
    """A key from a query string (``after``/``before``), None when it is none."""
    parts = (raw or "").split(",")
    if len(parts) != 3 or parts[1] not in KINDS or not _ID.fullmatch(parts[2]) or len(parts[0]) > 40:
        return None
    try:
        clock.parse(parts[0])
    except ValueError:
        return None
    return Key(*parts)


class Page(list):
    """One page of open items, each a dict with ``kind``, ``due`` and its kind's details;
    ``sooner`` and ``later`` are the keys to go on from (None: nothing that way), ``count`` the
    number of items in the whole list (None: not counted, it would take too long)."""

    def __init__(self, rows, sooner: Key | None, later: Key | None, count: int | None):
        super().__init__(rows)
        self.sooner, self.later, self.count = sooner, later, count


# -- the keys, in deadline order ---------------------------------------------------------------

@dataclass(frozen=True)
class _Arm:
    """One ordered stream of keys: rows an index gives in (due, id) order, and how the person
    filter applies to them."""

    kind: str
    due: str
    id: str
    source: str
    person: str  # a condition on the owner's or partner's id, with one "{people}" placeholder


_ARMS = (
    _Arm("share", "shares.expires_at", "shares.id",
         f"FROM shares INDEXED BY shares_open_due WHERE {_OPEN_SHARE} AND shares.expires_at > :now", "shares.owner_id IN {people}"),
    # A request twice: by its link while it takes files, and by each submission waiting for
    # retrieval; _nearest keeps the one whose deadline is the request's.
    _Arm("request", "requests.expires_at", "requests.id",
         f"FROM requests INDEXED BY requests_open_due WHERE {_OPEN_REQUEST} AND requests.expires_at > :now", "requests.owner_id IN {people}"),
    _Arm("request", "s.retrieve_by", "s.request_id",
         f"FROM request_submissions AS s INDEXED BY request_submissions_waiting_due WHERE {_WAITING.format(s='s')}",
         "(SELECT owner_id FROM requests WHERE requests.id = s.request_id) IN {people}"),
    _Arm("space", "space_files.delete_at", "space_files.file_id", "FROM space_files INDEXED BY space_files_due WHERE 1",
         "space_files.partner_id IN {people}"),
)

_PEOPLE = "(SELECT id FROM users WHERE email LIKE :person ESCAPE '\\' OR name LIKE :person ESCAPE '\\')"


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(arm: _Arm, filters: Filters, start: Key | None, descending: bool) -> str:
    """The arm's conditions: the filters, and the keyset bound (the rows after ``start``, or
    before it when ``descending``), a range of the arm's index."""
    sql = arm.source
    if filters.person:
        sql += " AND " + arm.person.format(people=_PEOPLE)
    if filters.within_days is not None:
        sql += f" AND {arm.due} < :until"
    if start is not None:
        # In (due, id, kind) order: at the start's deadline and id, this kind is on the side read or not.
        inclusive = arm.kind != start.kind and (arm.kind > start.kind) != descending
        sql += f" AND ({arm.due}, {arm.id}) {'<' if descending else '>'}{'=' if inclusive else ''} (:due, :id)"
    return sql


def _arms(filters: Filters) -> list[_Arm]:
    return [arm for arm in _ARMS if not filters.kind or arm.kind == filters.kind]


def params(filters: Filters, start: Key | None, limit: int | None = None) -> dict:
    """The parameters of the arms' conditions (:func:`stream_sql`, :func:`count`)."""
    now = clock.now()
    found = {"now": clock.iso(now), "person": _like(filters.person),
             "until": clock.iso(now + timedelta(days=filters.within_days or 0)), "limit": limit}
    if start is not None:
        found.update(due=start.due, id=start.id)
    return found


def stream_sql(filters: Filters, start: Key | None, descending: bool) -> str:
    """The merged SELECT of every arm's keys (its parameters: :func:`params`)."""
    order = " DESC" if descending else ""
    return (" UNION ALL ".join(f"SELECT {arm.due} AS due, {arm.id} AS id, '{arm.kind}' AS kind"
                               f" {_where(arm, filters, start, descending)}" for arm in _arms(filters))
            + f" ORDER BY due{order}, id{order} LIMIT :limit")


def _stream(conn, filters: Filters, start: Key | None, descending: bool, limit: int) -> tuple[list[Key], bool]:
    """Up to ``limit`` keys of every arm after ``start`` (before it when ``descending``), merged
    in (due, id, kind) order, a request maybe more than once; and whether the stream goes on.

    SQLite orders by (due, id) only: a constant kind in its ORDER BY would make it sort each
    arm's rows of one deadline. Rows of two kinds with the same deadline and id (ids are random:
    in tests only) are put in order here, and a full batch ending inside such a tie leaves the
    tie to the next batch, so that none of it is lost."""
    rows = conn.execute(stream_sql(filters, start, descending), params(filters, start, limit)).fetchall()
    more = len(rows) == limit
    if more and len({row[:2] for row in rows}) > 1:
        rows = [row for row in rows if row[:2] != rows[-1][:2]]
    rows.sort(reverse=descending)
    return [Key(due, kind, id_) for due, id_, kind in rows], more


def _nearest(conn, request_ids: list[str]) -> dict[str, str]:
    """Each request's deadline: the nearer of its link's expiry (while it takes files) and its
    earliest submission waiting for retrieval."""
    names = {f"r{n}": value for n, value in enumerate(dict.fromkeys(request_ids))}
    rows = conn.execute(
        f"SELECT requests.id, CASE WHEN {_OPEN_REQUEST} AND requests.expires_at > :now THEN requests.expires_at END,"
        f" (SELECT min(w.retrieve_by) FROM request_submissions AS w WHERE w.request_id = requests.id"
        f" AND {_WAITING.format(s='w')}) FROM requests WHERE requests.id IN ({','.join(':' + n for n in names)})",
        {"now": clock.now_iso(), **names}).fetchall()
    return {row[0]: min(d for d in row[1:] if d is not None) for row in rows if row[1] or row[2]}


def keys(conn, filters: Filters, start: Key | None = None, descending: bool = False,
         limit: int = paging.PER_PAGE) -> list[Key]:
    """Up to ``limit`` items after ``start`` (before it when ``descending``), in that direction,
    each request once: where its deadline is. The merged stream is read in batches; a request
    read again where it is not due (a later submission, its link after a submission) is skipped."""
    found: list[Key] = []
    while len(found) < limit:
        size = 2 * (limit - len(found)) + 10
        batch, more = _stream(conn, filters, start, descending, size)
        nearest = _nearest(conn, [k.id for k in batch if k.kind == "request"]) if any(
            k.kind == "request" for k in batch) else {}
        for k in batch:
            if (k.kind != "request" or nearest.get(k.id) == k.due) and (not found or found[-1] != k):
                found.append(k)
        if not more or not batch:
            break
        start = batch[-1]
    return found[:limit]


def count(conn, filters: Filters) -> int | None:
    """Every item the filters find (each request once); None when counting would take longer
    than COUNT_SECONDS."""
    parts = []
    for kind in KINDS:
        arms = [arm for arm in _arms(filters) if arm.kind == kind]
        if arms:
            union = " UNION ".join(f"SELECT {arm.id} {_where(arm, filters, None, False)}" for arm in arms)
            parts.append(f"(SELECT count(*) FROM ({union}))")
    try:
        with db.time_limit(conn, COUNT_SECONDS):
            return conn.execute("SELECT " + " + ".join(parts), params(filters, None)).fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "interrupt" not in str(exc):
            raise
        return None


# -- what each item shows ------------------------------------------------------------------------

_DETAILS = {
    "share": (
        "SELECT shares.id, shares.created_at, shares.expires_at, users.id AS owner_id, users.email AS owner_email,"
        " users.name AS owner_name,"
        " (SELECT group_concat(email, ', ') FROM share_recipients WHERE share_id = shares.id) AS recipients,"
        " (SELECT count(*) FROM share_files WHERE share_id = shares.id) AS files,"
        " (SELECT count(*) FROM link_events WHERE kind = 'share' AND object_id = shares.id AND event = 'download')"
        "  AS downloads"
        " FROM shares JOIN users ON users.id = shares.owner_id WHERE shares.id IN ({ids})"
    ),
    "request": (
        "SELECT requests.id, requests.recipient, requests.created_at, requests.expires_at, requests.several,"
        f" ({_OPEN_REQUEST} AND requests.expires_at > :now) AS link_open,"
        " users.id AS owner_id, users.email AS owner_email, users.name AS owner_name,"
        " (SELECT coalesce(sum(files), 0) FROM request_submissions WHERE request_id = requests.id) AS files_received,"
        " (SELECT count(*) FROM request_files JOIN request_submissions AS w ON w.id = request_files.submission_id"
        f"  WHERE request_files.request_id = requests.id AND request_files.retrieved_at IS NULL"
        f"  AND {_WAITING.format(s='w')}) AS files_waiting,"
        f" (SELECT min(retrieve_by) FROM request_submissions AS w WHERE w.request_id = requests.id"
        f"  AND {_WAITING.format(s='w')}) AS retrieve_by"
        " FROM requests JOIN users ON users.id = requests.owner_id WHERE requests.id IN ({ids})"
    ),
    "space": (
        "SELECT space_files.file_id AS id, files.name, files.size, space_files.direction, space_files.placed_at,"
        " space_files.delete_at, space_files.retrieved_at, users.id AS partner_id, users.email AS partner_email,"
        " users.name AS partner_name, institutions.name AS institution"
        " FROM space_files JOIN files ON files.id = space_files.file_id JOIN users ON users.id = space_files.partner_id"
        " LEFT JOIN partners ON partners.user_id = space_files.partner_id"
        " LEFT JOIN institutions ON institutions.id = partners.institution_id WHERE space_files.file_id IN ({ids})"
    ),
}


def _details(conn, page_keys: list[Key]) -> list[dict]:
    found: dict[tuple[str, str], dict] = {}
    for kind, sql in _DETAILS.items():
        ids = [k.id for k in page_keys if k.kind == kind]
        if ids:
            names = {f"i{n}": value for n, value in enumerate(ids)}
            rows = conn.execute(sql.format(ids=",".join(":" + name for name in names)), {"now": clock.now_iso(), **names})
            columns = [c[0] for c in rows.description]
            for row in rows.fetchall():
                found[(kind, row[0])] = dict(zip(columns, row))
    return [{**found[(k.kind, k.id)], "kind": k.kind, "due": k.due} for k in page_keys if (k.kind, k.id) in found]


def page(conn, filters: Filters, after: Key | None = None, before: Key | None = None,
         per_page: int = paging.PER_PAGE) -> Page:
    """One page of open items, nearest deadline first: those after key ``after``, or the page
    just before key ``before`` (going back), or the first."""
    if before is not None:
        found = keys(conn, filters, before, descending=True, limit=per_page + 1)
        has_sooner, found = len(found) > per_page, found[:per_page][::-1]
        has_later = True  # we came from there
    else:
        found = keys(conn, filters, after, limit=per_page + 1)
        has_later, found = len(found) > per_page, found[:per_page]
        has_sooner = after is not None
    if not found:
        has_sooner = has_later = False
    return Page(_details(conn, found), sooner=found[0] if has_sooner else None, later=found[-1] if has_later else None,
                count=count(conn, filters))


def listed(database: Database, filters: Filters, after: Key | None = None, before: Key | None = None) -> Page:
    """:func:`page` for the admin's page, ``paging.PER_PAGE`` items at a time."""
    return database.read_sync(page, filters, after, before, paging.PER_PAGE)
