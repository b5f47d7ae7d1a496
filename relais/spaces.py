"""A partner's space: the files the registry placed for the partner and the files the partner
sent, each deleted ``space_retention_days`` after it arrived, or once the other side has
downloaded it whole when ``space_delete_when_retrieved`` is on.

Both ways go through the upload engine (relais.uploads), into a target of their own
(relais.targets): ``space_in`` is the partner's upload into their space, ``space_out`` a staff
member placing a file for the partner. The stored file belongs to the partner's account
(``files.owner_id``), never to anyone's My files.
Who may use which target is the views' to decide (a partner only their own ``space_in``, staff
any partner's ``space_out``); here every function takes the partner's id and finds nothing of
another partner's.

The other side is told by e-mail once a batch has arrived: when the last upload of that way
into the space completes (one message for files sent together), and else by the retention job,
which also catches a message a crash kept from going.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from relais import audit, clock, emails, files, mail, paging, settings
from relais.db import Database, Row
from relais.refusal import Size

TO_PARTNER, FROM_PARTNER = "to_partner", "from_partner"
DIRECTIONS = (TO_PARTNER, FROM_PARTNER)
KIND_OF = {FROM_PARTNER: "space_in", TO_PARTNER: "space_out"}  # the upload target of each way
FILE_COLUMNS = "files.id, files.storage_name, files.name, files.size, files.sha256"
_SELECT = ("SELECT files.*, space_files.partner_id, space_files.direction, space_files.placed_by,"
           " space_files.placed_at, space_files.delete_at, space_files.retrieved_at,"
           " placers.name AS placed_by_name, placers.email AS placed_by_email"
           " FROM space_files JOIN files ON files.id = space_files.file_id"
           " JOIN users AS placers ON placers.id = space_files.placed_by")


@dataclass(frozen=True)
class SpaceFile(Row):
    id: str
    name: str
    size: int
    sha256: str
    media_type: str
    storage_name: str
    owner_id: int
    state: str
    created_at: str
    completed_at: str | None
    partner_id: int
    direction: str
    placed_by: int
    placed_by_name: str
    placed_by_email: str
    placed_at: str
    delete_at: str
    retrieved_at: str | None

    def stored(self) -> files.StoredFile:
        """The file as the download code serves it."""
        return files.StoredFile.from_row(self.__dict__)


def list_files(database: Database, partner_id: int, direction: str, page: int = 1,
               per_page: int = paging.PER_PAGE) -> paging.Page:
    """One page of the files of one way in this partner's space, newest first (a space of 2,000
    files shown whole took 700 ms a page)."""
    where = " WHERE space_files.partner_id = ? AND space_files.direction = ?"
    rows, page, total = database.read_sync(
        paging.fetch, "SELECT count(*) FROM space_files" + where,
        _SELECT + where + " ORDER BY space_files.placed_at DESC, files.id", [partner_id, direction], page, per_page)
    return paging.Page([SpaceFile.from_row(row) for row in rows], page, per_page, total)


def newest_of_partners(database: Database, partner_ids: list[int], per_way: int) -> dict[int, list[SpaceFile]]:
    """The ``per_way`` newest files of each way of these partners' spaces ({partner id: files},
    those the registry placed first, each way newest first; a partner with none is left out).

    One ``LIMIT`` per partner and way, each read from space_files_partner: a partner may hold
    2,000 files, and the institution's page showed (and read) every one of them."""

    def read(conn) -> dict[int, list[SpaceFile]]:
        found: dict[int, list[SpaceFile]] = {}
        for partner_id in partner_ids:
            for direction in (TO_PARTNER, FROM_PARTNER):
                for row in conn.query(_SELECT + " WHERE space_files.partner_id = ? AND space_files.direction = ?"
                                      " ORDER BY space_files.placed_at DESC, files.id LIMIT ?",
                                      [partner_id, direction, per_way]):
                    found.setdefault(partner_id, []).append(SpaceFile.from_row(dict(row)))
        return found

    return database.read_sync(read)


def counts(database: Database, partner_ids: list[int]) -> dict[int, dict[str, int]]:
    """For each of these partners with files in their space: how many each way, and how many of
    those the other side has not retrieved yet ({partner id: {"to_partner": n, "from_partner": n,
    "waiting": n}})."""
    found: dict[int, dict[str, int]] = {}
    marks = ",".join("?" * len(partner_ids))
    for row in database.query("SELECT partner_id, direction, count(*) AS n, sum(retrieved_at IS NULL) AS waiting"
                              f" FROM space_files WHERE partner_id IN ({marks}) GROUP BY partner_id, direction",
                              partner_ids):
        entry = found.setdefault(row["partner_id"], {TO_PARTNER: 0, FROM_PARTNER: 0, "waiting": 0})
        entry[row["direction"]] = row["n"]
        entry["waiting"] += row["waiting"]
    return found


def get(database: Database, partner_id: int, file_id: str) -> SpaceFile | None:
    """A file of this partner's space, either way; None for any other (another partner's is as
    absent as a missing one)."""
    row = database.query_one(_SELECT + " WHERE space_files.file_id = ? AND space_files.partner_id = ?",
                             [file_id, partner_id])
    return SpaceFile.from_row(row) if row else None


def chosen(database: Database, partner_id: int, file_ids: list[str]) -> list[SpaceFile]:
    """The files of this partner's space among ``file_ids`` (others are left out), in that order."""
    found = [get(database, partner_id, file_id) for file_id in dict.fromkeys(file_ids)]
    return [f for f in found if f is not None]


def uploads_on_their_way(database: Database, partner_id: int, direction: str) -> list[dict]:
    """Unfinished uploads of one way into the space (staff's: of every staff member)."""
    return database.query(
        'SELECT uploads.id, uploads.length, uploads."offset", files.name FROM uploads JOIN files ON files.id = uploads.file_id'
        " WHERE uploads.target_kind = ? AND (uploads.target_id = ? OR uploads.target_id LIKE ?) ORDER BY uploads.created_at",
        [KIND_OF[direction], str(partner_id), f"{partner_id}:%"])


# -- arriving: inside the transaction that completes the upload --------------------------------------

def deliver(db, partner_id: int, direction: str, placed_by: int, file_id: str) -> None:
    """The finished file joins the space, with the date it will be deleted."""
    now = clock.now()
    days = settings.get(db, "space_retention_days")
    db.execute("INSERT INTO space_files (file_id, partner_id, direction, placed_by, placed_at, delete_at)"
               " VALUES (?, ?, ?, ?, ?, ?)",
               [file_id, partner_id, direction, placed_by, clock.iso(now), clock.iso(now + timedelta(days=days))])
    row = db.execute("SELECT name, size, sha256 FROM files WHERE id = ?", [file_id]).fetchone()
    partner_email = db.execute("SELECT email FROM users WHERE id = ?", [partner_id]).fetchone()[0]
    audit.record(db, audit.SYSTEM, "space.placed" if direction == TO_PARTNER else "space.sent", partner_email,
                 file=file_id, name=row[0], size=row[1], sha256=row[2], by=placed_by)


def notify(database: Database, base_url: str, partner_id: int | None = None, direction: str | None = None,
           only_when_idle: bool = True) -> int:
    """Tell the other side what arrived and was not told yet: one message per space and way.
    With ``only_when_idle`` a way with uploads still on their way waits (their batch is told
    when the last one completes, or by the retention job). Returns how many messages were queued."""
    where, params = ["space_files.notified_at IS NULL"], []
    if partner_id is not None:
        where.append("space_files.partner_id = ?")
        params.append(partner_id)
    if direction is not None:
        where.append("space_files.direction = ?")
        params.append(direction)
    pending = database.query("SELECT DISTINCT partner_id, direction FROM space_files WHERE " + " AND ".join(where),
                             params)
    sent = 0
    for row in pending:
        if only_when_idle and uploads_on_their_way(database, row["partner_id"], row["direction"]):
            continue
        sent += database.write(_tell, base_url, row["partner_id"], row["direction"])
    return sent


def _tell(db, base_url: str, partner_id: int, direction: str) -> int:
    rows = list(db.query(_SELECT + " WHERE space_files.partner_id = ? AND space_files.direction = ?"
                         " AND space_files.notified_at IS NULL ORDER BY space_files.placed_at, files.id",
                         [partner_id, direction]))
    if not rows:  # another pass told them meanwhile
        return 0
    partner = db.execute("SELECT users.email, users.name, users.language, contacts.email, contacts.language"
                         " FROM partners JOIN users ON users.id = partners.user_id"
                         " JOIN users AS contacts ON contacts.id = partners.contact_id WHERE partners.user_id = ?",
                         [partner_id]).fetchone()
    email, name, language, contact_email, contact_language = partner
    listed = [{"name": r["name"], "size": Size(r["size"]), "sha256": r["sha256"], "delete_at": r["delete_at"]}
              for r in rows]
    if direction == TO_PARTNER:  # the partner hears of what the registry placed
        subject, text, html = emails.render("space_placed", language, files=listed, link=f"{base_url}/space",
                                            by=rows[-1]["placed_by_name"] or rows[-1]["placed_by_email"])
        mail.queue(db, audit.SYSTEM, to=email, to_name=name, subject=subject, text=text, html=html,
                   kind="space_placed", object=email, language=language)
    else:  # their contact person hears of what the partner sent
        subject, text, html = emails.render("space_received", contact_language, files=listed, partner=name or email,
                                            link=f"{base_url}/partners/{partner_id}")
        mail.queue(db, audit.SYSTEM, to=contact_email, subject=subject, text=text, html=html,
                   kind="space_received", object=email, language=contact_language)
    db.execute("UPDATE space_files SET notified_at = ? WHERE file_id IN (%s)" % ",".join("?" * len(rows)),
               [clock.now_iso(), *[r["id"] for r in rows]])
    return 1


# -- retrieving and deleting ---------------------------------------------------------------------------

def record_retrieval(database: Database, who: audit.Who, by_partner: bool, downloaded: list[SpaceFile]) -> None:
    """Files the other side downloaded whole: retrieved (the first time), which the retention job
    deletes at once when ``space_delete_when_retrieved`` is on. The side a file came from
    downloading it again changes nothing."""
    theirs = [f for f in downloaded if (f.direction == TO_PARTNER) == by_partner and f.retrieved_at is None]
    if not theirs:
        return

    def mark(db) -> None:
        now = clock.now_iso()
        for f in theirs:
            if db.execute("UPDATE space_files SET retrieved_at = ? WHERE file_id = ? AND retrieved_at IS NULL",
                          [now, f.id]).rowcount:
                audit.record(db, who, "space.retrieved", _partner_email(db, f.partner_id), file=f.id, name=f.name)

    database.write(mark)


def _partner_email(db, partner_id: int) -> str:
    return db.execute("SELECT email FROM users WHERE id = ?", [partner_id]).fetchone()[0]


def delete(database: Database, files_dir, who: audit.Who, partner_id: int, file_id: str) -> bool:
    """Crypto-shred one file of this partner's space (either side may); False when there is none."""

    def doomed(db) -> list[dict]:
        return list(db.query(f"SELECT {FILE_COLUMNS}, space_files.direction FROM files JOIN space_files"
                             " ON space_files.file_id = files.id WHERE files.id = ? AND space_files.partner_id = ?",
                             [file_id, partner_id]))

    def record(db, rows: list[dict]) -> bool:
        for row in rows:
            audit.record(db, who, "space.delete", _partner_email(db, partner_id), file=row["id"], name=row["name"],
                         size=row["size"], sha256=row["sha256"], direction=row["direction"])
        return bool(rows)

    return files.shred(database, files_dir, doomed, record)


def purge(database: Database, files_dir) -> int:
    """Shred the space files that are due: past ``delete_at``, or retrieved with
    ``space_delete_when_retrieved`` on. Each file is its own transaction that checks it is still
    due, so two runs at once, or a run cut off, delete each file once. Returns how many went."""
    now = clock.now_iso()
    when_retrieved = database.read_sync(settings.get, "space_delete_when_retrieved")
    due = ("(space_files.delete_at <= ?" + (" OR space_files.retrieved_at IS NOT NULL)" if when_retrieved else ")"))
    candidates = [row["file_id"] for row in database.query(f"SELECT file_id FROM space_files WHERE {due}", [now])]
    gone = 0
    for file_id in candidates:
        def doomed(db, file_id=file_id) -> list[dict]:
            return list(db.query(f"SELECT {FILE_COLUMNS}, space_files.partner_id, space_files.direction,"
                                 " space_files.delete_at FROM files JOIN space_files ON space_files.file_id = files.id"
                                 f" WHERE files.id = ? AND {due}", [file_id, now]))

        def record(db, rows: list[dict]) -> int:
            for row in rows:
                audit.record(db, audit.SYSTEM, "space.purge", _partner_email(db, row["partner_id"]), file=row["id"],
                             name=row["name"], sha256=row["sha256"], direction=row["direction"],
                             reason="space_deadline" if row["delete_at"] <= now else "space_retrieved")
            return len(rows)

        gone += files.shred(database, files_dir, doomed, record)
    return gone
