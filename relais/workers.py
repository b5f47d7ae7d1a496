"""Worker threads for transfer disk work, apart from the ones pages use.

Async views hand blocking work to threads. By default those come from anyio's one pool, shared
with every sync page handler (``sync_to_thread=True``): a flood of page requests or logins took
its 40 places and each block of an upload or a download waited behind them. Transfer disk work
(hashing, encrypting, writing, reading, checkpointing, spooling) goes through :attr:`Workers.disk`
instead, its own capacity limit, so pages queue behind pages and never in front of a transfer
block. argon2 (relais.passwords.Hasher) and database reads (relais.db) have their own pools too.

The app owns one (``app.state.workers``, made in relais.setup).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from anyio import CapacityLimiter, to_thread

T = TypeVar("T")

# On two cores the CPU work of a transfer (SHA-256, AES-GCM) keeps both busy with two or three
# threads; the rest of the time a disk thread waits for the disk (fsync at a checkpoint, a cold
# read), using no CPU. Each transfer holds at most two at once (a block written while its
# checkpoint waits, or one read ahead), so 8 serve four transfers without queueing, and more
# queue fairly instead of piling dozens of threads onto two cores.
DISK_THREADS = 8


class Workers:
    def __init__(self, disk_threads: int = DISK_THREADS):
        # An anyio limiter made outside a running loop binds to the loop at its first use.
        self.disk = CapacityLimiter(disk_threads)

    async def on_disk(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread counted against the disk limit."""
        return await to_thread.run_sync(functools.partial(fn, *args), limiter=self.disk)
