"""Lists shown a page at a time, so that no page grows with the data.

A list of 50,000 files rendered as one page took 6 s and 56 MB of HTML; a page of ``PER_PAGE``
rows costs the same whatever the account holds. Each list function counts its rows and reads
one page with ``LIMIT``/``OFFSET``; the templates show it with ``_pager.html``.
"""

from __future__ import annotations

import math

PER_PAGE = 50
MAX_PAGE_DIGITS = 6  # a page number from the query string; anything longer is page 1


class Page(list):
    """One page of a list: its rows (it is a list of them) and where it sits in the whole."""

    def __init__(self, rows, number: int, per_page: int, total: int):
        super().__init__(rows)
        self.number, self.per_page, self.total = number, per_page, total

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.pages else None


def whole(raw: str | None, max_digits: int) -> int | None:
    """``raw`` as a whole number of 1 to ``max_digits`` ASCII digits, else None.

    Not ``str.isdigit()`` alone: it takes '²' and '①', which ``int()`` then refuses (a 500), and
    Arabic-Indic digits, which ``int()`` reads. Input from a request is ASCII digits or nothing."""
    if not raw or not raw.isascii() or not raw.isdigit() or len(raw) > max_digits:
        return None
    return int(raw)


def number(raw: str | None) -> int:
    """The page asked for in a query string: a whole number from 1, else 1."""
    return max(1, whole(raw, MAX_PAGE_DIGITS) or 1)


def fetch(conn, count_sql: str, rows_sql: str, params: list, page: int, per_page: int = PER_PAGE) -> tuple[list[dict], int, int]:
    """Count the rows, then read page ``page`` of them (the last page if it is past the end).

    ``rows_sql`` ends where ``LIMIT ? OFFSET ?`` can follow; returns (rows, page number, total).
    """
    total = conn.execute(count_sql, params).fetchone()[0]
    page = min(max(1, page), max(1, math.ceil(total / per_page)))
    rows = [dict(row) for row in conn.query(f"{rows_sql} LIMIT ? OFFSET ?", [*params, per_page, (page - 1) * per_page])]
    return rows, page, total


class Cursor(list):
    """One page of a long list read by keyset ("the rows older than row N"), not by page number:
    reading page 10,000 of a million rows costs what page 1 costs, where ``OFFSET`` reads every
    row before it. ``newer`` and ``older`` are the ids to go on from (None: nothing that way);
    ``count`` is the number of rows in the whole list up to a cap (``capped``: more than that),
    so that a page never counts a million rows either (None: not counted, it would take too long)."""

    def __init__(self, rows, newer: int | None, older: int | None, count: int | None, capped: bool):
        super().__init__(rows)
        self.newer, self.older, self.count, self.capped = newer, older, count, capped


def row_id(raw: str | None) -> int | None:
    """A row id from a query string (``older``/``newer``), None when it is none."""
    return whole(raw, 18)
