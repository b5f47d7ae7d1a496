"""Reading finished data files: their size, and any byte range, decrypted a segment at a time."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relais.storage.disk import read_exact
from relais.storage.format import OVERHEAD, IntegrityError, check_key, finished_layout, open_record, read_header


def plaintext_size(path: Path) -> int:
    """Plaintext size of a finished file from its header and length (no key, nothing decrypted)."""
    with open(path, "rb", buffering=0) as f:
        header, seg = read_header(f, None)
        return finished_layout(os.fstat(f.fileno()).st_size, len(header), seg)[1]


def read_range(path: Path, key: bytes, file_id: str, start: int = 0, end: int | None = None) -> RangeReader:
    """Return a :class:`RangeReader` over the plaintext bytes [start, end) of a finished file.

    Header, length and final record are checked before this returns, so a damaged, truncated or
    unfinished file raises IntegrityError here, before an HTTP response has started; a range
    outside the file raises ValueError. Each record is authenticated before any byte of it is
    returned; a bad one met later raises IntegrityError from the reader. The reader keeps the file
    this checked open (opening it blocks, so that happens here, in the caller's thread).
    """
    check_key(key)
    aead = AESGCM(key)
    f = open(path, "rb", buffering=0)
    try:
        header, seg = read_header(f, file_id)
        st = os.fstat(f.fileno())
        n_full, size = finished_layout(st.st_size, len(header), seg)
        f.seek(len(header) + n_full * (seg + OVERHEAD))
        last = bytearray(st.st_size - f.tell())
        read_exact(f, last)
        last = open_record(aead, header, n_full, True, last)
        end = size if end is None else end
        if not 0 <= start <= end <= size:
            raise ValueError(f"range [{start}, {end}) is outside a file of {size} bytes")
        if start == end or start // seg >= n_full:  # nothing but the final record, already decrypted
            f.close()
            f = None
        return RangeReader(f, aead, header, seg, n_full, last, start, end)
    except BaseException:
        if f is not None:
            f.close()
        raise


class RangeReader:
    """The plaintext of [start, end) of a finished file, about a segment at a time.

    Iterating it reads and decrypts each block, waiting for the disk as needed. ``read(wait=False)``
    serves a caller that must not wait for the disk (an event loop): it raises BlockingIOError
    when the record is not all in the page cache yet, keeping what it did read, and a later
    ``read()`` (in a worker thread) finishes the same block. The file is closed after the last
    block, on an error, or by ``close()``.
    """

    def __init__(self, f, aead, header, seg, n_full, last, start, end):
        self._file, self._aead, self._header = f, aead, header
        self._seg, self._n_full, self._last, self._start, self._end = seg, n_full, last, start, end
        self._index = start // seg  # the next record to return
        self._stop = (end - 1) // seg + 1 if end > start else self._index
        self._buf = bytearray(seg + OVERHEAD) if f is not None else None  # reused: decrypt() returns new bytes
        self._got = 0  # bytes of record ``_index`` already in _buf
        self._nowait = _NOWAIT is not None  # whether this system and file system can say "would wait"

    def __iter__(self) -> RangeReader:
        return self

    def __next__(self) -> bytes:
        block = self.read()
        if block is None:
            raise StopIteration
        return block

    def read(self, wait: bool = True) -> bytes | None:
        """The next block, or None after the last one."""
        i = self._index
        if i >= self._stop:
            self.close()
            return None
        try:
            if i == self._n_full:
                plain = self._last
            else:
                self._fill(i, wait)
                plain = open_record(self._aead, self._header, i, False, self._buf)
        except BlockingIOError:
            raise
        except BaseException:
            self.close()
            raise
        self._index, self._got = i + 1, 0
        lo, hi = max(self._start - i * self._seg, 0), min(self._end - i * self._seg, len(plain))
        return plain if lo == 0 and hi == len(plain) else plain[lo:hi]

    def _fill(self, index: int, wait: bool) -> None:
        """Read record ``index`` into _buf; without ``wait``, only what the page cache holds."""
        mv = memoryview(self._buf)
        offset = len(self._header) + index * (self._seg + OVERHEAD)
        if wait:
            self._file.seek(offset + self._got)
            while self._got < len(mv):
                n = self._file.readinto(mv[self._got:])
                if not n:
                    raise IntegrityError("file ends in the middle of a record")
                self._got += n
            return
        if not self._nowait:
            raise BlockingIOError()
        while self._got < len(mv):
            try:
                n = os.preadv(self._file.fileno(), [mv[self._got:]], offset + self._got, _NOWAIT)
            except OSError as error:  # EAGAIN (BlockingIOError, not cached) goes up as it is
                # No RWF_NOWAIT on this file system, or preadv2 forbidden (seccomp): stop asking.
                if error.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EPERM, errno.EINVAL):
                    raise
                self._nowait = False
                raise BlockingIOError() from None
            if not n:  # let the waiting read tell the end of the file from a read that gave up
                raise BlockingIOError()
            self._got += n

    def close(self) -> None:
        """Release the file; later reads return None."""
        self._stop = self._index
        if self._file is not None:
            f, self._file = self._file, None
            f.close()


_NOWAIT = getattr(os, "RWF_NOWAIT", 0) or None  # Linux 4.14+: preadv fails with EAGAIN instead of waiting
