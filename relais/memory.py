"""The C allocator tuned for a server that moves data in blocks of about a megabyte.

glibc's malloc serves blocks over 128 KiB with a fresh ``mmap`` and returns them with ``munmap``
(its threshold only grows after such a block is freed), and gives freed memory at the top of the
heap back to the kernel as soon as 128 KiB are free there. Relais joins, encrypts and sends
1 MiB blocks all the time, so each one cost a new mapping whose 256 pages the kernel faults in
and zeroes. On the 2-core development machine a 2 GiB tus upload by curl over loopback took
2.3 s of server CPU per GiB and ran at 550-590 MB/s; with the thresholds below, 1.9-2.0 s and
650-720 MB/s.

Memory stays bounded: blocks of up to 4 MiB are reused from the heap, at most 8 MiB of free heap
is kept, and there is one heap (arena) per core instead of glibc's eight per core, each of which would
keep its own free blocks: with 20 uploads at once the server peaked at 175 MB, against 230 MB
with glibc's number of arenas (``bench/transfer.py --only parallel``).
"""

from __future__ import annotations

import ctypes
import os

MMAP_THRESHOLD = 4 * 1024 * 1024  # blocks below this come from the heap and are reused
TRIM_THRESHOLD = 8 * 1024 * 1024  # free heap kept before memory is returned to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # from glibc's <malloc.h>


def tune_malloc() -> bool:
    """Set glibc's thresholds for this process; returns whether it could (False on other C
    libraries, where this tuning does not apply). Call it once, before the server starts."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    arenas = max(os.cpu_count() or 1, 2)
    return all(mallopt(option, value) for option, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_ARENA_MAX, arenas)))
