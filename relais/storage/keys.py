"""Keys: the master key file, and each stored file's own key wrapped by it (see
:mod:`relais.storage.format`)."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relais.storage.disk import create_key_file
from relais.storage.format import KEY_LEN, NONCE_LEN, TAG_LEN, IntegrityError, StorageError, check_key

_WRAP_AD = b"RELAIS-KEYWRAP1\0"


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
    create_key_file(path, secrets.token_bytes(KEY_LEN).hex().encode("ascii"))


def new_file_key() -> bytes:
    """A fresh random 32-byte key for one stored file."""
    return secrets.token_bytes(KEY_LEN)


def wrap_key(master: bytes, file_key: bytes, file_id: str) -> bytes:
    """Encrypt ``file_key`` under ``master``, bound to ``file_id``; returns 60 bytes."""
    check_key(master)
    check_key(file_key)
    nonce = os.urandom(NONCE_LEN)
    return nonce + AESGCM(master).encrypt(nonce, file_key, _WRAP_AD + file_id.encode("utf-8"))


def unwrap_key(master: bytes, wrapped: bytes, file_id: str) -> bytes:
    """Recover a file key; IntegrityError unless master key, file_id and blob all match."""
    check_key(master)
    if len(wrapped) != NONCE_LEN + KEY_LEN + TAG_LEN:
        raise IntegrityError("wrapped key has the wrong length")
    try:
        return AESGCM(master).decrypt(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], _WRAP_AD + file_id.encode("utf-8"))
    except InvalidTag:
        raise IntegrityError("wrapped key does not match this master key and file id") from None
