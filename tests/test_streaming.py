"""views.streaming.blocks: a body in arbitrary chunks comes out in blocks that start where the
writer's segments start, whole and in order, whatever the chunk sizes."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from views import streaming
from tests import aio

BLOCK = streaming.BLOCK


class FakeRequest:
    """What blocks() uses of a request: the body's chunks and the app's stop signal."""

    def __init__(self, chunks: list[bytes], stop_after: int | None = None):
        self._chunks, self._stop_after = chunks, stop_after
        self.app = SimpleNamespace(state=SimpleNamespace(stopping=threading.Event()))

    async def stream(self):
        for i, chunk in enumerate(self._chunks):
            if i == self._stop_after:
                self.app.state.stopping.set()  # SIGTERM arrives while this chunk is on its way
            yield chunk


def collect(chunks: list[bytes], first: int, stop_after: int | None = None, got: list | None = None) -> list[bytes]:
    got = [] if got is None else got

    async def run():
        async for block in streaming.blocks(FakeRequest(chunks, stop_after), float("inf"), first=first):
            got.append(block)
        return got
    return aio.run(run())


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=700_000), max_size=12), first=st.integers(min_value=1, max_value=BLOCK))
def test_blocks_start_on_the_writers_boundaries(sizes, first):
    body = bytes(range(256)) * (sum(sizes) // 256 + 1)
    chunks, at = [], 0
    for n in sizes:
        chunks.append(body[at : at + n])
        at += n
    body = body[:at]
    blocks = collect(chunks, first)
    assert b"".join(blocks) == body
    assert all(isinstance(block, bytes) for block in blocks)  # the writer keeps them without a copy
    expected = [first] + [BLOCK] * len(body)
    for block, size in zip(blocks[:-1], expected):
        assert len(block) == size
    if blocks:
        assert 0 < len(blocks[-1]) <= expected[len(blocks) - 1]


def test_a_stop_ends_the_body_after_the_chunk_in_hand_keeping_what_arrived():
    chunks = [bytes([i]) * 300_000 for i in range(10)]
    got: list[bytes] = []
    with pytest.raises(streaming.Stopping):
        collect(chunks, BLOCK, stop_after=4, got=got)
    assert b"".join(got) == b"".join(chunks[:5])  # the fifth chunk arrived with the stop: kept too
