"""Faults: the service killed (SIGKILL) mid-ingest, and the store going away (503)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from archive_service import catalogdb as db
from archive_service.auth import local_signing_key, mint_token
from archive_service.devstore import DevStore, start_devstore
from archive_service.ingest import _begin
from archive_service.models import RecordMetadata
from archive_service.service import Archive, object_key
from archive_service.settings import ArchiveSettings
from hdc.procs import ManagedProcess, free_port, wait_until

from .conftest import make_settings, medical


@pytest.fixture(scope="module")
def own_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStore]:
    """A store of this module's own: the last test stops it."""
    work = tmp_path_factory.mktemp("seaweed-faults")
    store = start_devstore(work)
    try:
        yield store
    finally:
        store.stop()
        shutil.rmtree(work, ignore_errors=True)


class Server:
    def __init__(self, settings: ArchiveSettings, log: Path) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            f"HDC_ARCHIVE_{k.upper()}": str(v)
            for k, v in settings.model_dump(mode="json").items()
            if v is not None and not isinstance(v, dict)
        }
        env["HDC_ARCHIVE_RETENTION"] = json.dumps(settings.retention)
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
        ]
        self.proc = ManagedProcess("archive", argv, log, env=env, cwd=Path.cwd())

    def start(self) -> Server:
        self.proc.start()

        def ready() -> bool:
            try:
                return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        self.proc.wait_ready(ready, timeout=60)
        return self

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + mint_token(self.settings, "archivist-k", ["archivist"], None), **extra}


@pytest.fixture(scope="module")
def settings(own_store: DevStore, tmp_path_factory: pytest.TempPathFactory) -> ArchiveSettings:
    s = make_settings(
        own_store,
        tmp_path_factory.mktemp("archive-faults"),
        audit_flush_seconds=3600,
        audit_fsync=True,
        upload_concurrency=2,
        reconcile_grace_seconds=3600,
    )
    local_signing_key(s)  # created before the server starts, shared with the test's token minting
    return s


def _invariants(settings: ArchiveSettings) -> dict[str, Any]:
    """Every committed version has its object; every object has a committed version."""
    archive = Archive.open(settings, cli=True)
    try:
        with archive.engine.connect() as conn:
            rows = list(conn.execute(select(db.versions)))
        committed = {r.object_key for r in rows if r.state == "committed"}
        objects = {k for k in archive.store.list_keys(archive.store.records, "records/")}
        return {
            "pending": [r.object_key for r in rows if r.state == "pending"],
            "missing_objects": sorted(committed - objects),
            "orphan_objects": sorted(objects - committed),
            "uploads": archive.store.list_uploads("records/"),
        }
    finally:
        archive.close()


def test_sigkill_mid_ingest_then_restart_repairs(settings: ArchiveSettings, tmp_path: Path) -> None:
    server = Server(settings, tmp_path / "server.log").start()
    try:
        ok = httpx.post(
            server.url + "/records",
            content=b"committed before the crash",
            headers=server.headers(
                **{
                    "X-Archive-Metadata": json.dumps(medical()),
                    "X-Content-SHA256": hashlib.sha256(b"committed before the crash").hexdigest(),
                }
            ),
        )
        assert ok.status_code == 201, ok.text
        for i in range(3):  # audit entries that live only in the write-ahead when the process dies
            httpx.get(server.url + f"/records/missing-{i}", headers=server.headers())
        piece = os.urandom(1 << 20)
        sent = threading.Event()

        def body() -> Iterator[bytes]:
            for i in range(40):
                if i == 14:
                    sent.set()
                    time.sleep(30)  # the server is killed while waiting for the rest
                yield piece

        def client() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    server.url + "/records",
                    content=body(),
                    timeout=60,
                    headers=server.headers(
                        **{"X-Archive-Metadata": json.dumps(medical(title="killed")), "X-Content-SHA256": "ab" * 32}
                    ),
                )

        t = threading.Thread(target=client, daemon=True)
        t.start()
        assert sent.wait(30)
        engine = db.make_engine(settings.db_url)
        wait_until(
            lambda: (
                engine.connect()
                .execute(text("select count(*) from versions where state='pending' and upload_id is not null"))
                .scalar()
                == 1
            ),
            20,
            "pending ingest with an upload",
        )
        engine.dispose()
        before = _invariants(settings)
        assert len(before["pending"]) == 1 and before["uploads"], before  # mid-ingest: parts in the store
        server.proc.kill()
    finally:
        server.proc.stop()
    assert before["orphan_objects"] == [] and before["missing_objects"] == []
    # restart: the reconciler settles the interrupted ingest
    server = Server(settings, tmp_path / "server2.log").start()
    try:
        after = _invariants(settings)
        assert after == {"pending": [], "missing_objects": [], "orphan_objects": [], "uploads": []}, after
        rid = ok.json()["record_id"]
        assert (
            httpx.get(server.url + f"/records/{rid}/content", headers=server.headers()).content
            == b"committed before the crash"
        )
        verify = httpx.post(
            server.url + "/audit/verify",
            headers={"Authorization": "Bearer " + mint_token(settings, "aud", ["auditor"], None)},
        ).json()
        assert verify["ok"], verify
        paths = []
        archive = Archive.open(settings, cli=True)
        try:
            for key in archive.store.list_keys(settings.bucket_audit, "chain/"):
                paths += [
                    json.loads(line)["path"] for line in archive.store.read_all(settings.bucket_audit, key).splitlines()
                ]
        finally:
            archive.close()
        assert all(f"/records/missing-{i}" in paths for i in range(3)), (
            "audit entries written before the kill were lost"
        )
    finally:
        server.proc.stop()


def test_reconciler_commits_an_object_completed_before_the_crash(settings: ArchiveSettings) -> None:
    """The window between step 4 (object complete) and step 5 (catalog commit)."""
    archive = Archive.open(settings, cli=True)
    try:
        data = b"complete but not committed"
        meta = RecordMetadata.model_validate(medical(title="window"))
        rid, version, env, cipher, retain, _created, _held = _begin(
            archive, meta, "tester", hashlib.sha256(data).hexdigest(), "text/plain", None, None
        )
        from archive_service.ingest import seal_part

        archive.store.put(
            archive.store.records,
            object_key(rid, version),
            b"".join(seal_part(cipher, data, 0, settings.chunk_size, True, env.to_header()).pieces),
            retain,
        )
        with archive.engine.begin() as conn:  # the crashed process's row: owned by a dead instance, old enough
            conn.execute(
                db.versions.update()
                .where(db.versions.c.record_id == rid)
                .values(owner="dead-instance", created_at=db.now().replace(year=2020))
            )
        assert archive.reconcile() == {
            "committed": 1,
            "dropped": 0,
            "uploads_aborted": 0,
            "store_synced": 0,
            "store_sync_owed": 0,
        }
        row = archive.version(rid)
        assert row.state == "committed" and row.size == len(data)
        from archive_service.ingest import open_content

        assert b"".join(open_content(archive, row, 0, len(data) - 1)) == data
    finally:
        archive.close()


def test_reconcile_while_serving_leaves_uploads_in_progress_alone(settings: ArchiveSettings) -> None:
    """POST /admin/reconcile and `hdc archive reconcile` run beside live ingests of the same
    instance id: a young pending row (an upload in progress) must survive them; only the service's
    start treats its own rows as dead."""
    archive = Archive.open(settings, cli=True)
    try:
        data = b"still uploading"
        meta = RecordMetadata.model_validate(medical(title="in flight"))
        rid = _begin(archive, meta, "tester", hashlib.sha256(data).hexdigest(), "text/plain", None, None)[0]
        settled = archive.reconcile()
        assert settled["dropped"] == 0, settled
        with archive.engine.connect() as conn:
            assert db.get_version(conn, rid, 1) is not None
        assert archive.reconcile(at_start=True)["dropped"] == 1
        with archive.engine.connect() as conn:
            assert db.get_version(conn, rid, 1) is None
    finally:
        archive.close()


def test_store_unreachable_is_503(settings: ArchiveSettings, own_store: DevStore, tmp_path: Path) -> None:
    server = Server(settings, tmp_path / "server3.log").start()
    try:
        data = b"stored while the store was up"
        h = server.headers(
            **{"X-Archive-Metadata": json.dumps(medical()), "X-Content-SHA256": hashlib.sha256(data).hexdigest()}
        )
        rid = httpx.post(server.url + "/records", content=data, headers=h).json()["record_id"]
        own_store.stop()
        assert httpx.get(server.url + "/readyz").status_code == 503
        assert httpx.get(server.url + "/healthz").status_code == 200
        r = httpx.get(server.url + f"/records/{rid}/content", headers=server.headers(), timeout=30)
        assert r.status_code == 503 and "store unreachable" in r.json()["detail"]
        r = httpx.post(server.url + "/records", content=data, headers=h, timeout=30)
        assert r.status_code == 503
        # metadata still answers from the catalog
        assert httpx.get(server.url + f"/records/{rid}", headers=server.headers()).status_code == 200
        metrics = httpx.get(server.url + "/metrics").text
        assert 'hdc_archive_errors_total{kind="store_unavailable"}' in metrics
    finally:
        server.proc.stop()
