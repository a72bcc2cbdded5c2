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


def _time(fn: object, rounds: int) -> float:
    assert callable(fn)
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return median(samples)


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
    ours = _time(lambda: load_catalog(args.catalog), args.rounds)
    anchor = _time(parse_only, args.rounds)
    rows = [
        Row(
            f"load + validate '{cat.name}' ({len(cat.facilities)} facilities, {len(cat.platforms)} platforms)",
            f"{ours:.3f} s",
            f"{anchor:.3f} s (libyaml parse only)",
            f"{ratio(ours, anchor):.2f}",
            "< 2 s",
            ours < 2.0,
        )
    ]
    print(render_table(rows, f"catalog benchmark (median of {args.rounds})"))
    print(json_line({"catalog_load_s": ours, "yaml_parse_only_s": anchor, "facilities": len(cat.facilities)}))


if __name__ == "__main__":
    main()
