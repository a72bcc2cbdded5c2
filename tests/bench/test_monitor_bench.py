"""`python -m bench.monitor --quick`: the whole benchmark machinery on a handful of targets (< 60 s)."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from bench.common import parse_json_line
from bench.monitor_anchor import EXPORTER, PER_CYCLE_FIELDS, snmp_yml

from .quick import run_quick

KEYS = ("cpu_per_target_ratio_vs_snmp_exporter", "targets_per_s", "cpu_share_10k_links", "peak_rss_mb_10k_links")


def test_anchor_config_is_accepted_by_the_exporter(tmp_path: Path) -> None:
    config = tmp_path / "snmp.yml"
    config.write_text(snmp_yml("c0mmunity", 7), encoding="utf-8")
    text = config.read_text()
    for field in PER_CYCLE_FIELDS:
        assert field.instance(7) in text
    result = subprocess.run(
        [EXPORTER, f"--config.file={config}", "--dry-run"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    config.write_text(text.replace("get:", "gett:"), encoding="utf-8")
    broken = subprocess.run(
        [EXPORTER, f"--config.file={config}", "--dry-run"], capture_output=True, text=True, timeout=30
    )
    assert broken.returncode != 0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_benchmark_prints_table_and_json(tmp_path: Path) -> None:
    output = run_quick("bench.monitor", tmp_path, timeout=100)
    for row in ("CPU per polled target", "targets per second", "answers complete", "CPU share of one core", "peak RSS"):
        assert row in output
    data = parse_json_line(output)
    for key in KEYS:
        assert isinstance(data[key], float | int), (key, data)
        assert math.isfinite(data[key]) and data[key] >= 0, (key, data[key])
    assert data["complete"] is True and data["quick"] is True
    assert data["targets_per_s"] > 0 and data["targets_per_s_snmp_exporter"] > 0
    assert data["cpu_ms_per_target_snmp_exporter"] > 0  # the anchor did real work
    assert data["cycles"] >= 2 and data["links"] == 200
    assert 5 < data["peak_rss_mb_10k_links"] < 2000
    assert 0 < data["cpu_share_10k_links"] < 2
