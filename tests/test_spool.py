"""The encrypted spool that holds a checksummed tus chunk before it is verified."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag

from relais.spool import Spool

SECRET = b"patient_id,name,diagnosis\n000123,Jan Janssens,C50.9\n" * 1000


def test_blocks_come_back_in_order_and_the_disk_holds_no_plaintext(tmp_path):
    with Spool(tmp_path) as spool:
        for i in range(0, len(SECRET), 7000):
            spool.write(SECRET[i:i + 7000])
        on_disk = spool.path.read_bytes()
        assert b"Janssens" not in on_disk and b"patient_id" not in on_disk
        assert b"".join(spool.blocks()) == SECRET
        assert oct(os.stat(spool.path).st_mode & 0o777) == "0o600"
    assert list(tmp_path.iterdir()) == []  # removed on close


def test_tampering_is_detected(tmp_path):
    with Spool(tmp_path) as spool:
        spool.write(SECRET)
        spool._file.flush()
        data = bytearray(spool.path.read_bytes())
        data[100] ^= 1
        spool.path.write_bytes(bytes(data))
        with pytest.raises(InvalidTag):
            b"".join(spool.blocks())
