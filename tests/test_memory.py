"""The allocator tuning (relais.memory): 1 MiB blocks are reused from the heap, not mapped anew
and faulted in page by page each time. Measured in a fresh interpreter, in page faults, not time."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
from relais import memory
if sys.argv[1] == "tuned":
    assert memory.tune_malloc()
half = bytes(512 * 1024)
def churn():  # what a transfer does: join chunks into a 1 MiB block, use it, drop it
    for _ in range(200):
        block = b"".join([half[1:], half[1:]])
        del block
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tuning is for glibc's malloc")
def test_tuned_allocator_reuses_megabyte_blocks():
    untuned, tuned = faults("default"), faults("tuned")
    assert untuned > 200 * 100  # glibc's defaults: each 1 MiB block mapped and faulted in anew
    assert tuned < untuned / 20
