"""Day keys (key epochs): each stored file's key is wrapped by the key of the UTC day it was
wrapped on, never by the master key itself.

Why: deleting a file deletes its wrapped key from the database, but every backup taken before
still holds it, and a backup plus the master key would bring the file back. A day's key lives only
in its own file, in a folder outside the data folder and outside every backup
(``RELAIS_EPOCH_KEYS_DIR``, by default ``<master key file>.epochs/``), and is destroyed once no
file it wraps can still be alive (:mod:`relais.key_epochs` says when): from then on the wrapped
keys of that day, in any backup, are noise.

Formats (hex, one line, mode 0600)::

    <folder>/<YYYY-MM-DD>.key = nonce(12) | AES-GCM(master, day_key, ad=b"RELAIS-EPOCHKEY1\\0" + day)
    files.wrapped_key          = nonce(12) | AES-GCM(day_key, file_key,
                                                     ad=b"RELAIS-KEYWRAP2\\0" + day + b"\\0" + file_id)

so a day's key file is useless without the master key, and a wrapped key moved to another row or
labelled with another day does not unwrap. Rows with no day (``files.key_epoch`` NULL) are wrapped
by the master key as before 0011 (:func:`relais.storage.keys.wrap_key`); the first start of this
version re-wraps them.

Day keys are read from disk once and kept in memory (a download unwraps a key per request), for
``CACHE_SECONDS`` at most: a key destroyed by another process (a ``purge`` from cron) leaves this
one's memory by then.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relais.storage.disk import create_key_file, fsync_dir
from relais.storage.format import KEY_LEN, NONCE_LEN, TAG_LEN, IntegrityError, StorageError, check_key
from relais.storage.keys import unwrap_key

_EPOCH_AD = b"RELAIS-EPOCHKEY1\0"
_WRAP_AD = b"RELAIS-KEYWRAP2\0"
_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.key$")
CACHE_SECONDS = 300.0


class KeyGone(IntegrityError):
    """The day key a file's key was wrapped with does not exist (destroyed, or never here)."""


def epoch_of(moment: datetime) -> str:
    """The day (UTC) whose key wraps what is wrapped at ``moment``: ``2026-11-24``."""
    return moment.astimezone(timezone.utc).date().isoformat()


def epoch_start(epoch: str) -> datetime:
    """When the day ``epoch`` begins (UTC midnight)."""
    return datetime.combine(date.fromisoformat(epoch), datetime.min.time(), tzinfo=timezone.utc)


def epoch_end(epoch: str) -> datetime:
    return epoch_start(epoch) + timedelta(days=1)


class EpochKeys:
    """The folder of day keys, opened with the master key; wraps and unwraps file keys."""

    def __init__(self, folder: Path, master: bytes):
        check_key(master)
        self.folder = Path(folder)
        self._master = master
        self._cache: dict[str, tuple[AESGCM, float]] = {}
        self._lock = threading.Lock()

    def path(self, epoch: str) -> Path:
        _check_epoch(epoch)
        return self.folder / f"{epoch}.key"

    def existing(self) -> list[str]:
        """The days whose key is on disk, oldest first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted(m.group(1) for m in map(_NAME.match, names) if m)

    def has(self, epoch: str | None) -> bool:
        return epoch is None or self.path(epoch).exists()

    # -- wrapping --------------------------------------------------------------------------

    def wrap(self, epoch: str, file_key: bytes, file_id: str) -> bytes:
        """``file_key`` wrapped by day ``epoch``'s key (created if it is not there yet); 60 bytes."""
        check_key(file_key)
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._aead(epoch, create=True).encrypt(nonce, file_key, _ad(epoch, file_id))

    def unwrap(self, epoch: str | None, wrapped: bytes, file_id: str) -> bytes:
        """The file key; KeyGone if the day's key does not exist, IntegrityError if the blob, the
        day or the file id do not match. ``epoch`` None: a key wrapped by the master key (before 0011)."""
        if epoch is None:
            return unwrap_key(self._master, wrapped, file_id)
        if len(wrapped) != NONCE_LEN + KEY_LEN + TAG_LEN:
            raise IntegrityError("wrapped key has the wrong length")
        try:
            return self._aead(epoch).decrypt(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], _ad(epoch, file_id))
        except InvalidTag:
            raise IntegrityError(f"wrapped key does not match the key of {epoch} and this file id") from None

    # -- destroying ------------------------------------------------------------------------

    def destroy(self, epoch: str) -> bool:
        """Delete day ``epoch``'s key, durably (the folder is fsynced); returns whether it existed.
        Only unlinked, not overwritten: see :func:`relais.storage.disk.shred_file` for why."""
        path = self.path(epoch)
        with self._lock:
            self._cache.pop(epoch, None)
        try:
            path.unlink()
            existed = True
        except FileNotFoundError:
            existed = False
        if self.folder.exists():
            fsync_dir(self.folder)  # also when it was gone: a crash may have come before the fsync
        return existed

    # -- the key files ---------------------------------------------------------------------

    def _aead(self, epoch: str, create: bool = False) -> AESGCM:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(epoch)
            if cached is not None and now - cached[1] < CACHE_SECONDS:
                return cached[0]
        aead = AESGCM(self._load(epoch, create))
        with self._lock:
            self._cache[epoch] = (aead, now)
        return aead

    def _load(self, epoch: str, create: bool) -> bytes:
        path = self.path(epoch)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                raise KeyGone(f"the key of {epoch} does not exist (destroyed, or {self.folder} is not this"
                              " instance's folder of day keys)") from None
            self._create(epoch)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
                raise StorageError(f"day key {path} is not a regular file readable by its owner only")
            text = f.read(200).strip()
        try:
            blob = bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise IntegrityError(f"day key {path} is not hex") from None
        if len(blob) != NONCE_LEN + KEY_LEN + TAG_LEN:
            raise IntegrityError(f"day key {path} has the wrong length")
        try:
            return AESGCM(self._master).decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], _EPOCH_AD + epoch.encode("ascii"))
        except InvalidTag:
            raise IntegrityError(f"day key {path} was not made with this master key") from None

    def _create(self, epoch: str) -> None:
        """A new random day key, written atomically and durably, never replacing one (link, as
        the master key: another process may have wrapped file keys with it already)."""
        key, nonce = secrets.token_bytes(KEY_LEN), os.urandom(NONCE_LEN)
        blob = nonce + AESGCM(self._master).encrypt(nonce, key, _EPOCH_AD + epoch.encode("ascii"))
        create_key_file(self.path(epoch), blob.hex().encode("ascii"))


def _check_epoch(epoch: str) -> None:
    if not isinstance(epoch, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", epoch):
        raise ValueError(f"not a day: {epoch!r}")


def _ad(epoch: str, file_id: str) -> bytes:
    return _WRAP_AD + epoch.encode("ascii") + b"\0" + file_id.encode("utf-8")
