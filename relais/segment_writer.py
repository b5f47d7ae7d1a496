"""The writer half of the encrypted segment format described in :mod:`relais.storage`.

Appends plaintext to a data file across HTTP requests and server restarts (tus uploads): full
segments are encrypted and appended; the partial tail is checkpointed to a side file so that a
crash never loses bytes the client was told were stored.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relais.storage import (
    _FIXED, _INDEX, MAGIC, MAX_RECORDS, MAX_SEGMENT_SIZE, NONCE_LEN, OVERHEAD, SEGMENT_SIZE, TAG_LEN, VERSION,
    IntegrityError, StorageError, _aad, _check_key, _fsync_dir, _is_final, _open_record, _read_exact,
    _read_header, _tail_path, _write_all, shred_file,
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
