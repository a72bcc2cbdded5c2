"""`python -m bench.archive --quick`: both ingest placements, the RSS check and the JSON line on
small sizes (~25 s; the 1M-record search catalogs are left to `make bench-archive`)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from bench.common import parse_json_line

from .quick import run_quick

RATIOS = ("ingest_ratio_1mib", "ingest_ratio_256mib", "ingest_ratio_1mib_shared", "ingest_ratio_256mib_shared")


def test_quick_benchmark_prints_table_and_json(tmp_path: Path) -> None:
    output = run_quick("bench.archive", tmp_path, timeout=300)
    assert "server peak RSS" in output and "all on" in output
    if len(os.sched_getaffinity(0)) >= 2:
        assert "store on CPU" in output  # the headline placement: the store on its own CPUs
    data = parse_json_line(output)
    for key in RATIOS:
        assert math.isfinite(data[key]) and 0.05 < data[key] < 20, (key, data[key])
    assert 20 < data["peak_rss_mb_2gib"] < 2000
    for side in ("cpu_ms_per_record_1mib", "cpu_ms_per_record_1mib_shared"):
        cpu = data[side]
        assert cpu["api"]["service"] > 0 and cpu["api"]["store"] > 0 and cpu["direct"]["store"] > 0, cpu
