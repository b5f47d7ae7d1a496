"""Institutions: the organisations partners work for, seen whole (their partners and what waits in
their spaces). An institution is made when a partner is first given its name
(:func:`relais.partners.create`); one name is one institution whatever its case and spacing
(``name_key``), so a rename that would make two of one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from relais import audit, clock, paging
from relais.db import Database, Row
from relais.refusal import Refused


NAME_LIMIT = 200  # as every field of a partner's details (relais.partners.FIELD_LIMIT)


def key(name: str) -> str:
    """One name is one institution whatever its case and spacing."""
    return " ".join(name.split()).casefold()


def names(database: Database) -> list[str]:
    return [r["name"] for r in database.query("SELECT name FROM institutions ORDER BY name_key")]


def find_or_create(db, who: audit.Who, name: str, user_id: int | None) -> int:
    """The id of the institution of this name (inside a write), made and audited if it is new."""
    row = db.execute("SELECT id FROM institutions WHERE name_key = ?", [key(name)]).fetchone()
    if row:
        return row[0]
    institution_id = db.execute("INSERT INTO institutions (name, name_key, created_at, created_by) VALUES (?, ?, ?, ?)",
                                [name, key(name), clock.now_iso(), user_id]).lastrowid
    audit.record(db, who, "institution.create", name)
    return institution_id


class InstitutionError(Refused):
    """``name_required``, ``name_taken`` (another institution has it) or ``not_found``."""


@dataclass(frozen=True)
class Institution(Row):
    id: int
    name: str
    partners: int  # every partner account of the institution, deactivated ones too
    active_partners: int  # active accounts whose access lasts now
    files: int  # in their spaces, both ways
    waiting: int  # of those, not retrieved yet by the other side


# The counts are subqueries, not a join: a join of partners and their files would count each
# partner once per file. ``:now`` is the moment access is judged at (clock.now, not SQLite's).
_SELECT = (
    "SELECT institutions.id, institutions.name,"
    " (SELECT count(*) FROM partners WHERE partners.institution_id = institutions.id) AS partners,"
    " (SELECT count(*) FROM partners JOIN users ON users.id = partners.user_id"
    "   WHERE partners.institution_id = institutions.id AND users.active = 1 AND partners.access_until > :now)"
    "   AS active_partners,"
    " (SELECT count(*) FROM space_files JOIN partners ON partners.user_id = space_files.partner_id"
    "   WHERE partners.institution_id = institutions.id) AS files,"
    " (SELECT count(*) FROM space_files JOIN partners ON partners.user_id = space_files.partner_id"
    "   WHERE partners.institution_id = institutions.id AND space_files.retrieved_at IS NULL) AS waiting"
    " FROM institutions"
)


def list_page(database: Database, page: int = 1, per_page: int = paging.PER_PAGE) -> paging.Page:
    """One page of every institution, by name, with its counts."""

    def read(conn):
        total = conn.execute("SELECT count(*) FROM institutions").fetchone()[0]
        number = min(max(1, page), max(1, -(-total // per_page)))
        rows = conn.query(_SELECT + " ORDER BY institutions.name_key, institutions.id LIMIT :limit OFFSET :offset",
                          {"now": clock.now_iso(), "limit": per_page, "offset": (number - 1) * per_page})
        return [Institution.from_row(r) for r in rows], number, total

    rows, number, total = database.read_sync(read)
    return paging.Page(rows, number, per_page, total)


def get(database: Database, institution_id: int) -> Institution | None:
    row = database.query_one(_SELECT + " WHERE institutions.id = :id", {"now": clock.now_iso(), "id": institution_id})
    return Institution.from_row(row) if row else None


def rename(database: Database, who: audit.Who, institution_id: int, name: str) -> bool:
    """Give the institution another name (a misspelling, a merger's new name); returns whether it
    changed. Its partners keep it: they belong to the institution, not to its name."""
    name = " ".join(name.split())[:NAME_LIMIT]
    if not name:
        raise InstitutionError("name_required")

    def update(db) -> bool:
        row = db.execute("SELECT name FROM institutions WHERE id = ?", [institution_id]).fetchone()
        if row is None:
            raise InstitutionError("not_found")
        if row[0] == name:
            return False
        name_key = key(name)
        if db.execute("SELECT 1 FROM institutions WHERE name_key = ? AND id != ?", [name_key, institution_id]).fetchone():
            raise InstitutionError("name_taken")
        db.execute("UPDATE institutions SET name = ?, name_key = ? WHERE id = ?", [name, name_key, institution_id])
        audit.record(db, who, "institution.rename", name, previous_name=row[0])
        return True

    return database.write(update)
