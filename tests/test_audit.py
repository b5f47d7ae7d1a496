"""The audit trail: append-only, chained with a key the database does not hold, and `verify` finds
any tampering; what it stores is safe to show in a page, a CSV file or a terminal."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import subprocess
import sys

import pytest

from relais import audit
from app import create_app
from relais.db import connect
from tests.conftest import PASSWORD, audit_rows, csrf_token

FIELDS = ("at", "actor", "action", "object", "ip", "user_agent", "detail")


def _verify(app):
    return audit.verify(app.state.db, app.state.audit_key, app.state.audit_marker)


def _cli(config, *args):
    env = {"RELAIS_DATA_DIR": str(config.data_dir), "RELAIS_MASTER_KEY_FILE": str(config.resolved_master_key_file),
           "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "app.py", *args], env=env, capture_output=True, text=True, timeout=60)


def test_chain_verifies(app, auth, staff):
    auth.login()
    auth.logout()
    checked, problem = _verify(app)
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


def _forge(config, row_id: int, **changes):
    """Rewrite a row, then recompute the plain SHA-256 chain from it to the end, as the old verify
    checked it: with the database file alone, sqlite3 and hashlib, nothing from Relais."""
    conn = sqlite3.connect(config.db_path)
    conn.row_factory = sqlite3.Row
    conn.executescript("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
    rows = [dict(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY id")]
    prev_hash = "0" * 64
    for row in rows:
        if row["id"] == row_id:
            row.update(changes)
        if row["id"] >= row_id:
            canonical = json.dumps([row[name] for name in FIELDS], ensure_ascii=False, separators=(",", ":"))
            row["prev_hash"], row["hash"] = prev_hash, hashlib.sha256((prev_hash + canonical).encode()).hexdigest()
            conn.execute("UPDATE audit_log SET actor = ?, action = ?, object = ?, ip = ?, detail = ?, prev_hash = ?,"
                         " hash = ? WHERE id = ?", [row["actor"], row["action"], row["object"], row["ip"], row["detail"],
                                                    row["prev_hash"], row["hash"], row["id"]])
        prev_hash = row["hash"]
    conn.commit()
    conn.close()


def test_an_altered_row_is_detected(app, config, auth, staff):
    auth.login()
    auth.logout()
    _tamper(config, "UPDATE audit_log SET ip = '192.0.2.1' WHERE id = 2")
    checked, problem = _verify(app)
    assert checked == 1 and problem.startswith("row 2:") and "altered" in problem


def test_a_removed_row_is_detected(app, config, auth, staff):
    auth.login()
    auth.logout()
    _tamper(config, "DELETE FROM audit_log WHERE id = 2")
    checked, problem = _verify(app)
    assert problem.startswith("row 3:") and "removed or inserted" in problem


def test_a_chain_recomputed_without_the_key_is_detected(app, config, auth, staff):
    auth.login()
    auth.logout()
    _forge(config, 2, actor="innocent@registry.example")
    checked, problem = _verify(app)
    assert checked == 1 and problem.startswith("row 2:") and "audit key" in problem


def test_verify_command_names_the_forged_row(app, config, auth, staff):
    auth.login()
    auth.logout()
    ok = _cli(config, "verify")
    assert ok.returncode == 0 and "audit chain ok" in ok.stdout
    _forge(config, 2, action="nothing.happened", ip="192.0.2.1")
    broken = _cli(config, "verify")
    assert broken.returncode == 1 and "BROKEN" in broken.stdout and "row 2:" in broken.stdout


def test_rewriting_the_whole_chain_from_its_first_row_is_detected(app, config, auth, staff):
    auth.login()
    _forge(config, 1, actor="nobody")
    checked, problem = _verify(app)
    assert checked == 0 and problem.startswith("row 1:") and "audit key" in problem
    assert _cli(config, "verify").returncode == 1


def test_the_chain_does_not_verify_with_another_master_key(app, config, staff, tmp_path):
    other = tmp_path / "other.key"
    other.write_text("ab" * 32 + "\n")
    other.chmod(0o600)
    env = {"RELAIS_DATA_DIR": str(config.data_dir), "RELAIS_MASTER_KEY_FILE": str(other), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "app.py", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "row 1:" in result.stdout


def test_the_key_is_not_in_the_database_and_a_connection_without_it_cannot_append(app, config, staff):
    assert app.state.audit_key not in config.db_path.read_bytes()
    assert app.state.audit_key != app.state.master_key and len(app.state.audit_key) == 32
    keyless = connect(config.db_path)
    with pytest.raises(sqlite3.OperationalError, match=audit.MAC_FUNCTION):
        audit.record(keyless, audit.SYSTEM, "test.forged")
    keyless.conn.close()


# -- rows from before the chain had a key ----------------------------------------------------------

def _plain_chain(config, count: int):
    """Rows as the previous version wrote them: hashed with plain SHA-256."""
    conn = sqlite3.connect(config.db_path)
    prev_hash = "0" * 64
    for i in range(count):
        row = {"at": f"2026-01-0{i + 1}T09:00:00.000000+00:00", "actor": "system", "action": "user.create",
               "object": f"old{i}@registry.example", "ip": "", "user_agent": "", "detail": '{"role": "staff"}'}
        hashed = audit.plain_hash(prev_hash, row)
        conn.execute("INSERT INTO audit_log (at, actor, action, object, ip, user_agent, detail, prev_hash, hash)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [*row.values(), prev_hash, hashed])
        prev_hash = hashed
    conn.commit()
    conn.close()


def _restart(app, config):
    app.state.db.close()
    return create_app(config)


def _upgrade(app, config, plain_rows: int):
    """The data folder as the version before the keyed chain left it: rows hashed with plain
    SHA-256 and no marker next to the master key; then the first start of this version."""
    app.state.db.close()
    config.db_path.unlink()
    app.state.audit_marker.unlink()
    create_app(config).state.db.close()  # the schema, as the old version also made it
    app.state.audit_marker.unlink()
    _plain_chain(config, plain_rows)
    return create_app(config)


def test_the_first_start_marks_the_chain_keyed_next_to_the_master_key(app, config):
    marker = app.state.audit_marker
    assert marker == config.resolved_master_key_file.with_name("master.key.audit")
    assert marker.stat().st_mode & 0o777 == 0o600
    assert audit.read_marker(marker, app.state.audit_key) == audit.Marker(0, audit.GENESIS)
    assert app.state.audit_key.hex() not in marker.read_text()


def test_a_forged_chain_is_refused_once_the_marker_exists(app, config, auth, staff):
    """The reviewer's forge: with the database file alone, drop the triggers and rewrite every row
    with plain SHA-256, hiding who deleted what. Before the marker, verify called it an old chain
    and seal-audit signed it off."""
    auth.login()
    auth.logout()
    _forge(config, 1, actor="system")
    broken = _cli(config, "verify")
    assert broken.returncode == 1 and "BROKEN" in broken.stdout and "row 1:" in broken.stdout
    assert "seal-audit" not in broken.stdout
    refused = _cli(config, "seal-audit")
    assert refused.returncode == 1 and "refused" in refused.stdout
    with pytest.raises(audit.AlreadyKeyed):
        audit.seal(app.state.db, app.state.audit_key, app.state.audit_marker)
    assert audit_rows(app, audit.SEAL) == []
    # A restart does not seal it either.
    app = _restart(app, config)
    assert audit_rows(app, audit.SEAL) == [] and _verify(app)[1].startswith("row 1:")
    app.state.db.close()


def test_a_marker_not_made_with_the_key_is_reported(app, config, staff):
    marker = app.state.audit_marker
    marker.write_text(marker.read_text().replace('"plain_through": 0', '"plain_through": 99'))
    checked, problem = _verify(app)
    assert checked == 0 and "marker" in problem and "audit key" in problem
    assert _cli(config, "verify").returncode == 1


def test_a_genuine_upgrade_is_sealed_once_at_start_and_verifies(app, config):
    app = _upgrade(app, config, 3)
    seal = audit_rows(app, audit.SEAL)
    assert len(seal) == 1 and seal[0]["object"] == "1-3" and json.loads(seal[0]["detail"])["through"] == 3
    assert _verify(app) == (4, None)
    marker = audit.read_marker(app.state.audit_marker, app.state.audit_key)
    assert marker == audit.Marker(3, audit_rows(app)[2]["hash"])
    ok = _cli(config, "verify")
    assert ok.returncode == 0 and "audit chain ok" in ok.stdout
    assert _cli(config, "seal-audit").returncode == 1  # nothing left for it: the start did it
    app = _restart(app, config)
    assert len(audit_rows(app, audit.SEAL)) == 1 and _verify(app)[1] is None

    # Once sealed, an old row is as safe as a new one: rewriting it breaks the seal's link, and
    # rewriting the rest after it with plain hashes is named at the first of them.
    _forge(config, 2, object="someone.else@registry.example")
    assert _verify(app)[1] is not None
    assert _cli(config, "verify").returncode == 1
    app.state.db.close()


def test_plain_rows_after_the_sealed_ones_are_forged(app, config, make_user):
    app = _upgrade(app, config, 2)
    _forge(config, 3, actor="nobody")  # the seal row and after, recomputed without the key
    checked, problem = _verify(app)
    assert checked == 2 and problem.startswith("row 3:") and "audit key" in problem
    app.state.db.close()


def test_an_upgrade_broken_otherwise_is_not_sealed(app, config):
    app.state.db.close()
    config.db_path.unlink()
    app.state.audit_marker.unlink()
    create_app(config).state.db.close()
    app.state.audit_marker.unlink()
    _plain_chain(config, 3)
    _tamper(config, "DELETE FROM audit_log WHERE id = 2")
    app = create_app(config)
    assert audit_rows(app, audit.SEAL) == []
    checked, problem = _verify(app)
    assert problem.startswith("row 3:") and "removed" in problem
    assert _cli(config, "seal-audit").returncode == 1
    app.state.db.close()


# -- what is stored is safe to show ----------------------------------------------------------------

UNSAFE = "line\nfeed\r\x1b[31mred\x1b[0m\u2028sep\u2029\u202eevil\x85nel\x00\\x0a"


def test_safe_text_escapes_controls_separators_and_bidi():
    safe = audit.safe_text(UNSAFE)
    assert safe == ("line\\x0afeed\\x0d\\x1b[31mred\\x1b[0m\\u2028sep\\u2029\\u202eevil\\x85nel\\x00\\\\x0a")
    assert safe.isprintable()
    assert audit.safe_text("Résultats été 2026 — 東京.csv") == "Résultats été 2026 — 東京.csv"


def test_every_stored_text_is_escaped(app):
    who = audit.Who(actor="a\nb", ip="192.0.2.1\x1b", user_agent="agent\u2028x")
    app.state.db.write(lambda db: audit.record(db, who, "test.event", "obj\r\nfake,row", name="n\x1b]0;title\x07",
                                               names=["x\u202ey"], nested={"k\n": "v\u2029"}))
    row = audit_rows(app, "test.event")[0]
    for name in FIELDS:
        assert row[name].isprintable(), (name, row[name])
    assert (row["actor"], row["ip"], row["user_agent"]) == ("a\\x0ab", "192.0.2.1\\x1b", "agent\\u2028x")
    assert row["object"] == "obj\\x0d\\x0afake,row"
    assert json.loads(row["detail"]) == {"name": "n\\x1b]0;title\\x07", "names": ["x\\u202ey"], "nested": {"k\\x0a": "v\\u2029"}}
    assert _verify(app)[1] is None


def test_a_login_with_a_hostile_address_and_agent_reaches_the_export_harmless(app, client, auth, admin):
    email = "victim@registry.example\n2026-01-01,system,login.success"
    client.post("/login", data={"email": email, "password": "wrong wrong wrong", "_csrf_token": csrf_token(client)},
                headers={"user-agent": b"Mozilla\x1b[2J\x1b]0;pwned\x07 \x85"}, follow_redirects=False)
    failure = audit_rows(app, "login.failure")[0]
    assert "\n" not in failure["object"] and "\\x0a2026-01-01" in failure["object"]
    assert "\x1b" not in failure["user_agent"] and "\x85" not in failure["user_agent"]
    assert "\\x1b[2J" in failure["user_agent"]

    auth.login(email=admin.email, password=PASSWORD)
    export = client.get("/admin/audit.csv")
    assert export.status_code == 200
    # splitlines() breaks at \n and \r but also at U+2028, U+0085 and the like, as some readers do.
    assert len(export.text.splitlines()) == len(list(csv.reader(io.StringIO(export.text))))
    assert not any(c in export.text for c in "\x1b\x85\u2028")


@pytest.mark.parametrize("typed", ["system", " System ", "anonymous"])
def test_a_typed_login_name_cannot_pass_for_relais_itself(app, auth, staff, typed):
    """The actors "system" and "anonymous" are shown as labels ("Relais"); typing one as the
    e-mail address of a failed login made the failure look as if Relais had done it."""
    from relais import audit_labels

    assert auth.login(email=typed, password="wrong password, long enough").status_code == 401
    failures = audit_rows(app, "login.failure")
    assert [(r["actor"], r["object"]) for r in failures] == [("anonymous", typed.strip().lower())]
    shown = audit_labels.entries(app.state.db, failures)
    assert shown[0].actor_name == audit_labels.ANONYMOUS and shown[0].actor_name != audit_labels.SYSTEM


def test_a_failed_login_with_an_address_keeps_it_as_the_actor(app, auth, staff):
    auth.login(password="wrong password, long enough")
    assert [r["actor"] for r in audit_rows(app, "login.failure")] == ["staff@registry.example"]
