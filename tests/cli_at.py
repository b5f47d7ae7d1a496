"""``python app.py COMMAND`` as cron would run it, with the clock at a set moment and, for the tests
of an interrupted purge, killed (SIGKILL, as ``kill -9``) at a named point.

    RELAIS_TEST_NOW=2027-01-09T10:00:00+00:00 RELAIS_TEST_KILL=shred_file:2 python tests/cli_at.py purge

``RELAIS_TEST_KILL=<point>:<n>`` kills the process as the n-th call of the point begins; points:
``shred_file`` (a data file about to be unlinked, after its row's deletion committed),
``destroy_epoch`` (a day key about to be deleted, after its destruction committed), ``rekey`` (a
re-keying transaction about to run) and ``write`` (any write transaction about to be queued).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relais import clock, db, key_epochs, storage  # noqa: E402

if os.environ.get("RELAIS_TEST_NOW"):
    moment = datetime.fromisoformat(os.environ["RELAIS_TEST_NOW"])
    clock.now = lambda: moment


def _killing(original, n: int):
    calls = 0

    def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls >= n:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    return wrapper


if os.environ.get("RELAIS_TEST_KILL"):
    point, count = os.environ["RELAIS_TEST_KILL"].split(":")
    n = int(count)
    if point == "shred_file":
        storage.shred_file = _killing(storage.shred_file, n)
    elif point == "destroy_epoch":
        storage.EpochKeys.destroy = _killing(storage.EpochKeys.destroy, n)
    elif point == "rekey":
        key_epochs.rekey = _killing(key_epochs.rekey, n)
    elif point == "write":
        db.Database.write = _killing(db.Database.write, n)
    else:
        raise SystemExit(f"unknown point {point}")

os.chdir(ROOT)
from app import create_app  # noqa: E402
from relais import cli  # noqa: E402

sys.exit(cli.main(sys.argv[1:], create_app))
