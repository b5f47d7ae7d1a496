"""The layers keep to their side: only relais/db.py holds connections, views hold no SQL.

Core functions take the ``Database`` and reach SQLite through ``read``/``read_sync``/``write``;
step functions given to those receive the connection as a parameter (``fn(db)``, ``fn(conn)``)
and never fetch one themselves. Views call the core and nothing lower.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL = re.compile(r"\bSELECT\b.+\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b", re.DOTALL)


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def conn_uses(path: Path) -> list[str]:
    """Where a module reaches ``.conn`` (``database.conn``, ``db.conn.backup``...)."""
    tree = ast.parse(path.read_text(), str(path))
    return [f"{_name(path)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "conn"]


def sql_strings(path: Path) -> list[str]:
    """Where a module holds a string that is SQL (f-strings included)."""
    tree = ast.parse(path.read_text(), str(path))
    return [f"{_name(path)}:{node.lineno}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value)]


def test_only_the_database_module_reaches_a_connection():
    modules = [p for p in _modules("relais", "views") if p != ROOT / "relais" / "db.py"]
    assert len(modules) > 20
    assert [where for path in modules for where in conn_uses(path)] == []


def test_views_hold_no_sql():
    assert [where for path in _modules("views") for where in sql_strings(path)] == []


def test_the_scans_find_what_they_look_for(tmp_path):
    """The scans themselves: a view that reached the connection or wrote SQL would be caught."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def show(request):\n"
        "    database = request.app.state.db\n"
        "    return settings.get(database.conn, 'share_max_days')\n"
        "def backup(state, target):\n"
        "    state.db.conn.conn.backup(target)\n"
        "def rows(database, owner):\n"
        "    return database.query(f'SELECT * FROM shares WHERE owner_id = {owner}')\n"
        "def gone(database):\n"
        "    database.execute('DELETE FROM files WHERE id = ?', [1])\n",
    )
    assert len(conn_uses(bad)) == 3
    assert len(sql_strings(bad)) == 2
    # A step function's connection parameter and words like "Delete" or "select" in text are fine.
    fine = tmp_path / "fine.py"
    fine.write_text(
        "def count(conn, owner):\n"
        "    return conn.execute(QUERY, [owner]).fetchone()[0]\n"
        "LABEL = N_('Delete the files now, then select what to send from your files')\n",
    )
    assert conn_uses(fine) == [] and sql_strings(fine) == []
