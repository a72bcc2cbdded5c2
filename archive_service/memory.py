"""Keep the allocator from mapping and unmapping every record-sized buffer.

glibc serves large allocations with a fresh mmap() and returns them with munmap(): each 1 MiB
buffer of an ingest then costs ~256 page faults when first touched. Measured on the bench's
1 MiB records: ~0.5 ms of system CPU per record, as much as the AES-GCM of that megabyte.
A fixed mmap threshold of 4 MiB keeps record-sized buffers in the heap, reused from one request
to the next (with a trim threshold that does not hand the heap top back after every request);
multipart buffers (8 MiB parts) still come and go with mmap, so the memory of a large ingest is
returned as soon as it is done and the peak stays bounded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("hdc.archive")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 32 << 20


def tune_allocator() -> bool:
    """Apply the thresholds (glibc only); False where the C library has no mallopt."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        log.info("allocator tuning skipped: no glibc mallopt")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
