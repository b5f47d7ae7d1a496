"""A daemon thread that does one step of work every few seconds, or at once when woken.

The mail sender and the retention janitor are both this; an exception in a step is logged
and the loop goes on: one bad row must not stop mail or retention for good.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("relais")


class Worker:
    name = "relais-worker"

    def __init__(self, interval: float):
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=35)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception(self.name)
            self._wake.wait(self.interval)
            self._wake.clear()
