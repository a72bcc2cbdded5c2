"""The allocator tuning really keeps record-sized buffers from faulting in afresh (memory.py)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import resource, sys
from archive_service.memory import tune_allocator
tuned = tune_allocator()
data = bytes(1 << 20)
for _ in range(20):  # warm up: the heap grows once
    bytes(bytearray(data))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    bytes(bytearray(data))  # two 1 MiB buffers made and freed, as an ingest does per record
print(tuned, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 200)
"""


def faults_per_round(tuning: str) -> tuple[bool, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={"HDC_ARCHIVE_MALLOC_TUNING": tuning, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    return out[0] == "True", float(out[1])


def test_tuned_allocator_reuses_record_sized_buffers() -> None:
    tuned, faults = faults_per_round("on")
    assert tuned and faults < 5
    untuned, faults_off = faults_per_round("off")
    assert not untuned and faults_off > 100  # 256 pages per fresh 1 MiB mapping
