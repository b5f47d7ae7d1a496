"""Encrypted file storage: AES-256-GCM in fixed-size segments, one random key per file.

Keys. The master key file holds 64 hex digits and a newline (mode 0600). Each stored file has its
own random 32-byte key, kept in the database wrapped by the master key as 60 bytes:
``nonce(12) | AES-GCM(master, file_key, ad=b"RELAIS-KEYWRAP1\\0" + file_id)``, so a wrapped key
copied to another file's row does not unwrap. Deleting the wrapped key crypto-shreds the file.

Data file (integers big-endian)::

    header = b"RELAIS1\\0" | version u8 (1) | segment_size u32 | len(file_id) u16 | file_id UTF-8
    record = nonce (12 random bytes) | ciphertext | tag (16)           (OVERHEAD = 28 bytes)
    AAD(i) = header | i u64 | final u8 (1 for the last record, 0 otherwise)

Every record but the last holds exactly ``segment_size`` plaintext bytes; the last is flagged final
and holds 0 to ``segment_size - 1`` (an empty final record follows data whose length is a multiple
of the segment size, 0 included). So a finished file is ``len(header) + n*(segment_size + 28) +
28 + r`` bytes, 0 <= r < segment_size, and its length gives its plaintext size. Truncation (no
final record), reordering (index), bit flips (tag), records from another file (key, file_id) and
header edits (header in every AAD) fail authentication and raise :class:`IntegrityError`.

Unfinished uploads (tus). The data file then holds only the header and full non-final records; the
partial segment saved by :meth:`SegmentWriter.checkpoint` is ``<name>.tail`` next to it:
``k u64 | record(k, final=0)``, ``k`` being the number of full records at that checkpoint, replaced
atomically (write, fsync, rename). It is not inside the data file because the next full record
would then overwrite it in place, and a crash during that overwrite would destroy bytes already
acknowledged to the client. The data file is instead only appended to: records before ``k`` are
durable and must verify; from ``k`` on nothing was acknowledged yet, so resume() cuts off the
first bad record and all after it (a write torn by a crash) and the client re-sends from the offset
it is given. finish() removes the ``.tail`` file; without one, resume() refuses to touch a file.

Nonces are random, not counters: a checkpointed tail is re-encrypted at every checkpoint, and a
counter nonce would then repeat with different plaintext under the same key. With a fresh key per
file and at most 2**32 encryptions per key (records are capped; checkpoints, one per request, add
few), the probability of a 96-bit nonce collision stays below 2**-32 (NIST SP 800-38D).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEGMENT_SIZE = 1024 * 1024
MAX_SEGMENT_SIZE = 64 * 1024 * 1024  # bounds what a damaged header can make us allocate
MAGIC, VERSION = b"RELAIS1\0", 1
KEY_LEN, NONCE_LEN, TAG_LEN = 32, 12, 16
OVERHEAD = NONCE_LEN + TAG_LEN
MAX_RECORDS = 2**32
_FIXED = struct.Struct(">8sBIH")  # magic, version, segment size, file_id length
_INDEX = struct.Struct(">Q")
_WRAP_AD = b"RELAIS-KEYWRAP1\0"


class StorageError(Exception):
    """Storage cannot do what was asked (bad key file, closed writer, finished upload...)."""


class IntegrityError(StorageError):
    """Stored data or a wrapped key failed authentication or is inconsistent: never trust it."""


class UploadFinished(StorageError):
    """resume() found the data file finished: a crash came after finish() but before the file's
    row was committed, so the caller completes the upload from what is on disk."""


def load_master_key(path: Path, create: bool = False) -> bytes:
    """Read the 32-byte master key from ``path``: 64 hex digits, optionally followed by a newline.

    With ``create=True`` a missing file (and folder) is created with a new random key. A file that
    is not regular, is accessible by group or others, or is malformed raises StorageError.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not create:
            raise StorageError(f"master key file {path} does not exist") from None
        _create_master_key(path)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())  # the file we read, not whatever the path names by now
        if not stat.S_ISREG(st.st_mode):
            raise StorageError(f"master key file {path} is not a regular file")
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise StorageError(f"master key file {path} is accessible by group or others ({mode:04o}); chmod 600 it")
        raw = f.read(100)
    text = raw[:-1] if raw.endswith(b"\n") else raw
    try:
        key = bytes.fromhex(text.decode("ascii")) if len(text) == 2 * KEY_LEN else b""
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != KEY_LEN:  # also catches spaces, which fromhex skips
        raise StorageError(f"master key file {path} must hold exactly {2 * KEY_LEN} hex digits")
    return key


def _create_master_key(path: Path) -> None:
    """Write a new random key to ``path`` atomically and durably, never replacing an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            _write_all(fd, secrets.token_bytes(KEY_LEN).hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link(), not rename(): if another process created a key meanwhile, rename would replace
            # a key it may already have wrapped file keys with, and those files would be lost.
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def new_file_key() -> bytes:
    """A fresh random 32-byte key for one stored file."""
    return secrets.token_bytes(KEY_LEN)


def wrap_key(master: bytes, file_key: bytes, file_id: str) -> bytes:
    """Encrypt ``file_key`` under ``master``, bound to ``file_id``; returns 60 bytes."""
    _check_key(master)
    _check_key(file_key)
    nonce = os.urandom(NONCE_LEN)
    return nonce + AESGCM(master).encrypt(nonce, file_key, _WRAP_AD + file_id.encode("utf-8"))


def unwrap_key(master: bytes, wrapped: bytes, file_id: str) -> bytes:
    """Recover a file key; IntegrityError unless master key, file_id and blob all match."""
    _check_key(master)
    if len(wrapped) != NONCE_LEN + KEY_LEN + TAG_LEN:
        raise IntegrityError("wrapped key has the wrong length")
    try:
        return AESGCM(master).decrypt(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], _WRAP_AD + file_id.encode("utf-8"))
    except InvalidTag:
        raise IntegrityError("wrapped key does not match this master key and file id") from None


def _check_key(key: bytes) -> None:
    """Refuse anything but 32 bytes: AESGCM would silently accept AES-128 or AES-192 keys."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise ValueError("keys must be 32 bytes")


def _write_all(fd: int, data) -> None:
    """os.write until all of ``data`` is written (a write may be partial, e.g. after a signal)."""
    mv = memoryview(data)
    while len(mv):
        mv = mv[os.write(fd, mv) :]


def _read_exact(f, buf) -> None:
    """Fill ``buf`` from ``f``; running out means the file is not what its header promises."""
    mv, got = memoryview(buf), 0
    while got < len(mv):
        n = f.readinto(mv[got:])
        if not n:
            raise IntegrityError("file ends in the middle of a record")
        got += n


def _fsync_dir(folder: Path) -> None:
    """fsync a folder, so that a file created, renamed or removed in it stays so after a crash."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tail_path(path: Path) -> Path:
    """Where the checkpointed partial segment of an unfinished upload lives."""
    return path.with_name(path.name + ".tail")


def _read_header(f, file_id: str | None) -> tuple[bytes, int]:
    """Parse the header at the start of ``f``; returns (header bytes, segment size)."""
    fixed = f.read(_FIXED.size)
    if len(fixed) != _FIXED.size:
        raise IntegrityError("file is too short to hold a header")
    magic, version, seg, fid_len = _FIXED.unpack(fixed)
    if magic != MAGIC or version != VERSION or not 0 < seg <= MAX_SEGMENT_SIZE:
        raise IntegrityError("not a Relais data file, or its header is damaged")
    fid = f.read(fid_len)
    if len(fid) != fid_len or (file_id is not None and fid != file_id.encode("utf-8")):
        raise IntegrityError("file header names another file id")
    return fixed + fid, seg


def _aad(header: bytes, index: int, final: bool) -> bytes:
    """Associated data of record ``index``: binds the file, the position and the end-of-file flag."""
    return header + _INDEX.pack(index) + (b"\1" if final else b"\0")


def _open_record(aead: AESGCM, header: bytes, index: int, final: bool, record) -> bytes:
    """Decrypt one record (bytes-like nonce | ciphertext | tag) or raise IntegrityError."""
    mv = memoryview(record)
    try:
        return aead.decrypt(mv[:NONCE_LEN], mv[NONCE_LEN:], _aad(header, index, final))
    except InvalidTag:
        raise IntegrityError(f"record {index} failed authentication") from None


def _is_final(f, aead: AESGCM, header: bytes, index: int, pos: int) -> bool:
    """Whether the bytes from ``pos`` to the end of ``f`` are a valid final record ``index``."""
    f.seek(pos)
    try:
        _open_record(aead, header, index, True, f.read())
    except IntegrityError:
        return False
    return True


def _finished_layout(file_size: int, header_len: int, seg: int) -> tuple[int, int]:
    """(full records, plaintext size) of a finished file; IntegrityError if the length cannot be one."""
    n_full, rem = divmod(file_size - header_len, seg + OVERHEAD)
    if rem < OVERHEAD:  # no room for a final record: truncated, or an unfinished upload
        raise IntegrityError("file is truncated or its upload is unfinished")
    return n_full, n_full * seg + rem - OVERHEAD


def plaintext_size(path: Path) -> int:
    """Plaintext size of a finished file from its header and length (no key, nothing decrypted)."""
    with open(path, "rb", buffering=0) as f:
        header, seg = _read_header(f, None)
        return _finished_layout(os.fstat(f.fileno()).st_size, len(header), seg)[1]


def read_range(path: Path, key: bytes, file_id: str, start: int = 0, end: int | None = None) -> RangeReader:
    """Return a :class:`RangeReader` over the plaintext bytes [start, end) of a finished file.

    Header, length and final record are checked before this returns, so a damaged, truncated or
    unfinished file raises IntegrityError here, before an HTTP response has started; a range
    outside the file raises ValueError. Each record is authenticated before any byte of it is
    returned; a bad one met later raises IntegrityError from the reader. The reader keeps the file
    this checked open (opening it blocks, so that happens here, in the caller's thread).
    """
    _check_key(key)
    aead = AESGCM(key)
    f = open(path, "rb", buffering=0)
    try:
        header, seg = _read_header(f, file_id)
        st = os.fstat(f.fileno())
        n_full, size = _finished_layout(st.st_size, len(header), seg)
        f.seek(len(header) + n_full * (seg + OVERHEAD))
        last = bytearray(st.st_size - f.tell())
        _read_exact(f, last)
        last = _open_record(aead, header, n_full, True, last)
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
                plain = _open_record(self._aead, self._header, i, False, self._buf)
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


def shred_file(path: Path) -> bool:
    """Delete a data file and any checkpoint of it; returns whether the data file existed.

    Crypto-shredding: the caller deletes the wrapped key first, which turns the ciphertext into
    noise. The file is only unlinked, not overwritten: on SSDs (wear levelling) and on journaling
    or copy-on-write file systems an overwrite lands on other blocks and leaves the old ones intact.
    """
    path = Path(path)
    tail = _tail_path(path)
    tail.unlink(missing_ok=True)
    tail.with_name(tail.name + ".tmp").unlink(missing_ok=True)
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


# The writer lives in its own module (this one holds the format, keys and reading); it is
# re-exported here so callers keep writing ``storage.SegmentWriter``.
from relais.segment_writer import SegmentWriter  # noqa: E402
