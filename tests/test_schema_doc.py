"""docs/schema.md against the real thing: the tables, columns and views of a migrated database,
the audit actions the code records, the link events and mail kinds it writes, and the example
queries (which must run)."""

from __future__ import annotations

import ast
import re
import sqlite3
from pathlib import Path

import pytest

from relais.db import Database
from tests.audit_actions import ROOT, SOURCES, recorded_actions, templated_values

DOC = ROOT / "docs" / "schema.md"
TICKED = re.compile(r"`([^`]+)`")


def section(title: str) -> str:
    """The text of the level-2 section whose title starts with ``title``."""
    text = DOC.read_text()
    match = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/schema.md has no section '## {title}'"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of a Markdown table's body rows."""
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows[2:]]  # past the header and its --- line


def outside_parentheses(text: str) -> str:
    """``a (b (c)) d`` -> ``a  d``: column names are outside, their values and notes inside."""
    depth, kept = 0, []
    for char in text:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    return "".join(kept)


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    database = Database(tmp_path_factory.mktemp("schema") / "relais.db")
    database.migrate()
    conn = sqlite3.connect(database.path)
    # Virtual tables (the audit trail's FTS5 index) are tables to document; their shadow tables,
    # where SQLite keeps the index, are not.
    names = {name: "view" if kind == "view" else "table" for name, kind in conn.execute(
        "SELECT name, type FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'view', 'virtual')"
        " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_%' ESCAPE '\\'").fetchall()}
    columns = {name: {row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')} for name in names}
    yield names, columns, conn
    conn.close()
    database.close()


def documented_tables() -> dict[str, str]:
    rows = table_rows(section("Tables"))
    return {TICKED.fullmatch(row[0]).group(1): row[2] for row in rows}


def test_every_table_is_documented_and_no_other(schema):
    names, _, _ = schema
    tables = {n for n, kind in names.items() if kind == "table"}
    assert set(documented_tables()) == tables


def test_documented_columns_exist(schema):
    _, columns, _ = schema
    wrong = {}
    for table, notable in documented_tables().items():
        named = set(TICKED.findall(outside_parentheses(notable)))
        if named - columns[table]:
            wrong[table] = sorted(named - columns[table])
    assert not wrong, f"docs/schema.md names columns these tables do not have: {wrong}"


def test_every_column_is_documented(schema):
    names, columns, _ = schema
    missing = {}
    for table, notable in documented_tables().items():
        named = set(TICKED.findall(outside_parentheses(notable)))
        if columns[table] - named:
            missing[table] = sorted(columns[table] - named)
    assert not missing, f"docs/schema.md does not describe these columns: {missing}"


def test_every_view_is_documented_and_no_other(schema):
    names, _, _ = schema
    documented = {TICKED.fullmatch(row[0]).group(1) for row in table_rows(section("Views"))}
    assert documented == {n for n, kind in names.items() if kind == "view"}


def test_the_audit_actions_are_the_ones_the_code_records():
    text = section("Audit actions")
    documented = {name for name in TICKED.findall(text) if re.fullmatch(r"[a-z]+\.[a-z_]+|logout", name)}
    actions = recorded_actions()
    assert not documented - actions, f"docs/schema.md lists actions nothing records: {sorted(documented - actions)}"
    assert not actions - documented, f"actions missing from docs/schema.md: {sorted(actions - documented)}"


def _values_of(table: str, column: str) -> set[str]:
    """The values listed in parentheses after ``column`` in ``table``'s row."""
    notable = documented_tables()[table]
    match = re.search(rf"`{column}` \(([^)]*)\)", notable)
    assert match, f"docs/schema.md: {table}.{column} lists no values"
    return set(TICKED.findall(match.group(1)))


def test_link_events_are_the_ones_the_code_writes():
    # Link events are written by relais.links.core.event(db, who, kind, object_id, "access", ...).
    written = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "event":
                what = node.args[4] if len(node.args) > 4 else next((k.value for k in node.keywords if k.arg == "what"), None)
                if isinstance(what, ast.Constant) and isinstance(what.value, str):
                    written.add(what.value)
    assert _values_of("link_events", "event") == written


def test_mail_kinds_are_the_ones_the_code_queues():
    kinds = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "queue":
                kinds |= {k.value.value for k in node.keywords if k.arg == "kind" and isinstance(k.value, ast.Constant)}
            # A link kind names the mail that tells its owner the link was locked (relais.links.core).
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "Kind":
                kinds |= {k.value.value for k in node.keywords if k.arg == "lock_mail" and isinstance(k.value, ast.Constant)}
    assert _values_of("outbox", "kind") == kinds


def test_the_example_queries_run(schema):
    _, _, conn = schema
    text = DOC.read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    statements = [s.strip() for block in blocks for s in block.split(";") if s.strip()]
    statements = [s for s in ("\n".join(l for l in s.splitlines() if not l.strip().startswith("--")) for s in statements) if s]
    assert len(statements) >= 5
    for statement in statements:
        conn.execute(statement).fetchall()  # raises on a table, view or column that does not exist


def test_outside_parentheses():
    assert outside_parentheses("`a` (`b` (`c`)), `d`") == "`a` , `d`"
    assert Path(DOC).exists()
