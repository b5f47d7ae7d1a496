"""Secrets shown once, on the page a redirect leads to after a form was sent (Post/Redirect/Get).

A new share's password must be shown exactly once, yet the page that shows it cannot be the answer
to the POST: refreshing it would send the form again. So the POST leaves the secret here, under a
key only the same login session can name, and redirects; the GET that follows takes it out. It
lives in this process's memory only, for minutes: never in the database (and so the WAL and
backups), a cookie or a URL. A restart in between loses it, as closing the page would.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Hashable


class ShownOnce:
    def __init__(self, seconds: float = 600, most: int = 1000):
        self.seconds, self.most = seconds, most
        self._kept: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()  # handlers run in worker threads

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._forget_old()
            self._kept[key] = (time.monotonic(), value)
            while len(self._kept) > self.most:  # a flood of sends cannot grow memory without bound
                self._kept.popitem(last=False)

    def take(self, key: Hashable) -> Any | None:
        """The value, removed so that nothing can show it again; None if taken, expired or unknown."""
        with self._lock:
            self._forget_old()
            entry = self._kept.pop(key, None)
        return entry[1] if entry else None

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - self.seconds
        while self._kept and next(iter(self._kept.values()))[0] < cutoff:
            self._kept.popitem(last=False)
