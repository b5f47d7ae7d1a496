"""Request bodies in large blocks, written by a worker thread while the next block arrives.

Hashing happens in a worker thread, encrypting and writing in the writer's sealing thread
(``cryptography`` and ``hashlib`` release the GIL), so the event loop keeps serving other requests
and the three stages use both cores. The worker threads are the transfers' own
(:class:`relais.workers.Workers`), never the pool the sync page handlers share: a flood of pages
waits behind itself, not in front of a block. One block is written while the next is received: awaiting
each write before reading on would leave the socket idle half of the time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

from litestar import Request

from relais import auth, clock, links, storage
from relais.workers import Workers
from views import framework

# Hand the cipher and the disk large blocks, never the server's small chunks; one segment each,
# so that blocks cut on a segment boundary stay on them.
BLOCK = storage.SEGMENT_SIZE
# A guest's link session lasts hours past its last use (links.LINK_SESSION): a touch a minute is plenty.
LINK_TOUCH_EVERY = timedelta(minutes=1)


class Disconnected(Exception):
    """The client went away mid-body."""


class TooMuchData(Exception):
    """The body is longer than announced."""


class Stopping(Exception):
    """The server is stopping: the caller keeps what arrived and asks the client to come back."""


async def blocks(request: Request, limit: float, first: int = BLOCK) -> AsyncIterator[bytes]:
    """The body in blocks of ``first`` bytes, then of BLOCK bytes (the last may be shorter), at
    most ``limit`` bytes.

    A writer whose next segment starts ``first`` bytes on gets whole segments: it encrypts them as
    they are instead of copying each into its partial tail (measured: a tenth less server CPU for
    a tus upload). Raises TooMuchData past the limit; after the bytes that did arrive, raises
    Disconnected when the client goes away (Litestar reports that as
    framework.ClientDisconnected) and Stopping when the server is asked to stop before the last of the
    body (``limit`` bytes) has come. Blocks are immutable
    bytes, joined once from the server's chunks, so the writer may keep them without a copy.
    """
    stopping = request.app.state.stopping
    parts, size, received, want = [], 0, 0, first
    ended: Exception | None = None
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise TooMuchData()
            view = memoryview(chunk)
            while size + len(view) >= want:
                take = want - size
                parts.append(view[:take])
                yield b"".join(parts)
                view, parts, size, want = view[take:], [], 0, BLOCK
            if view:
                parts.append(view)
                size += len(view)
            if stopping.is_set() and received < limit:  # a body complete with this chunk is finished normally
                ended = Stopping()
                break
    except framework.ClientDisconnected:
        ended = Disconnected()
    if parts:
        yield b"".join(parts)
    if ended is not None:
        raise ended


class SessionEnded(Exception):
    """The session behind a transfer ended while it ran (logged out, deactivated, absolute timeout;
    for a guest: the link session ended, or the link no longer takes files)."""


@dataclass(frozen=True)
class LinkSession:
    """A guest's link session behind a request (no account): what KeepAlive keeps alive instead."""

    kind: links.Kind
    object_id: str
    session_hash: str


_LINK_SESSION = "relais_link_session"  # the request scope's key


def set_link_session(request: Request, kind: links.Kind, object_id: str, session_hash: str) -> None:
    """Said by a guest's route once it has checked the link session: its transfers keep it alive."""
    request.scope[_LINK_SESSION] = LinkSession(kind, object_id, session_hash)


class KeepAlive:
    """A transfer in progress counts as activity: called at each block, it marks the request's
    session as seen whenever ``auth.touch_every`` has passed since it last did (and at the end),
    so a 34-minute PATCH or download never finds its session idle. For a guest on a link
    (:func:`set_link_session`) the link session slides the same way (links.keep_alive), and ends
    the transfer once the link no longer takes files. Nothing for a request without either.
    Raises SessionEnded if the session ended meanwhile."""

    def __init__(self, request: Request):
        # On a guest's route the link session counts, even if the browser is also logged in as staff.
        self._link: LinkSession | None = request.scope.get(_LINK_SESSION)
        session = None if self._link else request.scope.get("auth")
        self._database, self._id_hash = request.app.state.db, session.id_hash if session else None
        self._workers = request.app.state.workers  # the transfer's threads, not the pages' pool
        self._every = LINK_TOUCH_EVERY if self._link else None
        self._last = clock.now()  # the session middleware saw the session as the request began

    async def __call__(self) -> None:
        if self._id_hash is None and self._link is None:
            return
        if self._every is None:
            self._every = await self._workers.on_disk(auth.touch_every, self._database)
        now = clock.now()
        if now - self._last < self._every:
            return
        self._last = now
        if self._link is not None:
            link = self._link
            alive = (await self._workers.on_disk(links.keep_alive, self._database, link.kind, link.object_id,
                                                 link.session_hash)
                     and await self._workers.on_disk(links.still_open, self._database, link.kind, link.object_id))
        else:
            alive = await self._workers.on_disk(auth.keep_alive, self._database, self._id_hash)
        if not alive:
            raise SessionEnded()


async def kept_alive(request: Request, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A response body that keeps the session of its request alive while it is sent (downloads).
    A session that ends meanwhile does not cut the download: its bytes were already granted."""
    keep_alive = KeepAlive(request)
    try:
        try:
            async for block in body:
                yield block
                await keep_alive()
            await keep_alive()
        except SessionEnded:
            async for block in body:
                yield block
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()  # the client went away: the body's own cleanup (closing the file) runs now


class Pipeline:
    """Runs ``write(block)`` in a disk worker thread, at most one at a time, without waiting for it."""

    def __init__(self, write: Callable[[bytes], object], workers: Workers):
        self._write, self._workers = write, workers
        self._pending: asyncio.Future | None = None

    async def write(self, block: bytes) -> None:
        await self.drain()
        self._pending = asyncio.ensure_future(self._workers.on_disk(self._write, block))

    async def drain(self) -> None:
        """Wait for the write in flight; raises its exception, if any."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending


async def decrypted(reader: storage.RangeReader, workers: Workers) -> AsyncIterator[bytes]:
    """The blocks of a stored file: read and decrypted right here on the event loop while the
    records are in the page cache, in a disk worker thread when a read would wait for the disk.

    Decrypting a 1 MiB block costs a fraction of a millisecond (AES-GCM runs at several GB/s), less
    than handing it to a thread and back, and a thread would compete with the sending for the same
    cores: ``bench/transfer.py`` measured downloads about 1.6 times faster this way than with every
    block decrypted in a thread. A cold read, which may take milliseconds, never blocks the loop.
    """
    try:
        while True:
            try:
                block = reader.read(wait=False)
            except BlockingIOError:
                block = await workers.on_disk(reader.read)  # not cancellable: it ends before close()
            if block is None:
                return
            yield block
    finally:
        reader.close()


async def prefetch(iterator, workers: Workers) -> AsyncIterator[bytes]:
    """Iterate a blocking iterator (a zip being built) in a disk worker thread, one block ahead:
    the next block is made while the current one is sent."""
    source = iter(iterator)
    pending = asyncio.ensure_future(workers.on_disk(next, source, None))
    try:
        while (block := await pending) is not None:
            pending = asyncio.ensure_future(workers.on_disk(next, source, None))
            yield block
        pending = None
    finally:
        if pending is not None:  # the client went away: let the running read end before closing
            try:
                await asyncio.shield(pending)
            except BaseException:
                pass
        if hasattr(source, "close"):
            source.close()
