"""`hdc run`: the whole platform on embedded defaults, for a newcomer's first look.

It supervises the parts' own commands as separate processes (stopped by PID, in reverse
order): the lab network simulated by snmpsim, the archive API on an embedded SeaweedFS store,
and the monitor (poller, metrics, alerting, NOC page) polling the simulated routers. A few
sample records are ingested so the archive shows data at once. The sandbox starts fresh each
run (the embedded store and the archive's state are created anew, together, so the archive
catalog never lists objects a previous store held).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx

from hdc.errors import UserError
from hdc.procs import ManagedProcess, tcp_ready
from inventory.loader import load_catalog
from inventory.secrets import ensure_secrets


@dataclass(frozen=True)
class RunConfig:
    catalog: str = "lab"
    state_dir: Path = Path(".state/run")
    host: str = "127.0.0.1"
    archive_port: int = 8080
    monitor_port: int = 9105
    interval: float = 10.0
    seed: bool = True


def _hdc(*args: str) -> list[str]:
    return [sys.executable, "-m", "hdc", *args]


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


def _port_free(host: str, port: int) -> None:
    if tcp_ready(host, port)():
        raise UserError(f"{host}:{port} is already in use (another `hdc run`?); stop it or pick another port")


SAMPLES = [
    ("medical", "consultation", "hu-tunis-nord", "TN-000123", "Compte rendu de consultation de cardiologie", "fr"),
    ("medical", "imaging", "hu-sfax", "TN-004567", "تقرير التصوير بالرنين المغناطيسي", "ar"),
    ("administrative", "hr", "hr-ariana", None, "Décision d'affectation du personnel infirmier", "fr"),
]


def seed_archive(base_url: str, token: str) -> int:
    """Ingest a few sample records through the public API (as a client would)."""
    stored = 0
    for record_class, subclass, facility, patient, title, lang in SAMPLES:
        body = f"{title}\n\nDocument d'exemple créé par `hdc run` le {date.today()}.\n".encode()
        meta = {
            "record_class": record_class,
            "subclass": subclass,
            "facility": facility,
            "document_date": str(date.today()),
            "title": title,
            "author": "hdc run",
            "language": lang,
            "tags": ["sample"],
        }
        if patient:
            meta["patient_id"] = patient
        resp = httpx.post(
            f"{base_url}/records",
            content=body,
            headers={
                "Authorization": f"Bearer {token}",
                "X-Archive-Metadata": json.dumps(meta, ensure_ascii=True),
                "X-Content-SHA256": hashlib.sha256(body).hexdigest(),
                "Content-Type": "text/plain; charset=utf-8",
            },
            timeout=30,
        )
        if resp.status_code == 201:
            stored += 1
        else:
            print(f"hdc run: sample record not stored ({resp.status_code}): {resp.text[:200]}", file=sys.stderr)
    return stored


def run(cfg: RunConfig) -> None:
    cat = load_catalog(cfg.catalog)
    state = cfg.state_dir.resolve()
    secrets_dir = state.parent / "secrets"
    ensure_secrets(cat, secrets_dir)
    for port in (cfg.archive_port, cfg.monitor_port):
        _port_free(cfg.host, port)
    for sub in ("archive", "sim", "monitor"):
        shutil.rmtree(state / sub, ignore_errors=True)  # fresh sandbox each run (see module docstring)
    state.mkdir(parents=True, exist_ok=True)
    env = {
        "HDC_SECRETS_DIR": str(secrets_dir),
        "HDC_ARCHIVE_STATE_DIR": str(state / "archive"),
        "HDC_ARCHIVE_CATALOG": cfg.catalog,
        "HDC_MONITOR_STATE_DIR": str(state / "monitor"),
    }
    procs: list[ManagedProcess] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        sim = ManagedProcess(
            "simulator",
            _hdc("monitor", "simulate", "--catalog", cfg.catalog, "--workdir", str(state / "sim")),
            state / "logs" / "simulator.log",
            env=env,
        ).start()
        procs.append(sim)
        sim.wait_ready(lambda: "simulating" in sim.tail(200), timeout=90)

        archive = ManagedProcess(
            "archive",
            _hdc("archive", "serve", "--embedded-store", "--host", cfg.host, "--port", str(cfg.archive_port)),
            state / "logs" / "archive.log",
            env=env,
        ).start()
        procs.append(archive)
        archive_url = f"http://{cfg.host}:{cfg.archive_port}"
        archive.wait_ready(lambda: _http_ok(f"{archive_url}/readyz"), timeout=120)

        monitor = ManagedProcess(
            "monitor",
            _hdc(
                "monitor",
                "run",
                "--catalog",
                cfg.catalog,
                "--listen",
                f"{cfg.host}:{cfg.monitor_port}",
                "--interval",
                str(cfg.interval),
            ),
            state / "logs" / "monitor.log",
            env=env,
        ).start()
        procs.append(monitor)
        monitor_url = f"http://{cfg.host}:{cfg.monitor_port}"
        monitor.wait_ready(lambda: _http_ok(f"{monitor_url}/healthz"), timeout=60)

        seeded = 0
        if cfg.seed:
            token = _mint_token(env)
            seeded = seed_archive(archive_url, token)
        _banner(cfg, monitor_url, archive_url, seeded, state)
        while not stop.wait(1.0):
            for p in procs:
                if not p.alive():
                    raise UserError(f"{p.name} stopped unexpectedly; its log ({p.log_path}) ends with:\n{p.tail()}")
    except KeyboardInterrupt:
        pass
    except TimeoutError as exc:
        raise UserError(f"{exc}; logs are in {state / 'logs'}") from None
    except RuntimeError as exc:  # a process exited before it was ready
        raise UserError(str(exc)) from None
    finally:
        for p in reversed(procs):
            p.stop()
        print("hdc run: stopped", file=sys.stderr)


def _mint_token(env: dict[str, str]) -> str:
    import subprocess

    out = subprocess.run(
        _hdc("archive", "token", "--role", "archivist", "--subject", "newcomer", "--ttl", "86400"),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise UserError(f"could not mint a development token: {out.stderr.strip()}")
    return out.stdout.strip()


def _banner(cfg: RunConfig, monitor_url: str, archive_url: str, seeded: int, state: Path) -> None:
    print(
        f"""
hdc is running on embedded defaults (catalog '{cfg.catalog}'). Look here:

  NOC page (live link states)    {monitor_url}/noc
  Prometheus metrics (monitor)   {monitor_url}/metrics
  Archive API docs (OpenAPI)     {archive_url}/docs   ({seeded} sample records stored)
  Archive metrics                {archive_url}/metrics

  A token for the API:   HDC_ARCHIVE_STATE_DIR={state / "archive"} .venv/bin/hdc archive token --role archivist
  Take a link down:      see docs/monitor.md ("simulated network")
  Logs:                  {state / "logs"}

Ctrl-C stops everything.
""",
        flush=True,
    )
