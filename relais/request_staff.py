"""Requests, staff's side: the list with each request's state, the staff home's "files waiting
for you", the received files (one by one or as a zip) and their retrieval, revoke and extend.

The guest's side (unlock, upload, Transmit, the receipt) is :mod:`relais.requests`; the deadline,
reminders and purging are :mod:`relais.request_retention`. Pending files (not transmitted yet)
are never staff's: every query here asks for a submission.
"""

from __future__ import annotations

from relais import audit, clock, files, links, paging
from relais.db import Database
from relais.request_submissions import Submission
from relais.requests import KIND, Request, RequestRefused


def submissions(database: Database, request_id: str) -> list[tuple[Submission, list[dict]]]:
    """Each submission, newest first, with its files still stored (none once purged), each as
    ``{"file": StoredFile, "retrieved_at": ...}``."""
    result = []
    for row in database.query("SELECT * FROM request_submissions WHERE request_id = ? ORDER BY transmitted_at DESC",
                              [request_id]):
        held = database.query(
            "SELECT files.*, request_files.retrieved_at FROM files JOIN request_files ON request_files.file_id = files.id"
            " WHERE request_files.submission_id = ? AND files.state = 'complete' ORDER BY files.name, files.id",
            [row["id"]])
        result.append((Submission.from_row(row),
                       [{"file": files.StoredFile.from_row(r), "retrieved_at": r["retrieved_at"]} for r in held]))
    return result


def received_file(database: Database, request: Request, file_id: str) -> files.StoredFile | None:
    """A transmitted file of this request (pending ones are not staff's yet); None otherwise."""
    row = database.query_one(
        "SELECT files.* FROM files JOIN request_files ON request_files.file_id = files.id"
        " WHERE files.id = ? AND request_files.request_id = ? AND request_files.submission_id IS NOT NULL"
        " AND files.state = 'complete'", [file_id, request.id])
    return files.StoredFile.from_row(row) if row else None


def received_files(database: Database, request: Request, submission_id: str | None = None) -> list[files.StoredFile]:
    """Every transmitted file still stored (of one submission, if given), for the zip."""
    extra, params = (" AND request_files.submission_id = ?", [submission_id]) if submission_id else ("", [])
    rows = database.query(
        "SELECT files.* FROM files JOIN request_files ON request_files.file_id = files.id"
        " WHERE request_files.request_id = ? AND request_files.submission_id IS NOT NULL AND files.state = 'complete'"
        f"{extra} ORDER BY files.name, files.id", [request.id, *params])
    return [files.StoredFile.from_row(row) for row in rows]


def record_retrieval(database: Database, who: audit.Who, request: Request, downloaded: list[files.StoredFile]) -> list[str]:
    """After staff downloaded these files completely: each is retrieved, and a submission whose
    every file is, too. Returns the submissions that became retrieved by this."""

    def record(db) -> list[str]:
        now = clock.now_iso()
        for stored in downloaded:
            changed = db.execute("UPDATE request_files SET retrieved_at = ? WHERE file_id = ? AND request_id = ?"
                                 " AND retrieved_at IS NULL", [now, stored.id, request.id]).rowcount
            links.event(db, who, KIND, request.id, "download", stored.id, detail=stored.name, name=stored.name,
                        first=bool(changed))
        done = [row[0] for row in db.execute(
            "SELECT id FROM request_submissions WHERE request_id = ? AND retrieved_at IS NULL AND purged_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM request_files WHERE submission_id = request_submissions.id"
            " AND retrieved_at IS NULL)", [request.id]).fetchall()]
        for submission_id in done:
            db.execute("UPDATE request_submissions SET retrieved_at = ? WHERE id = ?", [now, submission_id])
            links.event(db, who, KIND, request.id, "retrieved", detail=submission_id, submission=submission_id)
        return done

    return database.write(record)


STATES = ("received", "waiting", "retrieved", "expired", "revoked", "locked", "deleted")


def state(request: Request, waiting: int, retrieved: int, now: str | None = None) -> str:
    """What staff see: files to retrieve come first (whatever became of the link), then why the link ended.

    ``waiting``: submissions whose files wait for retrieval; ``retrieved``: those retrieved."""
    if waiting:
        return "received"
    link = request.link_state(now)
    if link in ("deleted", "revoked", "locked"):
        return link
    if retrieved and link in ("closed", "expired"):
        return "retrieved"
    # Ended without a retrieval: nothing came, or what came was deleted at its deadline.
    return "expired" if link in ("closed", "expired") else "waiting"


_LIST = (
    "SELECT requests.*, users.email AS owner_email,"
    " (SELECT count(*) FROM request_submissions s WHERE s.request_id = requests.id AND s.retrieved_at IS NULL"
    "  AND s.purged_at IS NULL) AS waiting,"
    " (SELECT count(*) FROM request_submissions s WHERE s.request_id = requests.id AND s.retrieved_at IS NOT NULL)"
    "  AS retrieved,"
    " (SELECT min(retrieve_by) FROM request_submissions s WHERE s.request_id = requests.id AND s.retrieved_at IS NULL"
    "  AND s.purged_at IS NULL) AS retrieve_by,"
    " (SELECT coalesce(sum(files), 0) FROM request_submissions s WHERE s.request_id = requests.id) AS files_received"
    " FROM requests JOIN users ON users.id = requests.owner_id"
)


def _with_state(rows: list[dict]) -> list[dict]:
    now = clock.now_iso()
    for row in rows:
        row["state"] = state(Request.from_row(row), row["waiting"], row["retrieved"], now)
    return rows


def for_staff(database: Database, user, page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """One page of the user's requests, newest first (an admin sees everyone's), with their state
    and the earliest retrieval deadline."""
    where, params = ("", []) if user.is_admin else (" WHERE requests.owner_id = ?", [user.id])
    rows, page, total = database.read_sync(
        paging.fetch, f"SELECT count(*) FROM requests{where}",
        f"{_LIST}{where} ORDER BY requests.created_at DESC, requests.id", params, page, per_page,
    )
    return paging.Page(_with_state(rows), page, per_page, total)


def waiting_for(database: Database, owner_id: int) -> list[dict]:
    """The staff home: the owner's requests with files to retrieve, soonest deadline first, each
    with ``files_waiting`` (its files not retrieved yet)."""
    # The soonest first, from the waiting submissions in deadline order (request_submissions_waiting_due,
    # migration 0016): the first 500 of the owner's, 50 requests at most (fewer only if they have
    # more than ten waiting each); only those get their details. The details of every request of
    # the owner, filtered and sorted afterwards, took seconds at 20,000 requests.
    rows = database.query(
        "SELECT listed.*, (SELECT count(*) FROM request_files f JOIN request_submissions s ON s.id = f.submission_id"
        "  WHERE f.request_id = listed.id AND f.retrieved_at IS NULL AND s.retrieved_at IS NULL"
        "  AND s.purged_at IS NULL) AS files_waiting"
        f" FROM ({_LIST} WHERE requests.id IN (SELECT request_id FROM (SELECT s.request_id, s.retrieve_by"
        "  FROM request_submissions s INDEXED BY request_submissions_waiting_due WHERE s.retrieved_at IS NULL"
        "  AND s.purged_at IS NULL AND (SELECT owner_id FROM requests WHERE requests.id = s.request_id) = ?"
        "  ORDER BY s.retrieve_by, s.request_id LIMIT 500) GROUP BY request_id ORDER BY min(retrieve_by), request_id"
        "  LIMIT 50)) AS listed ORDER BY listed.retrieve_by, listed.id", [owner_id])
    return _with_state(rows)


def record_part(database: Database, who: audit.Who, request: Request, stored: files.StoredFile, session: str,
                start: int, sent: int) -> bool:
    """After a response of a received file ended (whole or cut off): note the bytes sent from
    ``start`` (a link event only, not in the activity). True when this login session's responses
    since the file's last complete download now cover all of it, a resumed download included;
    the caller then records the retrieval (:func:`record_retrieval`). A probe of a few bytes never
    does: only the whole file counts."""

    def record(db) -> bool:
        if sent:
            links.event(db, who, KIND, request.id, "download_part", stored.id, session=session, detail=stored.name,
                        start=start, count=sent)
        since = db.execute("SELECT coalesce(max(id), 0) FROM link_events WHERE kind = ? AND object_id = ?"
                           " AND file_id = ? AND event = 'download'", [KIND.name, request.id, stored.id]).fetchone()[0]
        return bool(sent) and links.parts_cover(db, KIND, request.id, stored.id, session, since, stored.size)

    return database.write(record)


def activity(database: Database, request_id: str, page: int = 1) -> paging.Page:
    return links.events(database, KIND, request_id, page)


def revoke(database: Database, who: audit.Who, request: Request) -> None:
    """The link stops taking files at once. Files already transmitted stay until their deadline;
    pending ones (never transmitted) go with the next purge."""

    def update(db):
        db.execute("UPDATE requests SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", [clock.now_iso(), request.id])
        links.forget(db, KIND, request.id)
        audit.record(db, who, "request.revoke", request.id)

    database.write(update)


def extend(database: Database, who: audit.Who, request: Request, days: int, by_admin: bool) -> None:
    """Move the link's expiry to ``days`` from now, never past request_max_days after creation (unless admin)."""
    new_expiry, beyond = links.extended_expiry(database, request.created_at, "request_max_days", days, by_admin,
                                               RequestRefused)

    def update(db):
        db.execute("UPDATE requests SET expires_at = ? WHERE id = ?", [new_expiry, request.id])
        audit.record(db, who, "request.extend", request.id, expires_at=new_expiry, beyond_limit=beyond)

    database.write(update)
