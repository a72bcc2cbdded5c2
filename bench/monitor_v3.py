"""Part 3 of `make bench-monitor`: SNMPv3 authPriv (SHA/AES) CPU per polled target, three ways.

Same snmpd agents (one process, N ports, one authPriv user), same OIDs, same concurrency:
  - ours, the lean USM codec (`monitor/usm.py`, the default);
  - ours through pysnmp (`HDC_MONITOR_V3_ENGINE=pysnmp`, what the poller used before);
  - the anchor, snmp_exporter 0.21 with a v3 module.
Each side's CPU comes from its own /proc/PID/stat around the work; rounds rotate the order and
the median is reported. Fewer targets than the v2c part: the pysnmp side is slow by nature.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .common import measure, median
from .monitor_agents import SnmpdFleet
from .monitor_anchor import SnmpExporter
from .monitor_catalog import build_catalog, write_catalog
from .monitor_ours import OurPoller

USER = "benchnoc"


@dataclass
class V3Result:
    targets: int
    cpu_ms: dict[str, list[float]] = field(default_factory=lambda: {"lean": [], "pysnmp": [], "anchor": []})
    answered: dict[str, int] = field(default_factory=lambda: {"lean": 0, "pysnmp": 0, "anchor": 0})
    asked: dict[str, int] = field(default_factory=lambda: {"lean": 0, "pysnmp": 0, "anchor": 0})
    problems: list[str] = field(default_factory=list)

    def median_ms(self, side: str) -> float:
        return median(self.cpu_ms[side])

    @property
    def complete(self) -> bool:
        return all(self.answered[s] == self.asked[s] for s in self.asked)


def compare_v3(root: Path, community: str, targets: int, rounds: int, passes: int, concurrency: int) -> V3Result:
    auth, priv = secrets.token_hex(10), secrets.token_hex(10)
    result = V3Result(targets)
    secrets_dir = root / "secrets-v3"
    with SnmpdFleet(root / "agents-v3", community, v3=(USER, auth, priv)) as fleet:
        fleet.start(["127.0.0.1"], targets)
        catalog = write_catalog(
            build_catalog(fleet.endpoints, 1, name="bench-v3", v3_user=USER),
            root / "catalog-v3",
            community,
            secrets_dir,
            v3_keys=(auth, priv),
        )
        endpoints = fleet.endpoints
        with (
            SnmpExporter(root / "anchor-v3", community, 1, v3=(USER, auth, priv)) as exporter,
            OurPoller(root / "lean", catalog, secrets_dir, concurrency, discovery_every=100_000) as lean,
            OurPoller(
                root / "pysnmp", catalog, secrets_dir, concurrency, discovery_every=100_000,
                env={"HDC_MONITOR_V3_ENGINE": "pysnmp"},
            ) as slow,
        ):  # fmt: skip

            def ours(poller: OurPoller, side: str) -> None:
                reply = poller.command("cycle")
                result.asked[side] += len(endpoints)
                result.answered[side] += int(reply["polled"]) - int(reply["failed"])
                if reply["failed"]:
                    result.problems.append(f"{side}: {reply['failed']} failed: {reply['errors']}")

            def anchor() -> None:
                scraped = asyncio.run(exporter.scrape(endpoints, concurrency))
                result.asked["anchor"] += len(endpoints)
                result.answered["anchor"] += scraped.ok
                result.problems += [f"anchor: {e}" for e in scraped.errors]

            work = {"lean": lambda: ours(lean, "lean"), "pysnmp": lambda: ours(slow, "pysnmp"), "anchor": anchor}
            pids = {"lean": lean.pid, "pysnmp": slow.pid, "anchor": exporter.pid}
            for _ in range(2):  # warm-up: engine discovery, key localisation, descriptive fields
                lean.command("cycle")
                slow.command("cycle")
                asyncio.run(exporter.scrape(endpoints, concurrency))
            sides = ["lean", "pysnmp", "anchor"]
            for r in range(rounds):
                for side in sides[r % 3 :] + sides[: r % 3]:
                    with measure(pids[side]) as cpu:
                        for _ in range(passes):
                            work[side]()
                    result.cpu_ms[side].append(cpu.cpu_s / (len(endpoints) * passes) * 1000)
    return result
