"""Searching the audit trail: by person, action, object, date range and free text, through indexes.

``LIKE '%q%'`` over four columns read the whole table (254 ms at 500,000 rows for a search that
found nothing). Here every filter has its index: the actor, the action, the object and the time
are B-tree indexes of ``audit_log``; the free text goes through ``audit_search``, an FTS5 index of
each row's actor, action, object, address and detail that an insert trigger keeps in step
(migration ``0012_audit_search``; the trail only grows). A word matches the words that begin
with it (``ada`` finds ``ada@registry.example``, ``10.9.100`` finds ``10.9.100.1``), but a last
part of one or two characters only itself (``10.9`` is 10 then 9: "every word beginning with 9"
would be most of the index, merged anew for each query); several words must all match. When the
words match many rows, the rows are read through the table and checked here instead (see _Query). Text that is part of an action's label in the reader's language (``Aangemeld``,
``Échec de la connexion``) finds that action too.

Pages are keyset pages (:class:`relais.paging.Cursor`), most recent first: "older than row N",
never ``OFFSET``, and the count is capped at :data:`COUNT_CAP`, so that no page reads more than a
page's worth of a million rows. The date range is in the registry's zone (:mod:`relais.times`),
``until`` included. Times are also turned into a range of ids, which the table and the index are
ordered by: ids grow with time, and the range allows for a clock set back by up to
:data:`CLOCK_SLACK` (the exact times are checked on each row all the same).
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, time, timedelta

from relais import clock, db, i18n, paging, times
from relais.audit_labels import ACTIONS, ANONYMOUS, SYSTEM

TEXT_LIMIT = 200  # characters of any one filter
COUNT_CAP = 10_000  # beyond this a page says "more than 10,000"
COUNT_SECONDS = 0.03  # a count that would take longer is not made: the page says "many"
MANY_WORDS = 5_000  # words matching more rows than this let the other filters lead (see _Query)
SCAN_BATCH = 500  # rows read at a time when they are checked against the words here
COUNT_SCAN = 2_000  # rows checked at most to count them; past this the page says "many"
SCAN_LIMIT = 2_000  # rows checked at most for a page before the text index leads after all
CLOCK_SLACK = timedelta(hours=1)
LABEL_MIN = 3  # characters of free text before it is looked for in the labels
PREFIX_MIN = 3  # a word's last part shorter than this is a whole word, not the start of one
EXPORT_BATCH = 500


@dataclass(frozen=True)
class Filters:
    person: str = ""  # an address or a name (of an account), or part of one
    action: str = ""  # an action's code, exactly
    object: str = ""  # an object, exactly (a file's or a share's id, an address...)
    since: date | None = None  # from this day, in the registry's zone
    until: date | None = None  # to this day, included
    text: str = ""  # free text

    @property
    def empty(self) -> bool:
        return self == Filters()

    def query(self) -> dict[str, str]:
        """As the query string of the page and of its export (``from``/``to`` for the dates)."""
        return {"person": self.person, "action": self.action, "object": self.object, "q": self.text,
                "from": self.since.isoformat() if self.since else "", "to": self.until.isoformat() if self.until else ""}

    def recorded(self) -> dict:
        """The filters that are set, for the audit row of an export."""
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items() if v}


def _day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw.strip()) if raw and len(raw) <= 10 else None
    except ValueError:
        return None


def from_query(params: Mapping) -> Filters:
    """The filters of a query string; whatever is unreadable (a date that is none) is left out."""
    def text(name: str) -> str:
        return str(params.get(name) or "").strip()[:TEXT_LIMIT]

    return Filters(person=text("person"), action=text("action"), object=text("object"), text=text("q"),
                   since=_day(params.get("from")), until=_day(params.get("to")))


# -- from filters to SQL -------------------------------------------------------------------------

def _fold(text: str) -> str:
    """Lowercase and without accents: how labels and typed words are compared."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def actions_labelled(text: str, language: str) -> list[str]:
    """The actions whose label in ``language`` contains ``text`` (accents and case aside)."""
    wanted = _fold(" ".join(text.split()))
    if len(wanted) < LABEL_MIN:
        return []
    return sorted(code for code, label in ACTIONS.items() if wanted in _fold(i18n.gettext(language, label)))


def action_choices(language: str) -> list[tuple[str, str]]:
    """(code, label in ``language``) of every action, by label: the options of the action filter."""
    return sorted(((code, i18n.gettext(language, label)) for code, label in ACTIONS.items()),
                  key=lambda choice: (_fold(choice[1]), choice[0]))


def _phrase(word: str, prefix: bool = True) -> str:
    prefix = prefix and len(_tokens(word)[-1]) >= PREFIX_MIN
    return '"' + word.replace('"', '""') + '"' + ("*" if prefix else "")


def _tokens(text: str) -> list[str]:
    """Words as the index's tokenizer (unicode61, accents removed) cuts them: runs of letters and digits."""
    return re.findall(r"[^\W_]+", _fold(text))


def _words(text: str) -> list[str]:
    return [w for w in text.split() if _tokens(w)]


def _matches(row: dict, words: list[str], codes: list[str]) -> bool:
    """What the index's query does, for one row: each word's tokens in a row, the last one as a
    prefix (or the row's action among those the text names by label)."""
    if row["action"] in codes:
        return True
    tokens = _tokens(" ".join(str(row[k]) for k in ("actor", "action", "object", "ip", "detail")))
    for word in words:
        wanted = _tokens(word)
        n = len(wanted)
        last = wanted[-1]
        short = len(last) < PREFIX_MIN
        if not any(tokens[i:i + n - 1] == wanted[:-1] and (tokens[i + n - 1] == last if short
                                                           else tokens[i + n - 1].startswith(last))
                   for i in range(len(tokens) - n + 1)):
            return False
    return True


def match_expression(text: str, language: str, prefix: bool = True) -> str:
    """The FTS5 query of the free text: each word as a prefix, all of them, in the words column;
    or, when the text is part of action labels, those actions (the code column). Without
    ``prefix``, the words as they are: a query FTS5 answers lazily (a prefix query first merges
    the row lists of every word that starts so), to tell whether they match many rows."""
    words = _words(text)
    if not words:
        return ""
    expression = "words : (" + " ".join(_phrase(w, prefix) for w in words) + ")"
    codes = actions_labelled(text, language)
    if codes:
        expression = f"({expression}) OR code : (" + " OR ".join("a" + c.encode().hex().upper() for c in codes) + ")"
    return expression


def _utc(day: date) -> str:
    return clock.iso(datetime.combine(day, time(0), tzinfo=times.registry_zone()))


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass
class _Query:
    conditions: list[str]
    params: list
    match: str
    low: int | None  # ids from here
    high: int | None  # to here (both None: no bound); low > high: nothing can match
    # Who leads the reading: the text index (its matches in id order), or, when the words match
    # many rows (an FTS5 prefix query then merges every word that starts so, on each query), the
    # table and its indexes, each row they find checked against the words here (_matches), as
    # long as that finds the page within SCAN_LIMIT rows.
    by_text: bool = True
    words: tuple[str, ...] = ()  # the free text's words and the actions it names, when the
    codes: tuple[str, ...] = ()  # rows are read by the table's indexes and checked here (_matches)


def _query(conn, filters: Filters, language: str) -> _Query:
    conditions, params = [], []
    if filters.person:
        # Accounts whose address or name contains it, and the actor typed exactly (an address
        # that is no account, in a failed login); Relais itself and the anonymous by their labels.
        actors = [filters.person.lower()]
        for code, label in (("system", SYSTEM), ("anonymous", ANONYMOUS)):
            if _fold(filters.person) in _fold(i18n.gettext(language, label)):
                actors.append(code)
        conditions.append("actor IN (SELECT email FROM users WHERE email LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\'"
                          + "".join(" UNION ALL SELECT ?" for _ in actors) + ")")
        params += [_like(filters.person), _like(filters.person), *actors]
    if filters.action:
        conditions.append("action = ?")
        params.append(filters.action)
    if filters.object:
        conditions.append("object = ?")
        params.append(filters.object)
    low = high = None
    if filters.since:
        start = _utc(filters.since)
        conditions.append("at >= ?")
        params.append(start)
        # Any row older than the start by more than the slack ends the rows that cannot match.
        before = conn.execute("SELECT id FROM audit_log WHERE at < ? ORDER BY at DESC LIMIT 1",
                              [clock.iso(clock.parse(start) - CLOCK_SLACK)]).fetchone()
        low = before[0] + 1 if before else 0
    if filters.until:
        end = _utc(filters.until + timedelta(days=1))
        conditions.append("at < ?")
        params.append(end)
        after = conn.execute("SELECT id FROM audit_log WHERE at >= ? ORDER BY at LIMIT 1",
                             [clock.iso(clock.parse(end) + CLOCK_SLACK)]).fetchone()
        high = after[0] - 1 if after else None
    match = match_expression(filters.text, language)
    by_text = True
    if match:
        many = conn.execute("SELECT count(*) FROM (SELECT 1 FROM audit_search WHERE audit_search MATCH ? LIMIT ?)",
                            [match_expression(filters.text, language, prefix=False), MANY_WORDS + 1]).fetchone()[0]
        by_text = many <= MANY_WORDS
    return _Query(conditions, params, match, low, high, by_text, tuple(_words(filters.text)),
                  tuple(actions_labelled(filters.text, language)))


def _select(q: _Query, columns: str, bound: str, bound_value: int | None, descending: bool, limit: int) -> tuple[str, list]:
    """The SELECT of one batch of matching rows, beyond ``bound_value`` in the reading's direction."""
    by_text = bool(q.match) and q.by_text
    key = "audit_search.rowid" if by_text else "audit_log.id"
    where, params = list(q.conditions), list(q.params)
    if by_text:
        where.insert(0, "audit_search MATCH ?")
        params.insert(0, q.match)
    if q.low is not None:
        where.append(f"{key} >= ?")
        params.append(q.low)
    if q.high is not None:
        where.append(f"{key} <= ?")
        params.append(q.high)
    if bound_value is not None:
        where.append(f"{key} {bound} ?")
        params.append(bound_value)
    source = "audit_search JOIN audit_log ON audit_log.id = audit_search.rowid" if by_text else "audit_log"
    sql = (f"SELECT {columns} FROM {source}" + (" WHERE " + " AND ".join(where) if where else "")
           + f" ORDER BY {key} {'DESC' if descending else 'ASC'} LIMIT ?")
    return sql, [*params, limit]


def _checked(q: _Query) -> bool:
    """Whether the rows read must still be checked against the words (see _Query.by_text)."""
    return bool(q.match) and not q.by_text


def _read(conn, q: _Query, bound: str, bound_value: int | None, descending: bool, limit: int) -> list[dict]:
    """Up to ``limit`` matching rows beyond ``bound_value``, in the reading's direction."""
    if not _checked(q):
        sql, params = _select(q, "audit_log.*", bound, bound_value, descending, limit)
        return [dict(r) for r in conn.query(sql, params)]
    found: list[dict] = []
    start, scanned, size = bound_value, 0, 2 * limit
    while len(found) < limit:
        if scanned >= SCAN_LIMIT:  # the words are rare here after all: let the text index lead
            sql, params = _select(replace(q, by_text=True), "audit_log.*", bound, start, descending, limit)
            return [dict(r) for r in conn.query(sql, params)]
        sql, params = _select(q, "audit_log.*", bound, bound_value, descending, size)
        batch = [dict(r) for r in conn.query(sql, params)]
        found += [r for r in batch if _matches(r, q.words, q.codes)]
        scanned += len(batch)
        if len(batch) < size:
            break
        bound_value, size = batch[-1]["id"], min(2 * size, SCAN_BATCH)
    return found[:limit]


def _count(conn, q: _Query) -> tuple[int | None, bool]:
    """(matching rows up to COUNT_CAP, more than that?); (None, False) when counting them would
    take longer than COUNT_SECONDS (rows that few match among many): the page then says "many"."""
    if _checked(q):
        sql, params = _select(q, "1", "<", None, True, COUNT_SCAN + 1)
        try:
            with db.time_limit(conn, COUNT_SECONDS):
                candidates = conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "interrupt" not in str(exc):
                raise
            return None, False
        if candidates > COUNT_SCAN:
            return None, False
        sql, params = _select(q, "audit_log.*", "<", None, True, COUNT_SCAN)
        count = sum(1 for r in conn.query(sql, params) if _matches(r, q.words, q.codes))
        return min(count, COUNT_CAP), count > COUNT_CAP
    sql, params = _select(q, "1", "<", None, True, COUNT_CAP + 1)
    try:
        with db.time_limit(conn, COUNT_SECONDS):
            count = conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "interrupt" not in str(exc):
            raise
        return None, False
    return min(count, COUNT_CAP), count > COUNT_CAP


def page(conn, filters: Filters, language: str, older_than: int | None = None, newer_than: int | None = None,
         per_page: int = paging.PER_PAGE) -> paging.Cursor:
    """One page of matching events, most recent first: those older than row ``older_than``, or
    the page just before row ``newer_than`` (going back), or the most recent ones."""
    q = _query(conn, filters, language)
    if q.low is not None and q.high is not None and q.low > q.high:
        return paging.Cursor([], newer=None, older=None, count=0, capped=False)
    if newer_than is not None:
        rows = _read(conn, q, ">", newer_than, False, per_page + 1)
        has_newer = len(rows) > per_page
        rows = rows[:per_page][::-1]
        has_older = True  # we came from there
    else:
        rows = _read(conn, q, "<", older_than, True, per_page + 1)
        has_older = len(rows) > per_page
        rows = rows[:per_page]
        has_newer = older_than is not None
    if not rows:
        has_newer = has_older = False
    count, capped = _count(conn, q)
    return paging.Cursor(rows, newer=rows[0]["id"] if rows and has_newer else None,
                         older=rows[-1]["id"] if rows and has_older else None, count=count, capped=capped)


def newest_id(conn) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]


def batch_below(conn, filters: Filters, language: str, below: int, size: int = EXPORT_BATCH) -> list[dict]:
    """The next ``size`` matching rows below row ``below``, most recent first (the export's reads:
    each batch starts under the last row of the previous one, so each is as cheap as the first)."""
    q = _query(conn, filters, language)
    if q.low is not None and q.high is not None and q.low > q.high:
        return []
    return _read(conn, q, "<", below, True, size)
