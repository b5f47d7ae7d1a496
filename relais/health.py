"""What ``/healthz`` checks: the database answers with its schema, and the data folder takes a write."""

from __future__ import annotations

from pathlib import Path


def check(conn, probe: Path) -> None:
    """A step for ``Database.read``: raises when either part fails (the monitor is told which)."""
    conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()  # the schema is in place
    probe.write_bytes(b"ok")
    probe.unlink()
