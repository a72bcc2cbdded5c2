"""Synthetic 1-million-record catalogs for the search benchmark (SQLite and PostgreSQL), built once
under bench/.work/archive-search/ and reused, plus the throw-away PostgreSQL server that serves one."""

from __future__ import annotations

import base64
import json
import random
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from archive_service import catalogdb as db
from archive_service.crypto import patient_index
from hdc.procs import ManagedProcess, free_port, tcp_ready
from inventory.loader import load_catalog

from .common import WORK_ROOT

ROOT = WORK_ROOT / "archive-search"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
N_RECORDS = 1_000_000
N_PATIENTS = 200_000
WORDS = [
    "compte",
    "rendu",
    "consultation",
    "cardiologie",
    "radiographie",
    "thorax",
    "genou",
    "scanner",
    "cérébral",
    "IRM",
    "lombaire",
    "échographie",
    "abdominale",
    "bilan",
    "sanguin",
    "complet",
    "lettre",
    "sortie",
    "hospitalisation",
    "ordonnance",
    "pédiatrie",
    "urgences",
    "chirurgie",
    "orthopédique",
    "anesthésie",
    "dermatologie",
    "ophtalmologie",
    "fond",
    "oeil",
    "biopsie",
    "hépatique",
    "vaccination",
    "certificat",
    "médical",
    "obstétrique",
    "grossesse",
    "suivi",
    "diabète",
    "hypertension",
    "kinésithérapie",
    "dentaire",
    "panoramique",
]
ADMIN_WORDS = [
    "budget",
    "facture",
    "marché",
    "contrat",
    "personnel",
    "paie",
    "inventaire",
    "rapport",
    "activité",
    "convention",
    "achat",
]


def keys() -> dict[str, str]:
    """KEK and index key shared by the bench catalog and the server that searches it."""
    path = ROOT / "keys.json"
    if not path.exists():
        ROOT.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "kek": base64.b64encode(secrets.token_bytes(32)).decode(),
                    "index_key": base64.b64encode(secrets.token_bytes(32)).decode(),
                }
            )
        )
        path.chmod(0o600)
    return dict(json.loads(path.read_text()))


def patient_ids(n: int = 50, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"TN-{rng.randrange(N_PATIENTS):07d}" for _ in range(n)]


def _rows(batch: int, facilities: list[str]) -> Iterator[tuple[list[dict[str, object]], list[dict[str, object]]]]:
    rng = random.Random(42)
    index_key = base64.b64decode(keys()["index_key"])
    pidx = [patient_index(index_key, f"TN-{p:07d}") for p in range(N_PATIENTS)]
    now = datetime.now(UTC).replace(microsecond=0)
    start = date(2006, 1, 1)
    recs: list[dict[str, object]] = []
    vers: list[dict[str, object]] = []
    for i in range(N_RECORDS):
        rid = str(uuid.UUID(int=rng.getrandbits(128)))
        medical = rng.random() < 0.8
        day = start + timedelta(days=rng.randrange(7300))
        title = " ".join(rng.sample(WORDS if medical else ADMIN_WORDS, 4)).capitalize()
        retain = datetime(day.year + (20 if medical else 10), day.month, min(day.day, 28), tzinfo=UTC)
        recs.append(
            {
                "record_id": rid,
                "status": "active",
                "record_class": "medical" if medical else "administrative",
                "subclass": "consultation" if medical else "finance",
                "facility": facilities[rng.randrange(len(facilities))],
                "patient_index": pidx[rng.randrange(N_PATIENTS)] if medical else None,
                "document_date": day,
                "title": title,
                "author": "Dr Synthèse",
                "language": "fr",
                "tags": "[]",
                "content_type": "application/pdf",
                "current_version": 1,
                "retain_until": retain,
                "legal_hold": False,
                "created_at": now,
                "created_by": "bench",
            }
        )
        vers.append(
            {
                "record_id": rid,
                "version": 1,
                "state": "committed",
                "object_key": f"records/{rid}/v000001",
                "owner": "bench",
                "size": 100_000 + i % 5000,
                "sha256": f"{i:064x}",
                "header_len": 300,
                "key_id": "bench",
                "wrapped_dek": b"\0" * 40,
                "prefix": b"\0" * 8,
                "chunk_size": 1 << 20,
                "meta": "{}",
                "retain_until": retain,
                "created_at": now,
                "created_by": "bench",
            }
        )
        if len(recs) == batch:
            yield recs, vers
            recs, vers = [], []
    if recs:
        yield recs, vers


def facilities() -> list[str]:
    return [f.id for f in load_catalog("lab").facilities]


def build_sqlite(log: list[str]) -> str:
    """Bulk load with the sqlite3 module (tuples, no journal), then build the FTS index in one pass."""
    import sqlite3

    path = ROOT / "catalog-1m.db"
    url = f"sqlite:///{path}"
    if (ROOT / "catalog-1m.db.done").exists():
        engine = db.make_engine(url)
        try:
            with engine.connect() as conn:
                before = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'records_fts'")).scalar()
            t = time.monotonic()
            db.create_schema(engine)  # what the service does at start: migrates an older title index
        finally:
            engine.dispose()
        if before != db.FTS_TABLE_SQL:
            log.append(
                f"reusing {path}; its title index migrated to the date-keyed one in {time.monotonic() - t:.0f} s"
            )
        else:
            log.append(f"reusing {path}")
        return url
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    ROOT.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    engine = db.make_engine(url)
    db.create_schema(engine)  # the service's schema: tables, indexes, FTS table and triggers
    engine.dispose()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")  # 1 GB: the random-order index inserts stay in memory
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type='trigger'").fetchall()
    for name, _sql in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    rcols = [c.name for c in db.records.columns if c.name not in ("seq", "hold_reason", "destroyed_at")]
    vcols = [c.name for c in db.versions.columns if c.name in VERSION_COLUMNS]

    def sql_value(v: object) -> object:
        if isinstance(v, datetime):
            return v.replace(tzinfo=None).isoformat(sep=" ")
        if isinstance(v, date):
            return v.isoformat()
        return v

    rsql = f"INSERT INTO records ({', '.join(rcols)}) VALUES ({', '.join('?' * len(rcols))})"
    vsql = f"INSERT INTO versions ({', '.join(vcols)}) VALUES ({', '.join('?' * len(vcols))})"
    for recs, vers in _rows(100_000, facilities()):
        conn.executemany(rsql, ([sql_value(r[c]) for c in rcols] for r in recs))
        conn.executemany(vsql, ([sql_value(v[c]) for c in vcols] for v in vers))
        conn.commit()
    conn.execute(db.FTS_FILL_SQL)  # the date-keyed title index, filled in key order
    for _name, sql in triggers:
        conn.execute(sql)
    conn.execute("ANALYZE")
    conn.commit()
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    (ROOT / "catalog-1m.db.done").touch()
    log.append(f"built {path} in {time.monotonic() - t:.0f} s")
    return url


VERSION_COLUMNS = (
    "record_id",
    "version",
    "state",
    "object_key",
    "owner",
    "size",
    "sha256",
    "header_len",
    "key_id",
    "wrapped_dek",
    "prefix",
    "chunk_size",
    "meta",
    "retain_until",
    "created_at",
    "created_by",
)


class Postgres:
    """PostgreSQL 15 on a data directory under bench/.work (kept between runs), stopped by PID."""

    def __init__(self) -> None:
        self.data = ROOT / "pg"
        self.sock = ROOT / "pgsock"
        self.port = free_port()
        self.proc: ManagedProcess | None = None

    def start(self) -> str:
        ROOT.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        shutil.chown(self.sock, "postgres")
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            self.data.mkdir()
            shutil.chown(self.data, "postgres")
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
            )
        log = ROOT / "pg.log"
        log.touch()
        shutil.chown(log, "postgres")
        argv = [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG_BIN / "postgres"),
            "-D",
            str(self.data),
            "-k",
            str(self.sock),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "shared_buffers=512MB",
            "-c",
            "maintenance_work_mem=512MB",
        ]
        self.proc = ManagedProcess("postgres", argv, log).start()
        self.proc.wait_ready(tcp_ready("127.0.0.1", self.port), timeout=60)
        time.sleep(0.5)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


def build_postgres(url: str, log: list[str]) -> str:
    engine = db.make_engine(url)
    with engine.connect() as conn:
        done = conn.execute(text("SELECT to_regclass('bench_done') IS NOT NULL")).scalar()
    if done:
        db.create_schema(engine)  # what the service does at start (adds indexes newer than the cache)
        _pg_indexes(engine)
        log.append("reusing PostgreSQL catalog")
        engine.dispose()
        return url
    t = time.monotonic()
    db.metadata.drop_all(engine)
    db.metadata.create_all(engine)  # tables without the secondary indexes: load first, index after
    with engine.begin() as conn:
        for ix in list(db.records.indexes) + list(db.versions.indexes):
            conn.execute(text(f"DROP INDEX IF EXISTS {ix.name}"))
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        rcols = [c.name for c in db.records.columns if c.name not in ("seq", "hold_reason", "destroyed_at")]
        vcols = [
            c.name
            for c in db.versions.columns
            if c.name
            in (
                "record_id",
                "version",
                "state",
                "object_key",
                "owner",
                "size",
                "sha256",
                "header_len",
                "key_id",
                "wrapped_dek",
                "prefix",
                "chunk_size",
                "meta",
                "retain_until",
                "created_at",
                "created_by",
            )
        ]
        for recs, vers in _rows(100_000, facilities()):
            with cur.copy(f"COPY records ({', '.join(rcols)}) FROM STDIN") as cp:  # type: ignore[attr-defined]
                for r in recs:
                    cp.write_row([r[c] for c in rcols])
            with cur.copy(f"COPY versions ({', '.join(vcols)}) FROM STDIN") as cp:  # type: ignore[attr-defined]
                for v in vers:
                    cp.write_row([v[c] for c in vcols])
        raw.commit()
    finally:
        raw.close()
    db.create_schema(engine)  # the trigram index, built once on the loaded data
    _pg_indexes(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_done (at timestamptz)"))
    engine.dispose()
    log.append(f"built PostgreSQL catalog in {time.monotonic() - t:.0f} s")
    return url


def _pg_indexes(engine: Engine) -> None:
    """The service's secondary indexes (metadata.create_all skips them on tables that already exist)."""
    with engine.begin() as conn:
        for ix in list(db.records.indexes) + list(db.versions.indexes):
            ix.create(conn, checkfirst=True)
    # Statistics, and the visibility map that lets index-only scans skip the table (autovacuum
    # does this in production; a freshly loaded table has not been vacuumed yet).
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) records"))
        conn.execute(text("ANALYZE"))


def queries(n: int, seed: int = 3) -> list[dict[str, object]]:
    """A mix of what archivists and clinicians ask for."""
    rng = random.Random(seed)
    facs = facilities()
    pats = patient_ids(200)
    out: list[dict[str, object]] = []
    for i in range(n):
        kind = i % 6
        day = date(2006, 1, 1) + timedelta(days=rng.randrange(7000))
        if kind == 0:
            out.append({"patient_id": rng.choice(pats)})
        elif kind == 1:
            out.append({"facility": rng.choice(facs), "date_from": str(day), "date_to": str(day + timedelta(days=30))})
        elif kind == 2:
            out.append(
                {"record_class": "administrative", "date_from": str(day), "date_to": str(day + timedelta(days=90))}
            )
        elif kind == 3:
            out.append({"facility": rng.choice(facs), "q": rng.choice(WORDS)})
        elif kind == 4:
            out.append({"q": " ".join(rng.sample(WORDS, 2))})
        else:
            out.append({"patient_id": rng.choice(pats), "q": rng.choice(WORDS), "record_class": "medical"})
    return out
