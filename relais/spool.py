"""An encrypted temporary file whose key lives only in memory.

A tus chunk that carries Upload-Checksum must be verified before any byte of it reaches the
file, so it is held on disk first. Held in clear it would be health data in data/tmp, and a
crash would leave it there; sealed block by block under a random key that is never written
down, a crash leaves only noise.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relais import space

_LENGTH = 4


class Spool:
    def __init__(self, folder: Path):
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self.path = Path(folder) / f"spool-{secrets.token_hex(8)}"
        self._file = open(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), "w+b")
        self._blocks = 0

    def write(self, data) -> None:
        space.ensure_space(self.path.parent, len(data))  # data/tmp shares the database's file system
        # A counter nonce is safe: the key is fresh for every spool and each index is used once.
        sealed = self._aead.encrypt(self._blocks.to_bytes(12, "big"), bytes(data), None)
        self._blocks += 1
        self._file.write(len(sealed).to_bytes(_LENGTH, "big"))
        self._file.write(sealed)

    def blocks(self) -> Iterator[bytes]:
        """The plaintext blocks, in the order written (tampering or truncation raise InvalidTag)."""
        self._file.flush()
        self._file.seek(0)
        for index in range(self._blocks):
            size = int.from_bytes(self._file.read(_LENGTH), "big")
            yield self._aead.decrypt(index.to_bytes(12, "big"), self._file.read(size), None)

    def close(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)
        self._aead = None

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
