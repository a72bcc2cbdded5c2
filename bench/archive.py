"""Archive benchmark: ingest through the API vs a direct minio PUT of the same bytes (same store,
same run), peak RSS of the server during a 2 GiB ingest, search p95 on 1M-record catalogs.

    make bench-archive     (python -m bench.archive [--quick])

Ends with one JSON line: ingest_ratio_1mib, ingest_ratio_256mib, peak_rss_mb_2gib,
search_p95_ms_sqlite, search_p95_ms_postgres (and the raw figures behind them).

Ingest is measured twice. The headline ratios give the store half of the CPUs and the service
with the clients the other half, on both sides alike: in production MinIO runs on its own hosts,
and what the ratio asks is whether the API in front of the store lowers the throughput the store
can take. The `_shared` ratios let all processes share every CPU: on a machine the store alone
keeps busy, they measure the sum of the CPU each side costs instead.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.retention import Retention
from minio.sse import SseS3
from minio.sseconfig import Rule, SSEConfig

from archive_service.auth import local_signing_key, mint_token
from archive_service.devstore import DevStore, start_devstore
from archive_service.settings import ArchiveSettings
from hdc.procs import ManagedProcess, free_port

from . import archive_search as search
from .common import Row, json_line, measure, peak_rss_mb, placed, render_table, split_cpus, work_dir

MiB = 1 << 20
CONCURRENCY = 4


class Server:
    """The archive API as its own process (uvicorn), so its memory is measured alone."""

    def __init__(self, work: Path, store: DevStore, **env: str) -> None:
        self.state = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**store.env(), "HDC_ARCHIVE_STATE_DIR": str(work), "HDC_ARCHIVE_CATALOG": "lab", **env}
        self.settings = ArchiveSettings(
            state_dir=work,
            **{
                k[len("HDC_ARCHIVE_") :].lower(): v
                for k, v in env.items()
                if k in ("HDC_ARCHIVE_KEK", "HDC_ARCHIVE_INDEX_KEY")
            },
        )  # type: ignore[arg-type]
        local_signing_key(self.settings)
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "archive_service.app:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        self.proc = ManagedProcess("archive", argv, work / "server.log", env=self.env)

    def start(self) -> Server:
        self.proc.start()

        def ready() -> bool:
            try:
                return httpx.get(self.url + "/readyz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        self.proc.wait_ready(ready, timeout=600)  # the first start on a 1M catalog checks its schema
        return self

    def token(self) -> str:
        return mint_token(self.settings, "bench", ["archivist"], None, ttl_seconds=7200)

    def stop(self) -> None:
        self.proc.stop()


def meta(i: int) -> str:
    return json.dumps(
        {
            "record_class": "medical",
            "subclass": "imaging",
            "facility": "hu-tunis-nord",
            "patient_id": f"TN-{i:07d}",
            "document_date": "2024-05-01",
            "title": f"Scanner {i}",
            "author": "Dr Bench",
            "language": "fr",
        }
    )


def run_parallel(n: int, work: Callable[[int], None]) -> float:
    """Run work(0..n-1) on CONCURRENCY threads; returns wall seconds."""
    lock = threading.Lock()
    todo = iter(range(n))
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None or errors:
                return
            try:
                work(i)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t


def ingest_pair(
    server: Server, direct: Minio, bucket: str, size: int, count: int, rounds: int, store_pid: int
) -> tuple[float, float, dict[str, dict[str, float]]]:
    """Median MB/s through the API and by direct PUT, alternating rounds of `count` objects, and the
    CPU milliseconds per object each side cost the service, the store and the client (this process)."""
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    token = server.token()
    # One timeout for connect, send and read: urllib3 applies the connect timeout while the body is
    # sent, and the service holds a large body back while its parts go to the store.
    http = urllib3.PoolManager(maxsize=CONCURRENCY, timeout=600.0, retries=False)
    ours: list[float] = []
    anchor: list[float] = []
    until = datetime.now(UTC) + timedelta(days=1)

    def api(i: int) -> None:
        # urllib3, the HTTP client the minio SDK itself uses, sending the bytes in one body: both
        # sides pay the same client cost (httpx costs about twice the CPU per MiB sent).
        r = http.request(
            "POST",
            server.url + "/records",
            body=data,
            headers={
                "Authorization": f"Bearer {token}",
                "X-Archive-Metadata": meta(i),
                "X-Content-SHA256": digest,
                "Content-Type": "application/octet-stream",
            },
            preload_content=True,
        )
        if r.status != 201:
            raise RuntimeError(f"ingest failed: {r.status} {r.data[:300]!r}")

    def put(i: int) -> None:
        direct.put_object(
            bucket,
            f"direct/{size}/{time.monotonic_ns()}-{i}",
            io.BytesIO(data),
            len(data),
            sse=SseS3(),
            retention=Retention(COMPLIANCE, until),
            part_size=8 * MiB,
            num_parallel_uploads=CONCURRENCY,
        )

    cpu = {side: {"service": 0.0, "store": 0.0, "client": 0.0} for side in ("api", "direct")}

    def timed(side: str, work: Callable[[int], None]) -> float:
        client = time.process_time()
        with measure(server.proc.pid, store_pid) as window:
            secs = run_parallel(count, work)
        cpu[side]["client"] += time.process_time() - client
        cpu[side]["service"] += window.per_pid[server.proc.pid]
        cpu[side]["store"] += window.per_pid[store_pid]
        return size * count / secs / 1e6

    for _ in range(rounds):
        anchor.append(timed("direct", put))
        ours.append(timed("api", api))
    per_object = {side: {k: v * 1000 / (count * rounds) for k, v in d.items()} for side, d in cpu.items()}
    return statistics.median(ours), statistics.median(anchor), per_object


def _cpus(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def cpu_note(label: str, cpu: dict[str, dict[str, float]]) -> str:
    a, d = cpu["api"], cpu["direct"]
    return (
        f"{label}: CPU ms per record through the API: service {a['service']:.1f}, store {a['store']:.1f}, "
        f"client {a['client']:.1f} (total {sum(a.values()):.1f}); direct PUT: store {d['store']:.1f}, "
        f"client {d['client']:.1f} (total {sum(d.values()):.1f}); CPU ratio {sum(d.values()) / sum(a.values()):.2f}"
    )


def pieces(data: bytes, size: int = 8 * MiB) -> Iterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), size):
        yield bytes(view[i : i + size])


def big_stream(total: int, block: bytes) -> Iterator[bytes]:
    for _ in range(total // len(block)):
        yield block


def _tree_tasks(roots: list[int]) -> list[Path]:
    """schedstat files of every thread of `roots` and of their descendants (PostgreSQL backends)."""
    out: list[Path] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        for task in Path(f"/proc/{pid}/task").glob("*"):
            out.append(task / "schedstat")
            with contextlib.suppress(OSError):  # a thread that ended
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def _cpu_ms(files: list[Path]) -> float:
    total = 0
    for f in files:
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended
            total += int(f.read_text().split()[0])  # ns on CPU
    return total / 1e6


def search_p95(server: Server, queries: list[dict[str, Any]], extra_pids: list[int]) -> dict[str, float]:
    """Wall-clock latency of each search over HTTP (p95, p50), and the CPU the service (and its
    database server) spent on it, which does not grow with other work on a shared machine."""
    token = server.token()
    h = {"Authorization": f"Bearer {token}"}
    times: list[float] = []
    cpu: list[float] = []
    hits = 0
    roots = [server.proc.pid, *extra_pids]
    with httpx.Client(timeout=60) as c:
        for q in queries[:30]:  # warm-up
            c.post(server.url + "/search", json=q, headers=h)
        for q in queries:
            files = _tree_tasks(roots)
            before = _cpu_ms(files)
            t = time.perf_counter()
            r = c.post(server.url + "/search", json=q, headers=h)
            times.append((time.perf_counter() - t) * 1000)
            cpu.append(_cpu_ms(files) - before)
            if r.status_code != 200:
                raise RuntimeError(f"search failed: {r.status_code} {r.text[:300]}")
            hits += len(r.json()["results"])
    times.sort()
    cpu.sort()
    return {
        "p95": times[int(0.95 * (len(times) - 1))],
        "p50": statistics.median(times),
        "cpu_p95": cpu[int(0.95 * (len(cpu) - 1))],
        "cpu_p50": statistics.median(cpu),
        "hits": hits,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, no 1M catalogs (smoke run)")
    args = ap.parse_args()
    # Stop cleanly (servers stopped by PID, store data removed) on Ctrl-C or kill, even in the background.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = work_dir("archive")
    load_before = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    notes: list[str] = []
    result: dict[str, Any] = {}
    rows: list[Row] = []
    store = start_devstore(work / "store")
    try:
        direct = Minio(store.endpoint, access_key=store.access_key, secret_key=store.secret_key, secure=False)
        bucket = "bench-direct"
        direct.make_bucket(bucket, object_lock=True)
        direct.set_object_lock_config(bucket, ObjectLockConfig(COMPLIANCE, 1, DAYS))
        direct.set_bucket_encryption(bucket, SSEConfig(Rule.new_sse_s3_rule()))
        server = Server(work / "a", store, HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS="1").start()
        try:
            halves = split_cpus()
            layouts: list[tuple[str, str, dict[int, set[int]]]] = []
            if halves:
                near, far = halves
                layouts.append(
                    (
                        "",
                        f"store on CPU {_cpus(far)}, service and clients on CPU {_cpus(near)}",
                        {store.process.pid: far, server.proc.pid: near, 0: near},
                    )
                )
            layouts.append(("_shared", f"all on {os.cpu_count()} shared CPUs", {}))
            for suffix, where, placement in layouts:
                with placed(placement):
                    for label, size, count in (
                        ("1mib", MiB, 16 if args.quick else 96),
                        ("256mib", 32 * MiB if args.quick else 256 * MiB, 1),
                    ):
                        ours, anchor, cpu = ingest_pair(server, direct, bucket, size, count, 3, store.process.pid)
                        what = (
                            f"{size // MiB} MiB records ({CONCURRENCY} clients)"
                            if count > 1
                            else f"{size // MiB} MiB record"
                        )
                        notes.append(cpu_note(f"{what}, {where}", cpu))
                        result[f"ingest_ratio_{label}{suffix}"] = ours / anchor
                        result[f"ingest_mbps_{label}{suffix}"] = ours
                        result[f"direct_mbps_{label}{suffix}"] = anchor
                        result[f"cpu_ms_per_record_{label}{suffix}"] = cpu
                        headline = suffix == "" or not halves
                        rows.append(
                            Row(
                                f"ingest {what}, {where}",
                                f"{ours:.1f} MB/s",
                                f"{anchor:.1f} MB/s",
                                f"{ours / anchor:.2f}",
                                ">= 0.8" if headline else "-",
                                ours / anchor >= 0.8 if headline else None,
                            )
                        )
            if not halves:  # one CPU: the shared figures are the only ones
                for label in ("1mib", "256mib"):
                    result[f"ingest_ratio_{label}"] = result[f"ingest_ratio_{label}_shared"]
        finally:
            server.stop()

        server = Server(work / "b", store, HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS="1").start()
        try:
            total = (256 if args.quick else 2048) * MiB
            block = os.urandom(8 * MiB)
            h = hashlib.sha256()
            for piece in big_stream(total, block):
                h.update(piece)
            base_rss = peak_rss_mb(server.proc.pid)
            t = time.perf_counter()
            r = httpx.post(
                server.url + "/records",
                content=big_stream(total, block),
                timeout=1800,
                headers={
                    "Authorization": f"Bearer {server.token()}",
                    "X-Archive-Metadata": meta(0),
                    "X-Content-SHA256": h.hexdigest(),
                },
            )
            secs = time.perf_counter() - t
            if r.status_code != 201:
                raise RuntimeError(f"2 GiB ingest failed: {r.status_code} {r.text[:300]}")
            peak = peak_rss_mb(server.proc.pid)
            result.update(peak_rss_mb_2gib=peak, rss_mb_before_2gib=base_rss, ingest_mbps_2gib=total / secs / 1e6)
            rows.append(
                Row(
                    f"server peak RSS, {total // MiB} MiB ingest",
                    f"{peak:.0f} MB",
                    f"{base_rss:.0f} MB idle",
                    "-",
                    "< 200 MB",
                    peak < 200,
                )
            )
            rows.append(Row(f"ingest {total // MiB} MiB streamed", f"{total / secs / 1e6:.1f} MB/s"))
        finally:
            server.stop()

        if not args.quick:
            keys = search.keys()
            env = {
                "HDC_ARCHIVE_KEK": keys["kek"],
                "HDC_ARCHIVE_INDEX_KEY": keys["index_key"],
                "HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS": "1",
            }
            qs = search.queries(600)
            url = search.build_sqlite(notes)
            server = Server(work / "s", store, HDC_ARCHIVE_DATABASE_URL=url, **env).start()
            try:
                got = search_p95(server, qs, [])
            finally:
                server.stop()
            p95 = got["p95"]
            result.update(
                search_p95_ms_sqlite=p95, search_p50_ms_sqlite=got["p50"], search_cpu_p95_ms_sqlite=got["cpu_p95"]
            )
            rows.append(Row("search p95, 1M records, SQLite (HTTP)", f"{p95:.1f} ms", "-", "-", "< 50 ms", p95 < 50))
            notes.append(
                f"SQLite: {len(qs)} queries, p50 {got['p50']:.1f} ms, {got['hits']:.0f} results; service CPU per "
                f"query p50 {got['cpu_p50']:.1f} ms, p95 {got['cpu_p95']:.1f} ms"
            )
            pg = search.Postgres()
            try:
                url = search.build_postgres(pg.start(), notes)
                server = Server(work / "p", store, HDC_ARCHIVE_DATABASE_URL=url, **env).start()
                try:
                    got = search_p95(server, qs, [pg.proc.pid] if pg.proc else [])
                finally:
                    server.stop()
            finally:
                pg.stop()
            p95 = got["p95"]
            result.update(
                search_p95_ms_postgres=p95,
                search_p50_ms_postgres=got["p50"],
                search_cpu_p95_ms_postgres=got["cpu_p95"],
            )
            rows.append(
                Row("search p95, 1M records, PostgreSQL (HTTP)", f"{p95:.1f} ms", "-", "-", "< 50 ms", p95 < 50)
            )
            notes.append(
                f"PostgreSQL: {len(qs)} queries, p50 {got['p50']:.1f} ms, {got['hits']:.0f} results; service and "
                f"PostgreSQL CPU per query p50 {got['cpu_p50']:.1f} ms, p95 {got['cpu_p95']:.1f} ms"
            )
    finally:
        store.stop()
        shutil.rmtree(work / "store", ignore_errors=True)  # object-locked data: only the filesystem can drop it
    table = render_table(rows, "")
    print(table)
    for n in notes:
        print(f"note: {n}")
    if not args.quick:
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        Path(__file__).with_name("archive.md").write_text(
            f"## Archive service\n\n`make bench-archive` ({stamp}, {os.cpu_count()} cores shared with other work, "
            f"load average before the run {load_before}; SeaweedFS `weed mini` on loopback as the store, same store "
            "and same run for both sides, rounds alternated).\n\n"
            f"- API side: {CONCURRENCY} client threads POST each record with urllib3 (the HTTP client the SDK uses; "
            "one body with its Content-Length) to the service (uvicorn with uvloop and httptools), which "
            "hashes it (SHA-256, checked against the client's), encrypts it (AES-256-GCM, fresh data key, "
            "CRC32C of the ciphertext computed while sealing), writes the pending catalog row (SQLite), sends "
            "it to the store over plain HTTP (`archive_service/s3put.py`: one PutObject with "
            "`x-amz-checksum-crc32c` for a 1 MiB record; multipart in 8 MiB parts, 4 in flight, each signed "
            "with its SHA-256, for larger ones), commits the catalog row and fsyncs its audit entry before "
            "answering.\n"
            f"- Anchor: {CONCURRENCY} client threads call the `minio` SDK's `put_object` with the same bytes over "
            "plain HTTP to the same store: an object-locked bucket, SSE-S3 and a COMPLIANCE retain-until header "
            "like the service's (one PutObject at 1 MiB; 8 MiB parts, 4 in flight, at 256 MiB). Over plain HTTP "
            "the SDK signs the SHA-256 of every payload on both sides.\n"
            "- Placement: the headline rows give the store one half of the CPUs and the service with the "
            "clients the other half, on both sides alike, as in production where MinIO runs on its own "
            "hosts; the rows marked 'shared' let every process use every CPU, so on a CPU-bound machine "
            "their ratio is close to the ratio of the CPU each side costs in all (the CPU ratio of the notes).\n"
            "- The notes give the CPU each side cost per record (service, store, client), read from /proc.\n\n"
            + table
            + "\n\n"
            + "\n".join(f"- {n}" for n in notes)
            + "\n"
        )
    print(json_line(result))


if __name__ == "__main__":
    main()
