"""The audit trail as CSV: the current search, every row of it, streamed a batch at a time.

The export held every row in memory and stopped, silently, at 100,000 rows (286 MB for those).
Here it reads :data:`relais.audit_search.EXPORT_BATCH` rows at a time, each batch its own short
read, and hands each on as CSV before reading the next: memory is one batch's, whatever the
trail holds, and nothing is cut. It covers the rows that existed when it began (up to the
newest id then), so that rows written meanwhile, its own audit row first, cannot shift it.

A cell that a spreadsheet would run as a formula (beginning with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return, OWASP's list) gets a leading ``'``; stored texts have no line breaks or
controls already (:func:`relais.audit.safe_text`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable

from relais import audit_search, i18n
from relais.audit_labels import ACTIONS

COLUMNS = ("id", "at", "actor", "action", "action_label", "object", "ip", "user_agent", "detail", "hash")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """``value`` as text no spreadsheet runs: a formula's first character behind a ``'``."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _lines(rows: Iterable[dict], language: str, header: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        label = ACTIONS.get(row["action"])
        shown = {**row, "action_label": i18n.gettext(language, label) if label else ""}
        writer.writerow([csv_cell(shown[name]) for name in COLUMNS])
    return buffer.getvalue().encode("utf-8")


async def stream(database, filters: audit_search.Filters, language: str, through: int) -> AsyncIterator[bytes]:
    """The header, then the matching rows up to row ``through``, most recent first, as CSV bytes:
    one read of the database per batch, on its reader threads (never on the event loop)."""
    yield _lines((), language, header=True)
    below = through + 1
    while True:
        rows = await database.read(audit_search.batch_below, filters, language, below)
        if not rows:
            return
        yield _lines(rows, language)
        below = rows[-1]["id"]
