"""Encrypted file storage: AES-256-GCM in fixed-size segments, one random key per file.

Its public names, used as ``storage.<name>``, are here; the parts, each importing only those
below it (``format`` <- ``disk`` <- ``keys`` <- ``epochs``; ``reader``, ``writer``):

- :mod:`relais.storage.format`: the data file format (documented there), its constants, errors
  and records;
- :mod:`relais.storage.disk`: whole writes and reads, durable folder entries, shredding;
- :mod:`relais.storage.keys`: the master key file, file keys and their wrapping;
- :mod:`relais.storage.epochs`: the day keys that wrap file keys, and their destruction;
- :mod:`relais.storage.reader`: finished files, read by range;
- :mod:`relais.storage.writer`: uploads written across requests and restarts, with checkpoints.
"""

from relais.storage.disk import shred_file
from relais.storage.format import OVERHEAD, SEGMENT_SIZE, IntegrityError, StorageError, UploadFinished
from relais.storage.epochs import EpochKeys, KeyGone, epoch_end, epoch_of, epoch_start
from relais.storage.keys import load_master_key, new_file_key, unwrap_key, wrap_key
from relais.storage.reader import RangeReader, plaintext_size, read_range
from relais.storage.writer import SegmentWriter

__all__ = [
    "EpochKeys", "KeyGone", "epoch_end", "epoch_of", "epoch_start",
    "OVERHEAD", "SEGMENT_SIZE", "IntegrityError", "RangeReader", "SegmentWriter", "StorageError", "UploadFinished",
    "load_master_key", "new_file_key", "plaintext_size", "read_range", "shred_file", "unwrap_key", "wrap_key",
]
