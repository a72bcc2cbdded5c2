"""`make bench-monitor`: our SNMP poller against Debian's prometheus-snmp-exporter, same run, same agents.

    python -m bench.monitor            # the full benchmark (~5 minutes)
    python -m bench.monitor --quick    # a tiny run that checks the machinery (~30 s)

Part 1, CPU per polled target: N simulated routers (Net-SNMP snmpd, one process answering on N
UDP ports, fast enough not to be the bottleneck) are polled for the per-cycle fields (ifOperStatus,
ifAdminStatus, ifHCIn/OutOctets, ifIn/OutErrors, ifIn/OutDiscards, sysUpTime of ifIndex 1) by
  - the anchor: snmp_exporter 0.21 scraped /snmp?target=… for every target, 50 at a time;
  - ours: the hdc poller (`bench.monitor_runner`), one cycle over the same targets, 50 in flight.
Each side's CPU is read from its own /proc/PID/stat around the work; rounds alternate the order
and the median is reported, because these machines are shared and noisy.

Part 2, many links on a real interval: `hdc monitor run` on a generated catalog of 10,000 links
(ten snmpd processes on ten loopback addresses) with a 60 s interval, for a few cycles, with a
Prometheus-style /metrics scrape per interval: CPU share of one core and peak RSS (VmHWM).

Part 3, SNMPv3 authPriv (SHA/AES): CPU per target of the lean USM codec, of the same poller
through pysnmp, and of snmp_exporter with a v3 module, on the same agents (`bench.monitor_v3`).

The output is a table, then one JSON line (the last line) with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .common import Row, json_line, measure, median, ratio, render_table, work_dir
from .monitor_agents import SnmpdFleet
from .monitor_anchor import PER_CYCLE_FIELDS, SnmpExporter
from .monitor_catalog import build_catalog, write_catalog
from .monitor_links import LinksRun, run_links
from .monitor_ours import OurPoller
from .monitor_v3 import V3Result, compare_v3

IF_INDEX = 1  # lo: present on every host, and it has the ifX (64-bit) counters
CPU_RATIO_TARGET = 1.0  # no more CPU per target than the Go exporter
CPU_SHARE_TARGET = 0.5  # of one core, 10,000 links every 60 s
PEAK_RSS_TARGET_MB = 300.0


@dataclass(frozen=True)
class Options:
    targets: int
    v3_targets: int
    rounds: int
    passes: int
    concurrency: int
    links: int
    interval: float
    cycles: int
    quick: bool
    keep: bool
    scrape_metrics: bool

    @property
    def link_hosts(self) -> list[str]:
        count = max(1, -(-self.links // 1000))  # one snmpd (and one loopback address) per 1,000 links
        return [f"127.0.{160 + i}.1" for i in range(count)]


@dataclass
class Side:
    """Per-round figures for one side of the comparison."""

    cpu_ms_per_target: list[float] = field(default_factory=list)
    targets_per_s: list[float] = field(default_factory=list)
    agent_ms_per_get: list[float] = field(default_factory=list)
    answered: int = 0
    asked: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    targets: int
    ours: Side = field(default_factory=Side)
    anchor: Side = field(default_factory=Side)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def compare(opts: Options, root: Path, community: str) -> Comparison:
    """Part 1: same targets, same OIDs, same concurrency; CPU per target of each side's own process."""
    result = Comparison(opts.targets)
    secrets_dir = root / "secrets"
    with SnmpdFleet(root / "agents-compare", community) as fleet:
        fleet.start(["127.0.0.1"], opts.targets)
        _log(f"snmpd answering on {len(fleet.endpoints)} ports (pids {fleet.pids})")
        catalog = write_catalog(
            build_catalog(fleet.endpoints, IF_INDEX), root / "catalog-compare", community, secrets_dir
        )
        targets = fleet.endpoints
        with (
            SnmpExporter(root / "anchor", community, IF_INDEX) as exporter,
            OurPoller(root / "ours", catalog, secrets_dir, opts.concurrency, discovery_every=100_000) as ours,
        ):
            _log(f"snmp_exporter pid {exporter.pid}, hdc poller pid {ours.pid}")
            asked = ours.command("oids")
            anchor_oids = sorted(f.instance(IF_INDEX) for f in PER_CYCLE_FIELDS)
            if sorted(asked["oids"]) != anchor_oids:
                raise RuntimeError(f"the poller GETs {asked['oids']}, the anchor {anchor_oids}: not the same work")

            def anchor_pass() -> None:
                scraped = asyncio.run(exporter.scrape(targets, opts.concurrency))
                result.anchor.asked += len(targets)
                result.anchor.answered += scraped.ok
                result.anchor.problems += scraped.errors

            def ours_pass() -> None:
                reply = ours.command("cycle")
                result.ours.asked += len(targets)
                result.ours.answered += int(reply["polled"]) - int(reply["failed"])
                if reply["failed"]:
                    result.ours.problems.append(f"{reply['failed']} failed: {reply['errors']}")
                if reply["with_rates"] != len(targets):
                    result.ours.answered -= len(targets) - int(reply["with_rates"])
                    result.ours.problems.append(f"{len(targets) - reply['with_rates']} links without rates")

            # Warm-up, not measured: the poller's first poll of a target also reads its descriptive
            # fields, and the Go runtime sizes its heap and thread pool on the first requests.
            for _ in range(2):
                ours.command("cycle")
                asyncio.run(exporter.scrape(targets, opts.concurrency))

            for r in range(opts.rounds):
                order = [("anchor", exporter.pid), ("ours", ours.pid)]
                if r % 2:
                    order.reverse()
                for name, pid in order:
                    side = result.anchor if name == "anchor" else result.ours
                    work = anchor_pass if name == "anchor" else ours_pass
                    with measure(pid) as cpu, measure(*fleet.pids) as agents:
                        for _ in range(opts.passes):
                            work()
                    done = len(targets) * opts.passes
                    side.cpu_ms_per_target.append(cpu.cpu_s / done * 1000)
                    side.targets_per_s.append(done / cpu.wall_s)
                    side.agent_ms_per_get.append(agents.cpu_s / done * 1000)
                _log(
                    f"round {r + 1}/{opts.rounds}: CPU per target ours {result.ours.cpu_ms_per_target[-1]:.3f} ms, "
                    f"anchor {result.anchor.cpu_ms_per_target[-1]:.3f} ms"
                )
    return result


def many_links(opts: Options, root: Path, community: str) -> LinksRun:
    """Part 2: `hdc monitor run` over `opts.links` links, `opts.cycles` intervals of `opts.interval` s."""
    secrets_dir = root / "secrets"
    per_host = -(-opts.links // len(opts.link_hosts))
    with SnmpdFleet(root / "agents-links", community) as fleet:
        fleet.start(opts.link_hosts, per_host)
        endpoints = fleet.endpoints[: opts.links]
        fleet.check_all()
        _log(f"{len(fleet.processes)} snmpd processes answering on {len(endpoints)} endpoints")
        t = time.perf_counter()
        catalog = write_catalog(build_catalog(endpoints, IF_INDEX), root / "catalog-links", community, secrets_dir)
        _log(f"catalog of {len(endpoints)} links written and validated in {time.perf_counter() - t:.1f} s: {catalog}")
        _log(f"hdc monitor run: {opts.cycles} cycles of {opts.interval:g} s")
        timeout = min(2.0, opts.interval / 2.5)  # the settings insist timeout × (retries + 1) <= interval
        return run_links(
            root / "links",
            catalog,
            secrets_dir,
            len(endpoints),
            opts.interval,
            opts.cycles,
            scrape_metrics=opts.scrape_metrics,
            timeout=timeout,
        )


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def report(opts: Options, cmp: Comparison, links: LinksRun, v3: V3Result) -> tuple[str, dict[str, object]]:
    ours_cpu, anchor_cpu = median(cmp.ours.cpu_ms_per_target), median(cmp.anchor.cpu_ms_per_target)
    ours_tps, anchor_tps = median(cmp.ours.targets_per_s), median(cmp.anchor.targets_per_s)
    cpu_ratio = ratio(ours_cpu, anchor_cpu)
    complete = cmp.ours.answered == cmp.ours.asked and cmp.anchor.answered == cmp.anchor.asked
    # The anchor renders ~1.7 KB of metrics text per target inside its per-target CPU; ours renders
    # all links at once on /metrics, measured in part 2: add that share for a like-for-like figure.
    exposition_ms = median(links.scrape_cpu_s) / links.links * 1000 if links.scrape_cpu_s else float("nan")
    with_exposition = ours_cpu + exposition_ms
    links_ok = not links.problems
    v3_lean, v3_slow, v3_anchor = v3.median_ms("lean"), v3.median_ms("pysnmp"), v3.median_ms("anchor")
    v3_ratio = ratio(v3_lean, v3_anchor)
    n = f"{cmp.targets} targets, {opts.concurrency} in flight, median of {opts.rounds}"
    k = f"{links.links:,} links, {links.interval_s:g} s interval, {links.cycles_done} steady cycles"
    rows = [
        Row(
            f"CPU per polled target, ms ({n})",
            _fmt(ours_cpu),
            _fmt(anchor_cpu),
            _fmt(cpu_ratio, 2) + "x",
            f"<= {CPU_RATIO_TARGET:.2f}x",
            complete and cpu_ratio <= CPU_RATIO_TARGET,
        ),
        Row(
            "targets per second (one cycle)",
            _fmt(ours_tps, 0),
            _fmt(anchor_tps, 0),
            _fmt(ratio(ours_tps, anchor_tps), 2) + "x",
        ),
        Row(
            "CPU per target incl. Prometheus exposition, ms (poll + 1 /metrics scrape per cycle)",
            _fmt(with_exposition),
            _fmt(anchor_cpu),
            _fmt(ratio(with_exposition, anchor_cpu), 2) + "x",
        ),
        Row(
            "answers complete (all fields, every target; ours: with rates)",
            f"{cmp.ours.answered}/{cmp.ours.asked}",
            f"{cmp.anchor.answered}/{cmp.anchor.asked}",
            target="all",
            passed=complete,
        ),
        Row(
            "agent (snmpd) CPU per GET, ms: not the bottleneck",
            _fmt(median(cmp.ours.agent_ms_per_get)),
            _fmt(median(cmp.anchor.agent_ms_per_get)),
        ),
        Row(
            f"SNMPv3 authPriv SHA/AES: CPU per target, ms ({v3.targets} targets; ours: lean USM codec)",
            _fmt(v3_lean),
            _fmt(v3_anchor),
            _fmt(v3_ratio, 2) + "x",
            f"<= {CPU_RATIO_TARGET:.2f}x",
            v3.complete and v3_ratio <= CPU_RATIO_TARGET,
        ),
        Row(
            "  the same poller through pysnmp (HDC_MONITOR_V3_ENGINE=pysnmp), ms; ratio = lean / pysnmp",
            _fmt(v3_slow),
            ratio=_fmt(ratio(v3_lean, v3_slow), 3) + "x",
        ),
        Row(
            "  SNMPv3 answers complete (lean / pysnmp / anchor)",
            f"{v3.answered['lean']}/{v3.asked['lean']}, {v3.answered['pysnmp']}/{v3.asked['pysnmp']}",
            f"{v3.answered['anchor']}/{v3.asked['anchor']}",
            target="all",
            passed=v3.complete,
        ),
        Row(
            f"CPU share of one core ({k})",
            f"{links.cpu_share * 100:.1f} %",
            target=f"< {CPU_SHARE_TARGET * 100:.0f} %",
            passed=links_ok and links.cpu_share < CPU_SHARE_TARGET,
        ),
        Row(
            "  of which polling (without the /metrics scrapes)",
            f"{links.poll_cpu_share * 100:.1f} %",
        ),
        Row(
            f"peak RSS, MiB ({links.links:,} links)",
            f"{links.peak_rss_mb:.0f}",
            target=f"< {PEAK_RSS_TARGET_MB:.0f}",
            passed=links_ok and links.peak_rss_mb < PEAK_RSS_TARGET_MB,
        ),
        Row(
            "cycle wall time, s (steady cycles in the window)",
            ", ".join(_fmt(d, 1) for d in links.cycle_durations_s) or "none",
        ),
        Row("/metrics scrape (gzip, as Prometheus asks): CPU s, MB of text", _scrape_cell(links)),
        Row(
            "RSS, MiB: peak after start-up / after 1st cycle / before 1st scrape; RSS at end",
            f"{links.rss_after_startup_mb:.0f} / {links.rss_after_first_cycle_mb:.0f} / "
            f"{_fmt(links.peak_rss_before_scrape_mb, 0)}; {links.rss_at_end_mb:.0f}",
        ),
        Row(
            "first cycle (with descriptive fields): CPU s / wall s",
            ("in start-up" if links.first_cycle_in_startup else _fmt(links.first_cycle_cpu_s, 1))
            + f" / {_fmt(links.first_cycle_s, 1)}",
        ),
        Row(
            "start-up (imports, catalog load"
            + (", 1st cycle" if links.first_cycle_in_startup else "")
            + "): CPU s / wall s",
            f"{links.startup_cpu_s:.1f} / {links.startup_wall_s:.1f}",
        ),
    ]
    title = (
        f"bench-monitor ({'quick' if opts.quick else 'full'}) — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    table = render_table(rows, title)
    problems = cmp.ours.problems[:3] + cmp.anchor.problems[:3] + links.problems + v3.problems[:3]
    if problems:
        table += "\nproblems:\n" + "\n".join(f"  - {p}" for p in problems)
    data: dict[str, object] = {
        "cpu_per_target_ratio_vs_snmp_exporter": cpu_ratio,
        "targets_per_s": ours_tps,
        "cpu_share_10k_links": links.cpu_share,
        "peak_rss_mb_10k_links": links.peak_rss_mb,
        "cpu_ms_per_target": ours_cpu,
        "cpu_ms_per_target_snmp_exporter": anchor_cpu,
        "targets_per_s_snmp_exporter": anchor_tps,
        "v3_cpu_ms_per_target": v3_lean,
        "v3_cpu_ms_per_target_pysnmp": v3_slow,
        "v3_cpu_ms_per_target_snmp_exporter": v3_anchor,
        "v3_cpu_per_target_ratio_vs_snmp_exporter": v3_ratio,
        "cpu_share_10k_links_polling_only": links.poll_cpu_share,
        "cpu_ms_per_target_with_exposition": with_exposition,
        "rss_at_end_mb_10k_links": links.rss_at_end_mb,
        "metrics_scrape_cpu_s": median(links.scrape_cpu_s),
        "metrics_scrape_mb": median([b / 1e6 for b in links.scrape_bytes]),
        "peak_rss_mb_before_first_scrape": links.peak_rss_before_scrape_mb,
        "startup_cpu_s_10k_links": links.startup_cpu_s,
        "first_cycle_cpu_s_10k_links": links.first_cycle_cpu_s,
        "targets": cmp.targets,
        "rounds": opts.rounds,
        "concurrency": opts.concurrency,
        "links": links.links,
        "interval_s": links.interval_s,
        "cycles": links.cycles_done,
        "complete": complete and links_ok and v3.complete,
        "quick": opts.quick,
        "passed": all(r.passed for r in rows if r.passed is not None),
    }
    return table, data


def _scrape_cell(links: LinksRun) -> str:
    if not links.scrape_cpu_s:
        return "not scraped"
    return f"{median(links.scrape_cpu_s):.2f} s, {median([float(b) for b in links.scrape_bytes]) / 1e6:.1f} MB"


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and a 5 s interval: checks the machinery only")
    parser.add_argument("--targets", type=int, help="targets in the CPU comparison (default 1000; quick 50)")
    parser.add_argument("--v3-targets", type=int, help="targets in the SNMPv3 comparison (default 200; quick 20)")
    parser.add_argument("--rounds", type=int, help="measured rounds per side (default 5; quick 2)")
    parser.add_argument("--passes", type=int, help="cycles over all targets per round (default 3; quick 2)")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight on each side (default 50)")
    parser.add_argument("--links", type=int, help="links polled by one `hdc monitor run` (default 10000; quick 200)")
    parser.add_argument("--interval", type=float, help="poll interval in seconds (default 60; quick 5)")
    parser.add_argument("--cycles", type=int, help="intervals measured (default 3; quick 2)")
    parser.add_argument("--no-scrape", action="store_true", help="do not scrape /metrics during the links run")
    parser.add_argument("--keep", action="store_true", help="keep bench/.work/<run>/ (configs, logs, catalogs)")
    a = parser.parse_args(argv)
    q = a.quick

    def pick(value: int | float | None, full: int | float, quick: int | float) -> int | float:
        return value if value is not None else (quick if q else full)

    opts = Options(
        targets=int(pick(a.targets, 1000, 50)),
        v3_targets=int(pick(a.v3_targets, 200, 20)),
        rounds=int(pick(a.rounds, 5, 2)),
        passes=int(pick(a.passes, 3, 2)),
        concurrency=a.concurrency,
        links=int(pick(a.links, 10_000, 200)),
        interval=float(pick(a.interval, 60.0, 5.0)),
        cycles=int(pick(a.cycles, 3, 2)),
        quick=q,
        keep=a.keep,
        scrape_metrics=not a.no_scrape,
    )
    for name in ("targets", "v3_targets", "rounds", "passes", "concurrency", "links", "cycles"):
        if getattr(opts, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if opts.targets > 10_000 or opts.links > 20_000:
        parser.error("--targets is at most 10000 and --links at most 20000 (ports and open files on one host)")
    if opts.interval < 2:
        parser.error("--interval must be at least 2 seconds")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    for tool in ("snmpd", "snmpget"):
        if shutil.which(tool) is None:
            print(f"bench-monitor: {tool} is not installed (apt-get install snmpd snmp)", file=sys.stderr)
            return 2
    root = work_dir("monitor")
    community = secrets.token_hex(12)  # generated for this run; agents, catalog secret and anchor share it
    _log(f"work directory {root}")
    try:
        cmp = compare(opts, root, community)
        links = many_links(opts, root, community)
        _log(f"SNMPv3: {opts.v3_targets} targets, lean codec vs pysnmp vs snmp_exporter")
        v3 = compare_v3(root, community, opts.v3_targets, opts.rounds, opts.passes, opts.concurrency)
    except BaseException:
        _log(f"failed: configs and logs kept in {root}")
        raise
    if opts.keep:
        _log(f"configs and logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    table, data = report(opts, cmp, links, v3)
    print(table)
    print(json_line(data), flush=True)
    return 0 if data["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
