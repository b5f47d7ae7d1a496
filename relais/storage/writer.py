"""The writer half of the encrypted segment format described in :mod:`relais.storage.format`.

Appends plaintext to a data file across HTTP requests and server restarts (tus uploads): full
segments are encrypted and appended; the partial tail is checkpointed to a side file so that a
crash never loses bytes the client was told were stored.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relais.storage.disk import fsync_dir, read_exact, shred_file, write_all
from relais.storage.format import (
    FIXED, INDEX, MAGIC, MAX_RECORDS, MAX_SEGMENT_SIZE, NONCE_LEN, OVERHEAD, SEGMENT_SIZE, TAG_LEN, VERSION,
    IntegrityError, StorageError, UploadFinished, aad, check_key, is_final, open_record, read_header, tail_path,
)


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
        # write() and checkpoint() may run in two threads at once (a PATCH keeps receiving while
        # the previous checkpoint waits for the disk): _state guards index, tail, the file and
        # _sealing, and _checkpointing keeps checkpoints one at a time.
        self._state, self._checkpointing = threading.Lock(), threading.Lock()
        self._sealing: Future | None = None  # the batch of records being encrypted and appended
        self._unflushed = f.tell()  # start of the bytes appended since writeback was last started

    @classmethod
    def create(cls, path: Path, key: bytes, file_id: str, segment_size: int = SEGMENT_SIZE) -> SegmentWriter:
        """Start a new data file at ``path``, which must not exist; durable on return."""
        path = Path(path)
        check_key(key)
        fid = file_id.encode("utf-8")
        if not 0 < len(fid) <= 0xFFFF or not 0 < segment_size <= MAX_SEGMENT_SIZE:
            raise ValueError(f"need a 1 to 65535-byte file_id and a segment size of 1 to {MAX_SEGMENT_SIZE}")
        header = FIXED.pack(MAGIC, VERSION, segment_size, len(fid)) + fid
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        f = open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), "r+b", buffering=0)
        try:
            _lock(f)
            write_all(f.fileno(), header)
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
        check_key(key)
        aead = AESGCM(key)
        f = open(path, "r+b", buffering=0)
        try:
            _lock(f)
            header, seg = read_header(f, file_id)
            rec_len, size = seg + OVERHEAD, os.fstat(f.fileno()).st_size
            n_full, rem = divmod(size - len(header), rec_len)
            finished = rem >= OVERHEAD and is_final(f, aead, header, n_full, size - rem)
            try:
                saved = tail_path(path).read_bytes()
            except FileNotFoundError:
                if finished:
                    raise UploadFinished("upload already finished") from None
                raise StorageError("no checkpoint to resume from") from None
            if not INDEX.size + OVERHEAD <= len(saved) < INDEX.size + rec_len:
                raise IntegrityError("checkpoint file has an impossible length")
            k = INDEX.unpack_from(saved)[0]
            tail = open_record(aead, header, k, False, memoryview(saved)[INDEX.size :])
            if finished:  # a crash came between the two steps of finish()
                raise UploadFinished("upload already finished")
            if n_full < k:
                raise IntegrityError("records saved by the last checkpoint are missing")
            hasher, buf, valid = hashlib.sha256(), bytearray(rec_len), 0
            f.seek(len(header))
            while valid < n_full:
                read_exact(f, buf)
                try:
                    plain = open_record(aead, header, valid, False, buf)
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

    @property
    def to_boundary(self) -> int:
        """Plaintext bytes until the next segment starts: data written in whole segments from
        there is encrypted as it is, without being copied into the partial tail first."""
        return self._seg - len(self._tail)

    def write(self, data) -> None:
        """Accept plaintext. It is hashed here; its complete segments are encrypted and appended by
        a sealing thread while the caller goes on (two cores: hashlib and AESGCM release the GIL).
        At most one batch is in flight per writer; checkpoint(), finish() and close() wait for it,
        and an error in it is raised by the next call (after which the writer is closed).
        """
        with self._state:
            self._check_open()
            try:
                self._write(data)
            except BaseException:
                self._close()
                raise

    def _write(self, data) -> None:
        mv = memoryview(data).cast("B")
        self._hasher.update(mv)
        records = []
        if self._tail:
            take = mv[: self._seg - len(self._tail)]
            self._tail += take
            mv = mv[len(take) :]
            if len(self._tail) < self._seg:
                return
            records.append(self._tail)
            self._tail = bytearray()
        # The sealing thread reads the segments after write() returned: take immutable bytes
        # without a copy, copy anything the caller might change.
        owned = isinstance(data, bytes)
        while len(mv) >= self._seg:
            records.append(mv[: self._seg] if owned else bytes(mv[: self._seg]))
            mv = mv[self._seg :]
        self._tail += mv
        if records:
            if self._index + len(records) > MAX_RECORDS:
                raise StorageError("file too large for one key")
            self._wait_sealing()
            self._sealing = _sealers.submit(self._append, self._index, records)
            self._index += len(records)

    def checkpoint(self) -> int:
        """Make everything accepted so far durable; returns the offset the client may be told.

        May run while another thread calls write(): what was accepted when it starts is made
        durable, and writes go on meanwhile (records after the checkpointed index are what a
        crash may tear, and resume() cuts those off).
        """
        with self._checkpointing:
            with self._state:
                self._check_open()
                try:
                    self._wait_sealing()
                    # The tail as it is now, encrypted at once: no copy of it to keep while fsync waits.
                    index, offset, record = self._index, self.offset, self._record(self._index, False, self._tail)
                    fd = os.dup(self._file.fileno())  # stays valid even if a failing write() closes the writer
                except BaseException:
                    self._close()
                    raise
            try:
                os.fsync(fd)  # full records must be on disk before .tail vouches for them
                saved = tail_path(self._path)
                tmp = saved.with_name(saved.name + ".tmp")
                tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                try:
                    write_all(tmp_fd, INDEX.pack(index))
                    write_all(tmp_fd, record)
                    os.fsync(tmp_fd)
                finally:
                    os.close(tmp_fd)
                os.replace(tmp, saved)
                fsync_dir(self._path.parent)
                return offset
            except BaseException:
                self.close()
                raise
            finally:
                os.close(fd)

    def finish(self) -> tuple[int, str]:
        """Write the tail as the final record, fsync, close; returns (size, SHA-256 hex of plaintext)."""
        self._check_open()
        size = self.offset
        try:
            self._wait_sealing()
            write_all(self._file.fileno(), self._record(self._index, True, self._tail))
            os.fsync(self._file.fileno())
        finally:
            self.close()
        # Only now that the final record is durable may .tail go. A crash in between leaves a
        # harmless .tail: readers ignore it and resume() sees the final record and refuses.
        tail_path(self._path).unlink(missing_ok=True)
        fsync_dir(self._path.parent)
        return size, self._hasher.hexdigest()

    def abort(self) -> None:
        """Close and delete the upload (data file and checkpoint)."""
        self.close()
        shred_file(self._path)

    def close(self) -> None:
        """Release the file and its lock without finishing; the upload stays resumable. Idempotent."""
        with self._state:
            self._close()

    def _close(self) -> None:
        if self._sealing is not None:  # never close the file under a running append
            wait([self._sealing])
            self._sealing = None
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

    def _record(self, index: int, final: bool, plaintext) -> bytes:
        """Encrypt one record (checkpoint and finish: rare, so a new buffer each time)."""
        if index >= MAX_RECORDS:
            raise StorageError("file too large for one key")
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._aead.encrypt(nonce, plaintext, aad(self._header, index, final))

    def _seal(self, index: int, final: bool, plaintext) -> memoryview:
        """In a sealing thread: encrypt one record into the thread's buffer, valid until its next call."""
        nonce = os.urandom(NONCE_LEN)
        n = NONCE_LEN + len(plaintext) + TAG_LEN
        buf = getattr(_sealer_buffer, "buf", None)
        if buf is None or len(buf) < n:  # one per sealing thread, not one per open upload
            buf = _sealer_buffer.buf = memoryview(bytearray(n))
        buf[:NONCE_LEN] = nonce
        self._aead.encrypt_into(nonce, plaintext, aad(self._header, index, final), buf[NONCE_LEN:n])
        return buf[:n]

    def _start_writeback(self) -> None:
        """Have the kernel start writing appended records to disk now, not at the next fsync: the
        disk then works while more data arrives, and checkpoint() and finish() wait less."""
        end = self._file.tell()
        if end - self._unflushed >= WRITEBACK_BYTES:
            _sync_file_range(self._file.fileno(), self._unflushed, end - self._unflushed)
            self._unflushed = end

    def _wait_sealing(self) -> None:
        """Wait for the batch in flight; raises its error, if any."""
        sealing, self._sealing = self._sealing, None
        if sealing is not None:
            sealing.result()

    def _append(self, index: int, segments: list) -> None:
        """In a sealing thread: encrypt full segments as non-final records ``index``... and append them."""
        fd = self._file.fileno()
        for i, segment in enumerate(segments, index):
            write_all(fd, self._seal(i, False, segment))
        self._start_writeback()


# Shared by all writers; each has at most one batch in flight, so its records stay in order.
# Module-level on purpose, an exception to the house rule: it holds no state of an app (no data,
# no key, no setting: each batch carries its writer), its threads start only when a first batch
# comes, and it is already a pool of its own, never the one the pages or the transfers' disk
# threads (relais.workers) use. One per process also caps the cipher's threads whatever number
# of apps a process makes (the tests make one per test; a pool per app would need shutting down
# with each, and writers made outside an app, by the CLI or the tests, would need one too).
# Four: AES-GCM runs at GB/s on one core, so two cores are kept busy by two batches; two more let
# uploads whose batch waits for a full disk queue not hold up the others.
_sealers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="relais-seal")
_sealer_buffer = threading.local()
WRITEBACK_BYTES = 8 * 1024 * 1024  # measured: form uploads (one fsync at the end) ~15 % faster
SYNC_FILE_RANGE_WRITE = 2  # from <fcntl.h>

try:  # Linux: start writeback of a range without waiting for it (a hint; durability still comes from fsync)
    _libc_sync_file_range = ctypes.CDLL(None, use_errno=True).sync_file_range
    _libc_sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
except (AttributeError, OSError):
    _libc_sync_file_range = None


def _sync_file_range(fd: int, offset: int, length: int) -> None:
    if _libc_sync_file_range is not None:
        _libc_sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)  # errors ignored: only a hint


def _lock(f) -> None:
    """Take an exclusive flock, so that two requests cannot append to one upload at once."""
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StorageError("another writer is using this upload") from None
