"""``python tests/clocked.py <app.py's arguments>``: Relais with its clock moved, for tests that
need a real server process days later (a reminder, a deadline) without waiting for them.

The offset, in seconds, is read from the file named by ``RELAIS_TEST_CLOCK_OFFSET`` at every
``clock.now()``: a test moves a running server's clock by writing that file, and a ``purge`` run
the same way sees the same time. Only tests start Relais like this; the app knows nothing of it.
"""

from __future__ import annotations

import os
import runpy
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from relais import clock  # noqa: E402 (after the path is set)

OFFSET = Path(os.environ["RELAIS_TEST_CLOCK_OFFSET"])
real_now = clock.now


def moved_now():
    try:
        seconds = float(OFFSET.read_text() or 0)
    except (OSError, ValueError):
        seconds = 0.0
    return real_now() + timedelta(seconds=seconds)


clock.now = moved_now  # every module asks clock.now(), as the tests' frozen clock relies on
sys.argv = [str(ROOT / "app.py"), *sys.argv[1:]]
runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
