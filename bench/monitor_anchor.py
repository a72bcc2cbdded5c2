"""The anchor: Debian's `prometheus-snmp-exporter` (0.21), doing the same per-cycle GET as our poller.

Its `snmp.yml` is written by hand (Debian ships no IF-MIB for the generator): one module whose
`get:` lists exactly the per-cycle OIDs for the polled interface, not walks, so both sides send
the same requests to the same agents. Version 0.21 takes `auth:` inside the module.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import yaml

from hdc.procs import ManagedProcess, free_port, tcp_ready

from .monitor_agents import Endpoint

EXPORTER = "/usr/bin/prometheus-snmp-exporter"
MODULE = "hdc_link"


@dataclass(frozen=True)
class OidField:
    """One per-cycle object: a metric name, its column (or scalar) OID, and whether it is per interface."""

    name: str
    oid: str
    per_interface: bool
    kind: str = "gauge"

    def instance(self, if_index: int) -> str:
        return f"{self.oid}.{if_index}" if self.per_interface else f"{self.oid}.0"


# The fields the poller reads every cycle (issue 3): status, 64-bit octets, errors, discards, uptime.
PER_CYCLE_FIELDS: tuple[OidField, ...] = (
    OidField("ifAdminStatus", "1.3.6.1.2.1.2.2.1.7", True),
    OidField("ifOperStatus", "1.3.6.1.2.1.2.2.1.8", True),
    OidField("ifHCInOctets", "1.3.6.1.2.1.31.1.1.1.6", True, "counter"),
    OidField("ifHCOutOctets", "1.3.6.1.2.1.31.1.1.1.10", True, "counter"),
    OidField("ifInErrors", "1.3.6.1.2.1.2.2.1.14", True, "counter"),
    OidField("ifOutErrors", "1.3.6.1.2.1.2.2.1.20", True, "counter"),
    OidField("ifInDiscards", "1.3.6.1.2.1.2.2.1.13", True, "counter"),
    OidField("ifOutDiscards", "1.3.6.1.2.1.2.2.1.19", True, "counter"),
    OidField("sysUpTime", "1.3.6.1.2.1.1.3", False),
)


def snmp_yml(
    community: str,
    if_index: int,
    fields: Sequence[OidField] = PER_CYCLE_FIELDS,
    v3: tuple[str, str, str] | None = None,
) -> str:
    """snmp_exporter 0.21 configuration: one module GETting exactly `fields` for one interface."""
    metrics = []
    for f in fields:
        metric: dict[str, object] = {"name": f.name, "oid": f.oid, "type": f.kind, "help": f"{f.name} - {f.oid}"}
        if f.per_interface:
            metric["indexes"] = [{"labelname": "ifIndex", "type": "gauge"}]
        metrics.append(metric)
    auth: dict[str, str] = {"community": community}
    if v3:
        auth = {"username": v3[0], "security_level": "authPriv", "password": v3[1], "auth_protocol": "SHA",
                "priv_protocol": "AES", "priv_password": v3[2]}  # fmt: skip
    module = {
        "version": 3 if v3 else 2,
        "timeout": "2s",
        "retries": 1,
        "auth": auth,
        "get": [f.instance(if_index) for f in fields],
        "metrics": metrics,
    }
    return yaml.safe_dump({MODULE: module}, sort_keys=False)


@dataclass
class ScrapeResult:
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, for the report


class SnmpExporter:
    """One snmp_exporter process on 127.0.0.1, stopped by PID."""

    def __init__(
        self,
        root: Path,
        community: str,
        if_index: int,
        fields: Sequence[OidField] = PER_CYCLE_FIELDS,
        v3: tuple[str, str, str] | None = None,
    ) -> None:
        if not Path(EXPORTER).exists() and shutil.which("prometheus-snmp-exporter") is None:
            raise RuntimeError("prometheus-snmp-exporter is not installed (apt-get install prometheus-snmp-exporter)")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.fields = tuple(fields)
        self.config = root / "snmp.yml"
        self.config.write_text(snmp_yml(community, if_index, fields, v3), encoding="utf-8")
        self.config.chmod(0o600)
        self.port = free_port()
        self.process = ManagedProcess(
            "snmp_exporter",
            [
                EXPORTER,
                f"--config.file={self.config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            root / "snmp_exporter.log",
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SnmpExporter:
        self.process.start()
        try:
            self.process.wait_ready(tcp_ready("127.0.0.1", self.port), 30)
        except BaseException:
            self.process.stop()
            raise
        return self

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> SnmpExporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _complete(self, body: str) -> str | None:
        """Why a scrape body is not a full answer (None when every field came back)."""
        names = {line.split("{", 1)[0].split(" ", 1)[0] for line in body.splitlines() if not line.startswith("#")}
        missing = [f.name for f in self.fields if f.name not in names]
        return f"missing {', '.join(missing)}" if missing else None

    async def scrape(self, targets: Sequence[Endpoint], concurrency: int) -> ScrapeResult:
        """Scrape every target once over `concurrency` keep-alive connections; count complete answers."""
        result = ScrapeResult()
        pending = list(reversed(targets))

        def fail(target: Endpoint, problem: str) -> None:
            result.failed += 1
            if len(result.errors) < 5:
                result.errors.append(f"{target}: {problem}")

        async def worker() -> None:
            conn: HttpConnection | None = None
            try:
                while pending:
                    target = pending.pop()
                    path = "/snmp?" + urlencode({"target": str(target), "module": MODULE})
                    try:
                        conn = conn or await HttpConnection.open("127.0.0.1", self.port)
                        status, body = await conn.get(path)
                    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                        if conn is not None:
                            conn.close()
                            conn = None
                        fail(target, f"{type(exc).__name__}: {exc}")
                        continue
                    problem = f"HTTP {status}" if status != 200 else self._complete(body.decode("utf-8", "replace"))
                    if problem is None:
                        result.ok += 1
                    else:
                        fail(target, problem)
            finally:
                if conn is not None:
                    conn.close()

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(targets)))))
        return result


class HttpConnection:
    """A minimal HTTP/1.1 keep-alive client for the scrape loop.

    httpx (~9 ms of client CPU per request here, ~100 requests/s at 50 concurrent) cannot keep the
    exporter busy, and a Go server fed slowly spends 2-3x more CPU per request (runtime wake-ups),
    which would flatter us. This client costs ~0.15 ms per request, so the exporter runs flat out.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def get(self, path: str) -> tuple[int, bytes]:
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept-Encoding: identity\r\n\r\n".encode("ascii")
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            return status, await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    return status, b"".join(chunks)
                chunks.append(chunk[:-2])
        raise ValueError("response has neither Content-Length nor chunked encoding")

    def close(self) -> None:
        self.writer.close()
