"""Catalog load benchmark: parse + validate + cross-check the national catalog (`make bench-catalog`).

Anchor: parsing the same YAML files with libyaml alone (no positions, no validation), in the
same run, so the ratio shows what validation costs on this machine today. Target: the whole
load of the ~2,400-facility catalog under 2 s.
"""

from __future__ import annotations

import argparse
import time

import yaml

from bench.common import Row, json_line, median, ratio, render_table
from inventory.loader import load_catalog, resolve_path


def _time(fn: object, rounds: int) -> tuple[float, float]:
    """Median wall and CPU seconds: on a shared machine the CPU time is the steadier figure."""
    assert callable(fn)
    wall, cpu = [], []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return median(wall), median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", default="tunisia")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = resolve_path(args.catalog)
    files = sorted(root.rglob("*.yaml"))

    def parse_only() -> None:
        for f in files:
            yaml.load(f.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)

    cat = load_catalog(args.catalog)
    ours, ours_cpu = _time(lambda: load_catalog(args.catalog), args.rounds)
    anchor, anchor_cpu = _time(parse_only, args.rounds)
    what = f"'{cat.name}' ({len(cat.facilities)} facilities, {len(cat.platforms)} platforms)"
    rows = [
        Row(
            f"load + validate {what}: CPU",
            f"{ours_cpu:.3f} s",
            f"{anchor_cpu:.3f} s (libyaml parse only)",
            f"{ratio(ours_cpu, anchor_cpu):.2f}",
            "< 2 s",
            ours_cpu < 2.0,
        ),
        Row(
            f"load + validate {what}: wall",
            f"{ours:.3f} s",
            f"{anchor:.3f} s (libyaml parse only)",
            f"{ratio(ours, anchor):.2f}",
            "< 2 s",
            ours < 2.0,
        ),
    ]
    print(render_table(rows, f"catalog benchmark (median of {args.rounds})"))
    print(
        json_line(
            {
                "catalog_load_s": ours,
                "catalog_load_cpu_s": ours_cpu,
                "yaml_parse_only_s": anchor,
                "yaml_parse_only_cpu_s": anchor_cpu,
                "facilities": len(cat.facilities),
            }
        )
    )


if __name__ == "__main__":
    main()
