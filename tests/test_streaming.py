"""views.streaming.blocks: a body in arbitrary chunks comes out in blocks that start where the
writer's segments start, whole and in order, whatever the chunk sizes."""

from __future__ import annotations

import asyncio
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from views import streaming

BLOCK = streaming.BLOCK


class FakeRequest:
    def __init__(self, chunks: list[bytes]):
        self._chunks = chunks

    async def stream(self):
        for chunk in self._chunks:
            yield chunk


def collect(chunks: list[bytes], first: int) -> list[bytes]:
    async def run():
        return [block async for block in streaming.blocks(FakeRequest(chunks), float("inf"), first=first)]
    result = []  # in a thread of its own: the browser tests leave Playwright's event loop in this one
    thread = threading.Thread(target=lambda: result.append(asyncio.run(run())))
    thread.start()
    thread.join()
    return result[0]


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
