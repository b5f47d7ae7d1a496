"""Tests for relais.storage: round trips, resumable writes, tamper detection, key files."""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relais.storage import (
    OVERHEAD,
    SEGMENT_SIZE,
    IntegrityError,
    SegmentWriter,
    StorageError,
    UploadFinished,
    load_master_key,
    new_file_key,
    plaintext_size,
    read_range,
    shred_file,
    unwrap_key,
    wrap_key,
)

FID = "file-0001"
HEADER_LEN = 15 + len(FID)
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
# Hypothesis reuses the test's tmp_path across examples, so each example takes fresh file names.
_names = itertools.count()
prop = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
segs = st.integers(min_value=1, max_value=64)


def fresh(tmp_path):
    return tmp_path / f"f{next(_names)}.bin"


def store(path, data, seg, key=KEY, file_id=FID):
    w = SegmentWriter.create(path, key, file_id, segment_size=seg)
    w.write(data)
    return w.finish()


def read_all(path, key=KEY, file_id=FID, start=0, end=None):
    return b"".join(read_range(path, key, file_id, start, end))


def tail_of(path):
    return path.with_name(path.name + ".tail")


def records(path, seg):
    """Split a finished file into (header, [records])."""
    raw = path.read_bytes()
    body, rec = raw[HEADER_LEN:], seg + OVERHEAD
    return raw[:HEADER_LEN], [body[i : i + rec] for i in range(0, len(body), rec)]


# --- round trips ----------------------------------------------------------------------------


@prop
@given(data=st.binary(max_size=3000), seg=segs, ranges=st.data())
def test_round_trip_and_ranges(tmp_path, data, seg, ranges):
    path = fresh(tmp_path)
    assert store(path, data, seg) == (len(data), hashlib.sha256(data).hexdigest())
    assert plaintext_size(path) == len(data)
    # Layout: full records, then a final record shorter than a segment.
    assert path.stat().st_size == HEADER_LEN + (len(data) // seg) * (seg + OVERHEAD) + OVERHEAD + len(data) % seg
    assert read_all(path) == data
    for _ in range(5):
        start = ranges.draw(st.integers(0, len(data)))
        end = ranges.draw(st.integers(start, len(data)))
        chunks = list(read_range(path, KEY, FID, start, end))
        assert b"".join(chunks) == data[start:end]
        assert all(0 < len(c) <= seg for c in chunks)
    assert read_all(path, start=len(data) // 2) == data[len(data) // 2 :]


@prop
@given(
    data=st.binary(min_size=1, max_size=2000),
    seg=segs,
    ops=st.lists(
        st.tuples(st.integers(0, 300), st.sampled_from(["none", "checkpoint", "resume", "crash"])), max_size=12
    ),
)
def test_chunked_writes_with_checkpoints_and_resumes(tmp_path, data, seg, ops):
    """Behave like a tus client: always send from the offset the server reports."""
    path = fresh(tmp_path)
    w = SegmentWriter.create(path, KEY, FID, segment_size=seg)
    acknowledged = 0
    for n, action in ops:
        w.write(data[w.offset : w.offset + n])
        if action == "checkpoint":
            acknowledged = w.checkpoint()
        elif action == "resume":
            acknowledged = w.checkpoint()
            w.close()
            w = SegmentWriter.resume(path, KEY, FID)
            assert w.offset == acknowledged
        elif action == "crash":  # no checkpoint: the tail in memory is lost, never acknowledged data
            sent = w.offset
            w.close()
            w = SegmentWriter.resume(path, KEY, FID)
            assert acknowledged <= w.offset <= sent
            acknowledged = w.offset
    w.write(data[w.offset :])
    assert w.finish() == (len(data), hashlib.sha256(data).hexdigest())
    assert read_all(path) == data
    assert not tail_of(path).exists()


@prop
@given(
    data=st.binary(min_size=1, max_size=1500),
    seg=st.integers(4, 48),
    split=st.floats(0, 1),
    damage=st.sampled_from(["truncate", "garbage", "flip"]),
    where=st.floats(0, 1),
)
def test_resume_recovers_from_torn_writes_after_checkpoint(tmp_path, data, seg, split, damage, where):
    """A crash may leave anything after the last checkpoint; resume keeps all it acknowledged."""
    path = fresh(tmp_path)
    cut = int(len(data) * split)
    w = SegmentWriter.create(path, KEY, FID, segment_size=seg)
    w.write(data[:cut])
    acknowledged = w.checkpoint()
    w.write(data[cut:])
    w.close()
    durable = HEADER_LEN + (acknowledged // seg) * (seg + OVERHEAD)
    raw = bytearray(path.read_bytes())
    pos = durable + int((len(raw) - durable) * where)
    if damage == "truncate":
        raw = raw[:pos]
    elif damage == "garbage":
        raw[pos:] = os.urandom(1 + int(where * 100))
    elif pos < len(raw):
        raw[pos] ^= 0x10
    path.write_bytes(bytes(raw))
    w = SegmentWriter.resume(path, KEY, FID)
    assert acknowledged <= w.offset <= len(data)
    w.write(data[w.offset :])
    assert w.finish() == (len(data), hashlib.sha256(data).hexdigest())
    assert read_all(path) == data


def test_default_segment_size_large_file(tmp_path):
    data = os.urandom(5 * SEGMENT_SIZE + 12345)
    path = tmp_path / "big.bin"
    w = SegmentWriter.create(path, KEY, FID)
    for i in range(0, len(data), 700_001):
        w.write(data[i : i + 700_001])
        if i == 1_400_002:
            w.checkpoint()
            w.close()
            w = SegmentWriter.resume(path, KEY, FID)
    assert w.finish() == (len(data), hashlib.sha256(data).hexdigest())
    start, end = SEGMENT_SIZE - 10, 3 * SEGMENT_SIZE + 10
    chunks = list(read_range(path, KEY, FID, start, end))
    assert b"".join(chunks) == data[start:end]
    assert [len(c) for c in chunks] == [10, SEGMENT_SIZE, SEGMENT_SIZE, 10]
    assert max(len(c) for c in read_range(path, KEY, FID)) == SEGMENT_SIZE
    assert read_all(path) == data
    assert read_all(path, start=len(data) - 5) == data[-5:]


def test_empty_file_and_range_bounds(tmp_path):
    path = tmp_path / "e.bin"
    assert store(path, b"", 16) == (0, hashlib.sha256(b"").hexdigest())
    assert path.stat().st_size == HEADER_LEN + OVERHEAD
    assert read_all(path) == b""
    path2 = tmp_path / "r.bin"
    store(path2, b"x" * 40, 16)
    for start, end in [(-1, 5), (5, 4), (0, 41), (41, None)]:
        with pytest.raises(ValueError):
            read_range(path2, KEY, FID, start, end)
    assert read_all(path2, start=40) == b""


# --- tamper detection -----------------------------------------------------------------------


def test_every_single_bit_flip_is_detected(tmp_path):
    path = tmp_path / "flip.bin"
    store(path, os.urandom(70), 16)
    raw = path.read_bytes()
    for bit in range(len(raw) * 8):
        damaged = bytearray(raw)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        with pytest.raises(IntegrityError):
            read_all(path)


@prop
@given(data=st.binary(max_size=600), seg=segs, where=st.floats(0, 1), bit=st.integers(0, 7))
def test_random_bit_flip_is_detected(tmp_path, data, seg, where, bit):
    path = fresh(tmp_path)
    store(path, data, seg)
    raw = bytearray(path.read_bytes())
    raw[min(int(where * len(raw)), len(raw) - 1)] ^= 1 << bit
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        read_all(path)


def test_every_truncation_is_detected(tmp_path):
    path = tmp_path / "t.bin"
    for n, seg in [(64, 16), (70, 16), (0, 16)]:
        store(path, os.urandom(n), seg)
        raw = path.read_bytes()
        for length in range(len(raw)):
            path.write_bytes(raw[:length])
            try:  # without the key only the layout can be checked; it may look like a shorter file
                assert plaintext_size(path) != n
            except IntegrityError:
                pass
            with pytest.raises(IntegrityError):
                read_range(path, KEY, FID)
        path.unlink()


def test_reordered_records_are_detected(tmp_path):
    path = tmp_path / "o.bin"
    store(path, os.urandom(16 * 4 + 5), 16)
    header, recs = records(path, 16)
    for i, j in itertools.combinations(range(len(recs) - 1), 2):  # full records have equal sizes
        swapped = list(recs)
        swapped[i], swapped[j] = recs[j], recs[i]
        path.write_bytes(header + b"".join(swapped))
        with pytest.raises(IntegrityError):
            read_all(path)
    path.write_bytes(header + b"".join(recs[:-2] + recs[-1:]))  # a record dropped from the middle
    with pytest.raises(IntegrityError):
        read_all(path)


@pytest.mark.parametrize("other_key, other_fid", [(OTHER_KEY, FID), (OTHER_KEY, "file-0002"), (KEY, "file-0002")])
def test_records_moved_between_files_are_detected(tmp_path, other_key, other_fid):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    store(a, os.urandom(50), 16)
    store(b, os.urandom(50), 16, key=other_key, file_id=other_fid)
    header, recs = records(a, 16)
    _, other = records(b, 16)
    for i in range(len(recs)):
        a.write_bytes(header + b"".join(recs[:i] + [other[i]] + recs[i + 1 :]))
        with pytest.raises(IntegrityError):
            read_all(a)


def test_wrong_key_or_file_id_is_refused(tmp_path):
    path = tmp_path / "k.bin"
    store(path, b"secret", 16)
    with pytest.raises(IntegrityError):
        read_all(path, key=OTHER_KEY)
    with pytest.raises(IntegrityError):
        read_all(path, file_id="file-0002")


def test_unfinished_upload_is_not_readable(tmp_path):
    for n in (0, 5, 32, 37):  # empty, partial tail only, whole segments only, both
        path = tmp_path / f"u{n}.bin"
        w = SegmentWriter.create(path, KEY, FID, segment_size=16)
        w.write(os.urandom(n))
        w.checkpoint()
        w.close()
        with pytest.raises(IntegrityError):
            plaintext_size(path)
        with pytest.raises(IntegrityError):
            read_range(path, KEY, FID)
        # Appending the checkpointed tail record gives the layout of a finished file; only the
        # final flag in the AAD tells it apart.
        tail = tail_of(path)
        path.write_bytes(path.read_bytes() + tail.read_bytes()[8:])
        assert plaintext_size(path) == n
        with pytest.raises(IntegrityError):
            read_range(path, KEY, FID)


# --- writer lifecycle -----------------------------------------------------------------------


def test_resume_refuses_damage_before_the_checkpoint_and_changes_nothing(tmp_path):
    path = tmp_path / "d.bin"
    w = SegmentWriter.create(path, KEY, FID, segment_size=16)
    w.write(os.urandom(40))
    w.checkpoint()
    w.close()
    tail = tail_of(path)
    raw, saved = path.read_bytes(), tail.read_bytes()
    damaged = bytearray(raw)
    damaged[HEADER_LEN + 20] ^= 1  # inside record 0, which the checkpoint declared durable
    path.write_bytes(bytes(damaged))
    with pytest.raises(IntegrityError):
        SegmentWriter.resume(path, KEY, FID)
    assert path.read_bytes() == bytes(damaged) and tail.read_bytes() == saved
    path.write_bytes(raw)
    with pytest.raises(IntegrityError):  # a wrong key must never look like a torn write
        SegmentWriter.resume(path, OTHER_KEY, FID)
    assert path.read_bytes() == raw and tail.read_bytes() == saved
    path.write_bytes(raw[: HEADER_LEN + 16 + OVERHEAD])  # a durable record is missing
    with pytest.raises(IntegrityError):
        SegmentWriter.resume(path, KEY, FID)


def test_resume_refuses_finished_file_even_with_wrong_key(tmp_path):
    path = tmp_path / "f.bin"
    store(path, b"done" * 10, 16)
    raw = path.read_bytes()
    with pytest.raises(UploadFinished):  # its own class: callers never read the message
        SegmentWriter.resume(path, KEY, FID)
    with pytest.raises(StorageError, match="no checkpoint") as refused:  # a wrong key cannot tell it is finished
        SegmentWriter.resume(path, OTHER_KEY, FID)
    assert not isinstance(refused.value, UploadFinished)
    assert path.read_bytes() == raw
    assert read_all(path) == b"done" * 10


def test_resume_after_crash_keeps_records_written_after_checkpoint(tmp_path):
    path = tmp_path / "c.bin"
    w = SegmentWriter.create(path, KEY, FID, segment_size=16)
    w.write(b"a" * 20)
    assert w.checkpoint() == 20
    w.write(b"b" * 40)  # records 1 and 2 reach the file; 12 bytes stay in memory and are lost
    w.close()
    w = SegmentWriter.resume(path, KEY, FID)
    assert w.offset == 48
    w.write(b"b" * 12)
    assert w.finish() == (60, hashlib.sha256(b"a" * 20 + b"b" * 40).hexdigest())


def test_resume_refuses_checkpoint_from_another_history(tmp_path):
    """An authentic .tail that the next record does not continue (two writers, stale copy) is refused."""
    path, twin = tmp_path / "h.bin", tmp_path / "twin.bin"
    w = SegmentWriter.create(path, KEY, FID, segment_size=16)
    w.write(b"a" * 20)
    w.checkpoint()  # k=1, tail "aaaa"
    twin.write_bytes(path.read_bytes())
    tail_of(twin).write_bytes(tail_of(path).read_bytes())
    w.write(b"c" * 40)  # record 1 = "aaaa" + "c" * 12
    w.close()
    w = SegmentWriter.resume(twin, KEY, FID)
    w.write(b"dd")
    w.checkpoint()  # k=1, tail "aaaadd"
    w.close()
    tail_of(path).write_bytes(tail_of(twin).read_bytes())
    with pytest.raises(IntegrityError, match="does not continue"):
        SegmentWriter.resume(path, KEY, FID)


def test_resume_refuses_bad_checkpoint_file_and_crash_inside_finish(tmp_path):
    path = tmp_path / "g.bin"
    tail = tail_of(path)
    w = SegmentWriter.create(path, KEY, FID, segment_size=16)
    w.write(b"z" * 21)
    w.checkpoint()
    w.close()
    saved = tail.read_bytes()
    tail.write_bytes(saved + b"x" * 16)  # longer than any tail can be
    with pytest.raises(IntegrityError, match="impossible length"):
        SegmentWriter.resume(path, KEY, FID)
    tail.write_bytes(saved)
    SegmentWriter.resume(path, KEY, FID).finish()
    tail.write_bytes(saved)  # as if the crash came after the final record, before .tail went
    with pytest.raises(UploadFinished):
        SegmentWriter.resume(path, KEY, FID)
    assert read_all(path) == b"z" * 21


def test_the_reader_reads_the_file_it_checked(tmp_path):
    """A file replaced (or deleted) after the checks does not change what the reader returns."""
    path, other = tmp_path / "a.bin", tmp_path / "b.bin"
    store(path, b"1" * 40, 16)
    store(other, b"2" * 40, 16)
    chunks = read_range(path, KEY, FID)
    os.replace(other, path)
    assert b"".join(chunks) == b"1" * 40


def test_create_validates_arguments(tmp_path):
    for kwargs in ({"segment_size": 0}, {"segment_size": 2**31}, {"file_id": ""}, {"key": KEY[:16]}):
        args = {"key": KEY, "file_id": FID, "segment_size": 16} | kwargs
        with pytest.raises(ValueError):
            SegmentWriter.create(tmp_path / "v.bin", args["key"], args["file_id"], segment_size=args["segment_size"])
    assert list(tmp_path.iterdir()) == []


def test_one_writer_at_a_time_and_closed_writer(tmp_path):
    path = tmp_path / "l.bin"
    w = SegmentWriter.create(path, KEY, FID, segment_size=16)
    with pytest.raises(StorageError, match="another writer"):
        SegmentWriter.resume(path, KEY, FID)
    with w:
        w.write(b"abc")
        w.checkpoint()
    with pytest.raises(StorageError, match="closed"):
        w.write(b"x")
    with SegmentWriter.resume(path, KEY, FID) as w2:  # leaving the block keeps the upload
        assert w2.offset == 3
    with pytest.raises(FileExistsError):
        SegmentWriter.create(path, KEY, FID, segment_size=16)


def test_abort_and_shred(tmp_path):
    path = tmp_path / "s.bin"
    w = SegmentWriter.create(path, KEY, FID, segment_size=16)
    w.write(b"x" * 20)
    w.checkpoint()
    w.abort()
    assert list(tmp_path.iterdir()) == []
    store(path, b"y", 16)
    assert shred_file(path) is True
    assert shred_file(path) is False
    assert list(tmp_path.iterdir()) == []


# --- keys -----------------------------------------------------------------------------------


def test_wrap_unwrap():
    master, fk = new_file_key(), new_file_key()
    assert len(fk) == 32 and fk != master
    wrapped = wrap_key(master, fk, "f1")
    assert len(wrapped) == 60 and wrap_key(master, fk, "f1") != wrapped
    assert unwrap_key(master, wrapped, "f1") == fk
    with pytest.raises(IntegrityError):
        unwrap_key(new_file_key(), wrapped, "f1")
    with pytest.raises(IntegrityError):
        unwrap_key(master, wrapped, "f2")
    with pytest.raises(IntegrityError):
        unwrap_key(master, wrapped[:-1], "f1")
    for i in range(len(wrapped)):
        with pytest.raises(IntegrityError):
            unwrap_key(master, wrapped[:i] + bytes([wrapped[i] ^ 1]) + wrapped[i + 1 :], "f1")
    with pytest.raises(ValueError):
        wrap_key(master[:16], fk, "f1")


def test_master_key_created_private_and_reloaded(tmp_path):
    path = tmp_path / "secrets" / "sub" / "master.key"
    with pytest.raises(StorageError, match="does not exist"):
        load_master_key(path)
    key = load_master_key(path, create=True)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == key.hex().encode() + b"\n"
    assert load_master_key(path) == key
    assert load_master_key(path, create=True) == key  # never replaced
    assert sorted(p.name for p in path.parent.iterdir()) == ["master.key"]


@pytest.mark.parametrize(
    "content, mode, message",
    [
        (b"ab" * 32 + b"\n", 0o644, "group or others"),
        (b"ab" * 32 + b"\n", 0o640, "group or others"),
        (b"ab" * 31 + b"\n", 0o600, "64 hex"),
        (b"ab" * 33, 0o600, "64 hex"),
        (b"zz" * 32, 0o600, "64 hex"),
        (b"ab " * 21 + b"a", 0o600, "64 hex"),
        (bytes(32), 0o600, "64 hex"),
    ],
)
def test_master_key_refused(tmp_path, content, mode, message):
    path = tmp_path / "master.key"
    path.write_bytes(content)
    path.chmod(mode)
    with pytest.raises(StorageError, match=message):
        load_master_key(path)


def test_master_key_without_newline_accepted(tmp_path):
    path = tmp_path / "master.key"
    path.write_bytes(b"0f" * 32)
    path.chmod(0o600)
    assert load_master_key(path) == b"\x0f" * 32


def read_as_the_event_loop_does(reader) -> list[bytes]:
    """Each block without waiting; where that would wait, the block by a waiting read (as
    views.streaming.decrypted does in a worker thread)."""
    got = []
    while True:
        try:
            block = reader.read(wait=False)
        except BlockingIOError:
            block = reader.read()
        if block is None:
            return got
        got.append(block)


def test_reader_without_waiting_finishes_a_block_the_disk_interrupted(tmp_path, monkeypatch):
    """read(wait=False) gives up where the page cache ends and a later read() goes on from there:
    the event loop never waits for the disk, and no byte is read twice or skipped."""
    path = tmp_path / "n.bin"
    data = os.urandom(100)
    store(path, data, 16)
    real_preadv, calls = os.preadv, []

    def preadv(fd, buffers, offset, flags=0):
        calls.append(offset)
        if len(calls) % 3 == 1:
            raise BlockingIOError(11, "not cached")
        if len(calls) % 3 == 2:  # half of it is cached
            return real_preadv(fd, [memoryview(buffers[0])[: len(buffers[0]) // 2]], offset, flags)
        return real_preadv(fd, buffers, offset, flags)

    monkeypatch.setattr(os, "preadv", preadv)
    reader = read_range(path, KEY, FID, 5, 95)
    got = read_as_the_event_loop_does(reader)
    assert b"".join(got) == data[5:95]
    assert [len(b) for b in got] == [11, 16, 16, 16, 16, 15]
    assert len(calls) >= 6  # every record was first tried without waiting
    assert reader.read() is None and reader._file is None


def test_reader_falls_back_to_waiting_where_reads_cannot_say_they_would_wait(tmp_path, monkeypatch):
    """A file system without RWF_NOWAIT, or a sandbox that forbids preadv2: every read then goes
    to the waiting path (a worker thread), and the bytes are the same."""
    path = tmp_path / "w.bin"
    store(path, b"abc" * 30, 16)
    calls = []

    def refused(*args):
        calls.append(args)
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "preadv", refused)
    got = read_as_the_event_loop_does(read_range(path, KEY, FID))
    assert b"".join(got) == b"abc" * 30 and len(calls) == 1  # tried once, then not again


def test_reader_closes_its_file(tmp_path):
    path = tmp_path / "c.bin"
    store(path, b"q" * 70, 16)
    fds = len(os.listdir("/proc/self/fd"))
    reader = read_range(path, KEY, FID)
    assert len(os.listdir("/proc/self/fd")) == fds + 1 and next(reader) == b"q" * 16
    reader.close()
    assert len(os.listdir("/proc/self/fd")) == fds and reader.read() is None
    final_only = read_range(path, KEY, FID, 65)  # only the final record, decrypted by the checks
    assert len(os.listdir("/proc/self/fd")) == fds and list(final_only) == [b"q" * 5]
    with pytest.raises(IntegrityError):
        read_range(path, KEY, "another-file")
    assert len(os.listdir("/proc/self/fd")) == fds  # a refused file is not left open


def test_the_storage_package_has_no_import_cycle():
    """Each part imports only the parts below it, by their public names (the package's own
    ``__init__`` is never imported by a part, so no part depends on the package being loaded)."""
    import ast
    import pathlib

    import relais.storage as package

    folder = pathlib.Path(package.__file__).parent
    imports = {}
    for path in folder.glob("*.py"):
        if path.name == "__init__.py":
            continue
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("relais.storage"):
                assert node.module != "relais.storage", f"{path.name} imports the package itself"
                found.add(node.module.rsplit(".", 1)[1])
                assert not any(alias.name.startswith("_") for alias in node.names), f"{path.name}: a private name"
        imports[path.stem] = found
    order, left = [], dict(imports)
    while left:  # peel off the parts whose imports are all placed: a cycle would leave some for ever
        ready = [name for name, needs in left.items() if needs <= set(order)]
        assert ready, f"import cycle among {sorted(left)}"
        order += sorted(ready)
        for name in ready:
            del left[name]
    assert order[0] == "format" and set(order) == {"format", "disk", "keys", "epochs", "reader", "writer"}
