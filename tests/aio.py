"""Running a coroutine from a test, whatever the test's thread already holds."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` in a thread of its own: the browser tests leave Playwright's event loop
    running in the main thread, where ``asyncio.run`` refuses to start a second one."""
    outcome: list = []

    def in_thread() -> None:
        try:
            outcome.append(asyncio.run(coroutine))
        except BaseException as exc:  # raised again below, in the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]
