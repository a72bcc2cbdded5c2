"""Our side of the benchmark: the hdc poller in a process of its own, driven one cycle at a time.

    python -m bench.monitor_runner --catalog DIR --control-port PORT [--concurrency 50]

It loads the catalog and builds its targets exactly as `hdc monitor run` does (the catalog
loader, `targets_from_catalog`, `Poller`), then waits on a loopback control port. The benchmark
sends one line per command and reads one JSON line back:

    oids   -> the OIDs one steady-state cycle GETs for a target (to check the anchor does the same)
    cycle  -> run one poll cycle; reply with its statistics
    quit   -> stop

so the benchmark measures this process's CPU around a cycle from /proc, with start-up
(imports, catalog load) outside the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any

from inventory.loader import load_catalog
from monitor import ber
from monitor.poller import POLL_64, Poller, oids_for
from monitor.settings import load_settings
from monitor.targets import targets_from_catalog


def _cycle_reply(poller: Poller, wall_s: float) -> dict[str, Any]:
    s = poller.stats
    snap = poller.snapshot()
    up = sum(1 for st in snap.values() if st.reachable)
    with_rates = sum(1 for st in snap.values() if st.in_bps is not None)
    return {
        "wall_s": wall_s,
        "polled": s.polled,
        "failed": s.failed,
        "requests": s.requests,
        "retries": s.retries,
        "errors": s.errors,
        "reachable": up,
        "with_rates": with_rates,
    }


async def serve(args: argparse.Namespace) -> None:
    catalog = load_catalog(args.catalog)
    targets = targets_from_catalog(catalog)
    broken = [t for t in targets if t.config_error]
    if broken:
        raise SystemExit(
            f"{len(broken)} targets cannot be polled, e.g. {broken[0].facility_id}: {broken[0].config_error}"
        )
    settings = load_settings(concurrency=args.concurrency, interval=args.interval, discovery_every=args.discovery_every)
    poller = Poller(targets, settings)
    stop = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not stop.is_set():
            line = (await reader.readline()).decode().strip()
            if not line:
                break  # connection closed (the readiness probe does this)
            if line == "quit":
                stop.set()
                break
            if line == "cycle":
                t0 = time.perf_counter()
                await poller.run_cycle()
                reply: dict[str, Any] = _cycle_reply(poller, time.perf_counter() - t0)
            elif line == "oids":
                t = targets[0]
                reply = {"oids": [ber.oid_str(o) for o in oids_for(POLL_64, t.if_index)], "if_index": t.if_index}
            else:
                reply = {"error": f"unknown command {line!r}"}
            writer.write((json.dumps(reply) + "\n").encode())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.control_port)
    print(json.dumps({"ready": True, "targets": len(targets)}), flush=True)
    async with server:
        await stop.wait()
    poller.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor_runner", description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", required=True, help="catalog directory or file")
    parser.add_argument("--control-port", type=int, required=True, help="loopback TCP port for commands")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight at once")
    parser.add_argument("--interval", type=float, default=60.0, help="poll interval the settings are checked against")
    parser.add_argument(
        "--discovery-every",
        type=int,
        default=20,
        help="re-read descriptive fields every N polls (large: every measured cycle is the steady-state GET)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
