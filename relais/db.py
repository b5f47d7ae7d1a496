"""The one module that owns SQLite connections.

SQLite allows many readers but one writer. Rather than let request threads race for the write
lock (and hit ``database is locked`` under load), every write goes through a single writer
thread, in one ``BEGIN IMMEDIATE`` transaction per call, the way Datasette does it. Reads use
one connection per thread, because a sqlite3 connection must never be shared across threads.

Async code (the event loop) must never wait on SQLite itself: it awaits :meth:`Database.read`,
which runs ``fn(conn)`` on a small pool of reader threads of the database's own (Datasette's
``execute_fn``), and :meth:`Database.write_async`, which queues ``fn`` for the writer thread and
awaits it without holding any thread (``execute_write_fn``). The reader pool is the database's
own, so reads never queue behind argon2 or file transfers in the shared worker pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import sqlite_utils

T = TypeVar("T")

_STOP = object()
_RAW = object()  # marks a queued statement that runs outside BEGIN/COMMIT
READER_THREADS = 4  # reads are short (every list is paged): a few threads keep up, each with its connection


class Row:
    """A dataclass read from a table's row: each field from its column, those named in ``BOOLEANS``
    (stored as 0 or 1) as bool. The row may hold more columns (a join's): they are left out."""

    BOOLEANS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_row(cls, row: dict):
        values = {field.name: row[field.name] for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for name in cls.BOOLEANS:
            values[name] = bool(values[name])
        return cls(**values)


def connect(path: Path | str) -> sqlite_utils.Database:
    """Open a connection with the pragmas every Relais connection needs."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves (sqlite-utils nests savepoints).
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    # Deleted rows (password hashes, wrapped file keys) are overwritten with zeros on disk.
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    return sqlite_utils.Database(conn)


@contextlib.contextmanager
def time_limit(db: sqlite_utils.Database, seconds: float):
    """Statements run on ``db`` inside stop with ``sqlite3.OperationalError`` ("interrupted") once
    ``seconds`` have passed: for work that is worth doing only if it is quick (a page's count)."""
    deadline = time.monotonic() + seconds
    db.conn.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
    try:
        yield
    finally:
        db.conn.set_progress_handler(None, 0)


class Database:
    """Thread-local read connections plus a single writer thread."""

    def __init__(self, path: Path | str, prepare_connection: Callable[[sqlite3.Connection], None] | None = None):
        self.path = Path(path)
        # Run on each connection this object opens (as Datasette's prepare_connection hook): the
        # audit trail's keyed hash is registered this way, so the key stays out of the database.
        self._prepare_connection = prepare_connection
        self._local = threading.local()
        self._queue: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None

    # -- reads ---------------------------------------------------------------------------
    @property
    def conn(self) -> sqlite_utils.Database:
        """This thread's connection, for reads (and for writes inside the writer thread)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path)
            if self._prepare_connection is not None:
                self._prepare_connection(db.conn)
            self._local.db = db
        return db

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, *args, **kwargs)`` on a reader thread and await its result.

        ``conn`` is that thread's sqlite-utils connection: ``fn`` may run several queries on it,
        all in the thread, none on the event loop.
        """
        with self._writer_lock:
            if self._readers is None:
                self._readers = concurrent.futures.ThreadPoolExecutor(READER_THREADS, thread_name_prefix="relais-db-read")
            readers = self._readers
        return await asyncio.get_running_loop().run_in_executor(readers, lambda: fn(self.conn, *args, **kwargs))

    def read_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(conn, *args, **kwargs)`` on this thread's connection, for code already off the event
        loop (a sync handler's worker thread, the CLI, background jobs)."""
        return fn(self.conn, *args, **kwargs)

    def query(self, sql: str, params: Any = ()) -> list[dict]:
        return [dict(row) for row in self.conn.query(sql, params)]

    def query_one(self, sql: str, params: Any = ()) -> dict | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Any = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    # -- writes --------------------------------------------------------------------------
    def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(db, *args, **kwargs)`` in the writer thread, in one transaction.

        Blocks the calling thread until done and returns fn's result or raises its exception.
        Called from inside the writer thread (a write that triggers another), it just runs.
        """
        if threading.current_thread() is self._writer:
            return fn(self.conn, *args, **kwargs)
        self._ensure_writer()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((fn, args, kwargs, future))
        return future.result()

    async def write_async(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`write` for async code: queue ``fn`` for the writer thread and await it without
        blocking the event loop or holding a worker thread while the write waits its turn.

        A cancelled caller (the client went away) does not cancel the write: once queued, a
        business action commits or fails as a whole, never half-done because nobody waited.
        """
        self._ensure_writer()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((fn, args, kwargs, future))
        return await asyncio.shield(asyncio.wrap_future(future))

    def execute(self, sql: str, params: Any = ()) -> int:
        """A single write statement through the writer; returns the last row id."""
        return self.write(lambda db: db.execute(sql, params).lastrowid)

    def _ensure_writer(self) -> None:
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="relais-db-writer", daemon=True)
                self._writer.start()

    def _write_loop(self) -> None:
        db = self.conn
        while True:
            item = self._queue.get()
            if item is _STOP:
                db.conn.close()
                self._local.db = None
                return
            fn, args, kwargs, future = item
            if not future.set_running_or_notify_cancel():
                continue
            if fn is _RAW:
                try:
                    db.execute(args[0])
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(None)
                continue
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(db, *args, **kwargs)
                except BaseException:
                    if db.conn.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except BaseException as exc:  # handed to the caller, never swallowed
                future.set_exception(exc)
            else:
                future.set_result(result)

    def close(self) -> None:
        """Stop the writer (after pending writes) and close this thread's connection."""
        with self._writer_lock:
            writer = self._writer
            if writer is not None and writer.is_alive():
                self._queue.put(_STOP)
                writer.join(timeout=30)
            self._writer = None
            readers, self._readers = self._readers, None
        if readers is not None:
            readers.shutdown(wait=True)  # their connections close with their threads
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database and truncate it, so that rows just deleted
        (wrapped file keys) are not left behind in relais.db-wal; secure_delete zeroes them in
        the database file itself."""
        self.write_outside_transaction("PRAGMA wal_checkpoint(TRUNCATE)")

    def write_outside_transaction(self, sql: str) -> None:
        """A statement that cannot run in a transaction, on the writer's connection."""
        self._ensure_writer()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((_RAW, (sql,), {}, future))
        future.result()

    def backup(self, target_path: Path | str) -> None:
        """A consistent copy of the database into ``target_path`` while the server runs (SQLite's
        online backup API: the writer may go on writing meanwhile)."""
        target = sqlite3.connect(str(target_path))
        try:
            self.conn.conn.backup(target)
        finally:
            target.close()

    def migrate(self) -> list[str]:
        """Apply pending migrations (run once at start, before serving)."""
        from relais.migrations import migrations

        db = connect(self.path)
        try:
            pending = [m.name for m in migrations.pending(db)]
            migrations.apply(db)
            return pending
        finally:
            db.conn.close()
