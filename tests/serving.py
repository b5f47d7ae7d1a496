"""A real Relais server process for tests that need one (browser, Caddy, tus, kill -9)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python app.py serve` on a free port over its own data folder."""

    program = "app.py"  # what runs the server and its commands (tests/clocked.py moves its clock)

    def __init__(self, data_dir: Path, two_factor_admins: int = 0):
        # 0: admins log in with a password alone, as the tests of everything but two-factor
        # login expect (set at start() when a command has made the database; see tests/conftest.py).
        self.two_factor_admins = two_factor_admins
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RELAIS_DATA_DIR": str(data_dir), "RELAIS_PORT": str(self.port),
                    "RELAIS_BASE_URL": self.url, "RELAIS_MASTER_KEY_FILE": str(data_dir.parent / "master.key")}
        self.log = open(data_dir.parent / "server.log", "w")
        self.process = None

    def database(self):
        """The server's database, opened as the server opens it (with the audit chain's key), for
        tests that put rows in place behind its back. Close it when done."""
        from relais import audit
        from relais.db import Database
        from relais.storage import load_master_key

        key = audit.derive_key(load_master_key(Path(self.env["RELAIS_MASTER_KEY_FILE"]), create=False))
        return Database(Path(self.env["RELAIS_DATA_DIR"]) / "relais.db", prepare_connection=audit.connection_setup(key))

    def add_listed_files(self, email: str, names: list[str], size: int = 100) -> None:
        """Rows of complete files for the account, straight into its database: for lists and
        paging only (no data file exists; a list never opens one). The server may be running."""
        import secrets
        import sqlite3

        db = sqlite3.connect(Path(self.env["RELAIS_DATA_DIR"]) / "relais.db", timeout=30)
        with db:
            owner = db.execute("SELECT id FROM users WHERE email = ?", [email]).fetchone()[0]
            db.executemany(
                "INSERT INTO files (id, owner_id, name, size, sha256, media_type, wrapped_key, storage_name, state,"
                " created_at, completed_at) VALUES (?, ?, ?, ?, ?, 'text/csv', x'00', ?, 'complete', ?, ?)",
                [(secrets.token_hex(16), owner, name, size, "0" * 64, secrets.token_hex(16),
                  f"2026-11-01T00:00:00.{i:06}+00:00", f"2026-11-01T00:00:00.{i:06}+00:00") for i, name in enumerate(names)],
            )
        db.close()

    def command(self, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, self.program, *args], cwd=ROOT, env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=60, check=True)

    def start(self) -> None:
        database = Path(self.env["RELAIS_DATA_DIR"]) / "relais.db"
        if database.exists():
            import sqlite3

            db = sqlite3.connect(database, timeout=30)
            with db:
                db.execute("INSERT OR IGNORE INTO settings (name, value, updated_at) VALUES ('two_factor_admins', ?,"
                           " strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))", [str(self.two_factor_admins)])
            db.close()
        self.process = subprocess.Popen([sys.executable, self.program, "serve"], cwd=ROOT, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start: " + Path(self.log.name).read_text())

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.log.close()
