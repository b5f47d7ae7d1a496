"""The encrypted storage format: AES-256-GCM in fixed-size segments, one random key per file.

Keys. The master key file holds 64 hex digits and a newline (mode 0600). Each stored file has its
own random 32-byte key, kept in the database wrapped as 60 bytes by the key of the day it was
wrapped on (:mod:`relais.storage.epochs`, itself wrapped by the master key); before migration 0011
it was wrapped by the master key itself:
``nonce(12) | AES-GCM(master, file_key, ad=b"RELAIS-KEYWRAP1\\0" + file_id)``. Either way a wrapped
key copied to another file's row does not unwrap. Deleting the wrapped key crypto-shreds the file.

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
FIXED = struct.Struct(">8sBIH")  # magic, version, segment size, file_id length
INDEX = struct.Struct(">Q")


class StorageError(Exception):
    """Storage cannot do what was asked (bad key file, closed writer, finished upload...)."""


class IntegrityError(StorageError):
    """Stored data or a wrapped key failed authentication or is inconsistent: never trust it."""


class UploadFinished(StorageError):
    """resume() found the data file finished: a crash came after finish() but before the file's
    row was committed, so the caller completes the upload from what is on disk."""



def check_key(key: bytes) -> None:
    """Refuse anything but 32 bytes: AESGCM would silently accept AES-128 or AES-192 keys."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise ValueError("keys must be 32 bytes")



def tail_path(path: Path) -> Path:
    """Where the checkpointed partial segment of an unfinished upload lives."""
    return path.with_name(path.name + ".tail")


def read_header(f, file_id: str | None) -> tuple[bytes, int]:
    """Parse the header at the start of ``f``; returns (header bytes, segment size)."""
    fixed = f.read(FIXED.size)
    if len(fixed) != FIXED.size:
        raise IntegrityError("file is too short to hold a header")
    magic, version, seg, fid_len = FIXED.unpack(fixed)
    if magic != MAGIC or version != VERSION or not 0 < seg <= MAX_SEGMENT_SIZE:
        raise IntegrityError("not a Relais data file, or its header is damaged")
    fid = f.read(fid_len)
    if len(fid) != fid_len or (file_id is not None and fid != file_id.encode("utf-8")):
        raise IntegrityError("file header names another file id")
    return fixed + fid, seg


def aad(header: bytes, index: int, final: bool) -> bytes:
    """Associated data of record ``index``: binds the file, the position and the end-of-file flag."""
    return header + INDEX.pack(index) + (b"\1" if final else b"\0")


def open_record(aead: AESGCM, header: bytes, index: int, final: bool, record) -> bytes:
    """Decrypt one record (bytes-like nonce | ciphertext | tag) or raise IntegrityError."""
    mv = memoryview(record)
    try:
        return aead.decrypt(mv[:NONCE_LEN], mv[NONCE_LEN:], aad(header, index, final))
    except InvalidTag:
        raise IntegrityError(f"record {index} failed authentication") from None


def is_final(f, aead: AESGCM, header: bytes, index: int, pos: int) -> bool:
    """Whether the bytes from ``pos`` to the end of ``f`` are a valid final record ``index``."""
    f.seek(pos)
    try:
        open_record(aead, header, index, True, f.read())
    except IntegrityError:
        return False
    return True


def finished_layout(file_size: int, header_len: int, seg: int) -> tuple[int, int]:
    """(full records, plaintext size) of a finished file; IntegrityError if the length cannot be one."""
    n_full, rem = divmod(file_size - header_len, seg + OVERHEAD)
    if rem < OVERHEAD:  # no room for a final record: truncated, or an unfinished upload
        raise IntegrityError("file is truncated or its upload is unfinished")
    return n_full, n_full * seg + rem - OVERHEAD
