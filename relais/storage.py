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

import fcntl
import hashlib
import os
import secrets
import stat
import struct
from collections.abc import Iterator
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


def read_range(path: Path, key: bytes, file_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Return an iterator over the plaintext bytes [start, end) of a finished file, ~a segment at a time.

    Header, length and final record are checked before this returns, so a damaged, truncated or
    unfinished file raises IntegrityError here, before an HTTP response has started; a range
    outside the file raises ValueError. Each record is authenticated before any byte of it is
    yielded; a bad one met later raises IntegrityError from the iterator.
    """
    _check_key(key)
    aead = AESGCM(key)
    with open(path, "rb", buffering=0) as f:
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
    return _iter_records(path, (st.st_dev, st.st_ino, st.st_size), aead, header, seg, n_full, last, start, end)


def _iter_records(path, identity, aead, header, seg, n_full, last, start, end) -> Iterator[bytes]:
    """The generator behind read_range; it opens the file itself so an unused iterator holds no fd."""
    if start == end:
        return
    with open(path, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        if (st.st_dev, st.st_ino, st.st_size) != identity:
            raise IntegrityError("file changed while being read")
        first = start // seg
        f.seek(len(header) + first * (seg + OVERHEAD))
        buf = bytearray(seg + OVERHEAD)  # reused: decrypt() returns a new bytes object each time
        for i in range(first, (end - 1) // seg + 1):
            if i == n_full:
                plain = last
            else:
                _read_exact(f, buf)
                plain = _open_record(aead, header, i, False, buf)
            lo, hi = max(start - i * seg, 0), min(end - i * seg, len(plain))
            yield plain if lo == 0 and hi == len(plain) else plain[lo:hi]


class SegmentWriter:
    """Appends plaintext to an encrypted data file across requests and restarts (see module doc).

    One writer per file: an exclusive flock is held and a second writer gets StorageError. Leaving
    a ``with`` block without finish() only closes the writer, so an interrupted request never
    deletes an upload; it stays resumable from its last checkpoint. After any error (disk full...)
    the writer closes itself, and resume() continues from the last checkpoint.
    """

    def __init__(self, path: Path, f, key: bytes, header: bytes, seg: int, index: int, tail: bytes, hasher):
        """Internal: use create() or resume()."""
        self._path, self._file, self._aead, self._header, self._seg = path, f, AESGCM(key), header, seg
        self._index = index  # full records in the data file
        self._tail = bytearray(tail)  # plaintext not yet in a full record, shorter than a segment
        self._hasher = hasher
        self._buf = memoryview(bytearray(seg + OVERHEAD))  # one record, reused by every _seal

    @classmethod
    def create(cls, path: Path, key: bytes, file_id: str, segment_size: int = SEGMENT_SIZE) -> SegmentWriter:
        """Start a new data file at ``path``, which must not exist; durable on return."""
        path = Path(path)
        _check_key(key)
        fid = file_id.encode("utf-8")
        if not 0 < len(fid) <= 0xFFFF or not 0 < segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"need a 1 to 65535-byte file_id and a segment size of 1 to {MAX_SEGMENT_SIZE}")
        header = _FIXED.pack(MAGIC, VERSION, segment_size, len(fid)) + fid
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        f = open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), "r+b", buffering=0)
        try:
            _lock(f)
            _write_all(f.fileno(), header)
            writer = cls(path, f, key, header, segment_size, 0, b"", hashlib.sha256())
            writer.checkpoint()  # an empty .tail at k=0 is what marks the upload as resumable
            return writer
        except BaseException:
            f.close()
            shred_file(path)
            raise

    @classmethod
    def resume(cls, path: Path, key: bytes, file_id: str) -> SegmentWriter:
        """Reopen an unfinished upload: verify it, rebuild the SHA-256 so far, reload the tail.

        Records before the last checkpoint must all verify, or IntegrityError is raised and nothing
        is changed. After them, the first bad record and everything following it are cut off: the
        torn end of writes interrupted by a crash, which the client never saw acknowledged.
        """
        path = Path(path)
        _check_key(key)
        aead = AESGCM(key)
        f = open(path, "r+b", buffering=0)
        try:
            _lock(f)
            header, seg = _read_header(f, file_id)
            rec_len, size = seg + OVERHEAD, os.fstat(f.fileno()).st_size
            n_full, rem = divmod(size - len(header), rec_len)
            finished = rem >= OVERHEAD and _is_final(f, aead, header, n_full, size - rem)
            try:
                saved = _tail_path(path).read_bytes()
            except FileNotFoundError:
                raise StorageError("upload already finished" if finished else "no checkpoint to resume from") from None
            if not _INDEX.size + OVERHEAD <= len(saved) < _INDEX.size + rec_len:
                raise IntegrityError("checkpoint file has an impossible length")
            k = _INDEX.unpack_from(saved)[0]
            tail = _open_record(aead, header, k, False, memoryview(saved)[_INDEX.size :])
            if finished:  # a crash came between the two steps of finish()
                raise StorageError("upload already finished")
            if n_full < k:
                raise IntegrityError("records saved by the last checkpoint are missing")
            hasher, buf, valid = hashlib.sha256(), bytearray(rec_len), 0
            f.seek(len(header))
            while valid < n_full:
                _read_exact(f, buf)
                try:
                    plain = _open_record(aead, header, valid, False, buf)
                except IntegrityError:
                    if valid < k:
                        raise
                    break  # torn after the last checkpoint: keep the verified prefix
                if valid == k and not plain.startswith(tail):
                    raise IntegrityError("record after the checkpoint does not continue its tail")
                hasher.update(plain)
                valid += 1
            if valid > k:
                tail = b""  # the checkpointed tail is inside record k, which survived
            hasher.update(tail)
            new_size = len(header) + valid * rec_len
            f.truncate(new_size)
            f.seek(new_size)
            writer = cls(path, f, key, header, seg, valid, tail, hasher)
            if new_size != size or valid != k:
                writer.checkpoint()  # make the recovered state durable before its offset is reported
            return writer
        except BaseException:
            f.close()
            raise

    @property
    def offset(self) -> int:
        """Plaintext bytes accepted so far (durable only up to the last checkpoint)."""
        return self._index * self._seg + len(self._tail)

    def write(self, data) -> None:
        """Accept plaintext; every complete segment is encrypted and appended at once."""
        self._check_open()
        mv = memoryview(data).cast("B")
        try:
            self._hasher.update(mv)
            if self._tail:
                take = mv[: self._seg - len(self._tail)]
                self._tail += take
                mv = mv[len(take) :]
                if len(self._tail) < self._seg:
                    return
                self._append(self._tail)
                self._tail = bytearray()
            while len(mv) >= self._seg:  # whole segments straight from the caller's buffer, no copy
                self._append(mv[: self._seg])
                mv = mv[self._seg :]
            self._tail += mv
        except BaseException:
            self.close()
            raise

    def checkpoint(self) -> int:
        """Make everything accepted so far durable; returns the offset the client may be told."""
        self._check_open()
        try:
            os.fsync(self._file.fileno())  # full records must be on disk before .tail vouches for them
            tail_path = _tail_path(self._path)
            tmp = tail_path.with_name(tail_path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                _write_all(fd, _INDEX.pack(self._index))
                _write_all(fd, self._seal(self._index, False, self._tail))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, tail_path)
            _fsync_dir(self._path.parent)
            return self.offset
        except BaseException:
            self.close()
            raise

    def finish(self) -> tuple[int, str]:
        """Write the tail as the final record, fsync, close; returns (size, SHA-256 hex of plaintext)."""
        self._check_open()
        size = self.offset
        try:
            _write_all(self._file.fileno(), self._seal(self._index, True, self._tail))
            os.fsync(self._file.fileno())
        finally:
            self.close()
        # Only now that the final record is durable may .tail go. A crash in between leaves a
        # harmless .tail: readers ignore it and resume() sees the final record and refuses.
        _tail_path(self._path).unlink(missing_ok=True)
        _fsync_dir(self._path.parent)
        return size, self._hasher.hexdigest()

    def abort(self) -> None:
        """Close and delete the upload (data file and checkpoint)."""
        self.close()
        shred_file(self._path)

    def close(self) -> None:
        """Release the file and its lock without finishing; the upload stays resumable. Idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SegmentWriter:
        """Use as a context manager; see close() for what leaving the block does."""
        return self

    def __exit__(self, *exc) -> None:
        """Close (never finish or abort: an exception here may just be a dropped connection)."""
        self.close()

    def _check_open(self) -> None:
        """Refuse a writer that was closed, finished, aborted or broken by an error."""
        if self._file is None:
            raise StorageError("writer is closed")

    def _seal(self, index: int, final: bool, plaintext) -> memoryview:
        """Encrypt one record into the reusable buffer; the result is valid until the next call."""
        if index >= MAX_RECORDS:
            raise StorageError("file too large for one key")
        nonce = os.urandom(NONCE_LEN)
        n = NONCE_LEN + len(plaintext) + TAG_LEN
        self._buf[:NONCE_LEN] = nonce
        self._aead.encrypt_into(nonce, plaintext, _aad(self._header, index, final), self._buf[NONCE_LEN:n])
        return self._buf[:n]

    def _append(self, segment) -> None:
        """Encrypt one full segment as the next non-final record and append it to the data file."""
        _write_all(self._file.fileno(), self._seal(self._index, False, segment))
        self._index += 1


def _lock(f) -> None:
    """Take an exclusive flock, so that two requests cannot append to one upload at once."""
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StorageError("another writer is using this upload") from None


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
