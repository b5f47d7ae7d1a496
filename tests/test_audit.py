"""The audit trail: append-only, hash-chained, and `verify` finds any tampering."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from relais import audit
from tests.conftest import audit_rows


def test_chain_verifies(app, auth, staff):
    auth.login()
    auth.logout()
    checked, problem = audit.verify(app.state.db.conn)
    assert problem is None and checked == len(audit_rows(app)) >= 3


def test_rows_are_linked_to_their_predecessor(app, auth, staff):
    auth.login()
    rows = audit_rows(app)
    assert rows[0]["prev_hash"] == audit.GENESIS
    for before, after in zip(rows, rows[1:]):
        assert after["prev_hash"] == before["hash"]


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"])
def test_triggers_refuse_changes(app, staff, statement):
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        app.state.db.execute(statement)


def _tamper(config, *statements):
    """What someone with the database file and a sqlite3 shell could do."""
    conn = sqlite3.connect(config.db_path)
    conn.executescript("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;" + ";".join(statements))
    conn.close()


def test_an_altered_row_is_detected(app, config, auth, staff):
    auth.login()
    auth.logout()
    _tamper(config, "UPDATE audit_log SET ip = '192.0.2.1' WHERE id = 2")
    checked, problem = audit.verify(app.state.db.conn)
    assert checked == 1 and problem.startswith("row 2:") and "altered" in problem


def test_a_removed_row_is_detected(app, config, auth, staff):
    auth.login()
    auth.logout()
    _tamper(config, "DELETE FROM audit_log WHERE id = 2")
    checked, problem = audit.verify(app.state.db.conn)
    assert problem.startswith("row 3:") and "removed or inserted" in problem


def test_a_forged_row_with_a_recomputed_hash_breaks_the_next_link(app, config, auth, staff):
    auth.login()
    auth.logout()
    row = dict(audit_rows(app)[1])
    row["actor"] = "innocent@registry.example"
    forged = audit.row_hash(row["prev_hash"], row)
    _tamper(config, f"UPDATE audit_log SET actor = 'innocent@registry.example', hash = '{forged}' WHERE id = 2")
    checked, problem = audit.verify(app.state.db.conn)
    assert problem.startswith("row 3:")


def test_verify_command_reports_the_break(app, config, auth, staff, tmp_path):
    auth.login()
    env = {"RELAIS_DATA_DIR": str(config.data_dir), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "app.py", "verify"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "audit chain ok" in ok.stdout
    _tamper(config, "UPDATE audit_log SET action = 'nothing' WHERE id = 1")
    broken = subprocess.run([sys.executable, "app.py", "verify"], env=env, capture_output=True, text=True)
    assert broken.returncode == 1 and "BROKEN" in broken.stdout and "row 1" in broken.stdout
