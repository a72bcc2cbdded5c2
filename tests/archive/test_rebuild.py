"""`hdc archive catalog rebuild`: the catalog lost, rebuilt from the real store (SeaweedFS) alone,
answers the API exactly as before — on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from minio.commonconfig import COMPLIANCE
from minio.retention import Retention
from sqlalchemy import func, select

from archive_service import catalogdb as db
from archive_service.app import create_app
from archive_service.audit import local_heads, verify_chain
from archive_service.crypto import MAGIC, Envelope
from archive_service.devstore import DevStore
from archive_service.rebuild import rebuild_catalog, rebuild_runs
from archive_service.rotation import rewrap_all
from archive_service.settings import ArchiveSettings
from archive_service.store import ObjectStore
from hdc.errors import UserError
from tests.archive.conftest import Api, administrative, make_settings, medical
from tests.archive.test_catalog import (
    fresh_database,
    postgres,  # noqa: F401  (session fixture: a throw-away PostgreSQL)
)

SHORT = 2


@dataclass
class Scenario:
    settings: ArchiveSettings
    ids: dict[str, str]
    request_id: str
    before: dict[str, Any]
    backend: str
    pg_base: str | None


def _tok(api: Api, *roles: str, **kw: Any) -> dict[str, str]:
    return api.token(*roles, **kw)


def snapshot(api: Api, ids: dict[str, str], request_id: str) -> dict[str, Any]:
    """Every answer of the API that comes from the catalog, for the scenario's records."""
    arch, aud = _tok(api, "archivist", sub="snap"), _tok(api, "auditor", sub="snap-aud")
    out: dict[str, Any] = {}

    def get(path: str, headers: dict[str, str]) -> Any:
        r = api.client.get(path, headers=headers)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    for name, rid in ids.items():
        out[f"{name}/record"] = get(f"/records/{rid}", arch)
        out[f"{name}/versions"] = get(f"/records/{rid}/versions", arch)
        hold = get(f"/records/{rid}/hold", arch)
        # hold times come back from the audit trail: the same second, or the next one
        out[f"{name}/hold-at"] = [datetime.fromisoformat(e.pop("at")) for e in hold.get("history", [])]
        out[f"{name}/hold"] = hold
    searches = {
        "patient-1": {"patient_id": "TN-REB-1"},
        "patient-2": {"patient_id": "TN-REB-2"},
        "facility": {"facility": "hu-tunis-nord"},
        "class": {"record_class": "administrative"},
        "words": {"q": "compte rendu"},
        "range": {"date_from": "2023-01-01", "date_to": "2024-02-01"},
        "page-1": {"limit": 2},
    }
    for name, body in searches.items():
        r = api.client.post("/search", json=body, headers=arch)
        assert r.status_code == 200, r.text
        out[f"search/{name}"] = r.json()
    nxt = out["search/page-1"]["next_cursor"]
    out["search/page-2"] = api.client.post("/search", json={"limit": 2, "cursor": nxt}, headers=arch).json()
    out["disposition"] = get(f"/disposition/requests/{request_id}", arch)
    out["certificate"] = get(f"/disposition/certificates/{request_id}", aud)
    out["flagged"] = get("/audit/flagged", aud)
    assert len(out["flagged"]["entries"]) == 1 and len(out["search/patient-1"]["results"]) == 2
    for name in ("corrected", "large"):
        r = api.client.get(f"/records/{ids[name]}/content", headers=arch)
        out[f"{name}/content-sha256"] = hashlib.sha256(r.content).hexdigest()
    return out


def _hold(api: Api, rid: str, reason: str, release: bool = False) -> None:
    path = f"/records/{rid}/hold" + ("/release" if release else "")
    r = api.client.post(path, json={"reason": reason}, headers=_tok(api, "administrator", sub="legal"))
    assert r.status_code == 200, r.text


def build_scenario(api: Api) -> tuple[dict[str, str], str]:
    """Records with versions, holds, a break-glass access, a key rotation, an extension and a destruction."""
    ids: dict[str, str] = {}

    def put(name: str, data: bytes, meta: dict[str, Any]) -> str:
        r = api.ingest(data, meta)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["record_id"]
        return ids[name]

    rid = put("corrected", b"first draft", medical(patient_id="TN-REB-1", title="Compte rendu de consultation"))
    r = api.ingest(
        b"second draft",
        medical(patient_id="TN-REB-1", title="Compte rendu de consultation (corrigé)", tags=["cardiology", "fixed"]),
        record_id=rid,
        reason="wrong side reported",
    )
    assert r.status_code == 201, r.text
    put("held", b"scan", medical(patient_id="TN-REB-1", title="Scanner thoracique", document_date="2023-05-10"))
    _hold(api, ids["held"], "court order 2024/117")
    put("released", b"lab", medical(patient_id="TN-REB-2", title="Bilan biologique", document_date="2023-05-10"))
    _hold(api, ids["released"], "inquiry 7")
    _hold(api, ids["released"], "inquiry closed", release=True)
    put("admin", b"budget", administrative(title="Budget prévisionnel 2024"))
    put("doomed", b"old contract", administrative(subclass="shortlived", title="Contrat de maintenance 2009"))
    big = os.urandom(6 * 1024 * 1024 + 12345)  # multipart path (5 MiB parts in these settings)
    put("large", big, medical(patient_id="TN-REB-2", title="IRM cérébrale", subclass="imaging", language="ar"))
    # break-glass: a clinician of another facility reads a medical record with a justification
    r = api.client.get(
        f"/records/{ids['released']}",
        headers={
            **_tok(api, "clinician", sub="dr-er", facility="hr-ariana"),
            "X-Access-Justification": "patient unconscious in the emergency room",
        },
    )
    assert r.status_code == 200, r.text
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    archive.keys.rotate()
    assert rewrap_all(archive) >= 6  # key sidecars in the store
    put("after-rotation", b"new key", administrative(title="Compte rendu du conseil", document_date="2024-01-20"))
    until = (datetime.now(UTC) + timedelta(days=4000)).replace(microsecond=0)
    r = api.client.put(
        f"/records/{ids['admin']}/retention",
        json={"retain_until": until.isoformat(), "reason": "audit of accounts"},
        headers=_tok(api, "archivist"),
    )
    assert r.status_code == 200, r.text
    time.sleep(SHORT + 1.5)
    arch = _tok(api, "archivist", sub="amel")
    r = api.client.post(
        "/disposition/requests", json={"record_ids": [ids["doomed"]], "reason": "expired"}, headers=arch
    )
    assert r.status_code == 201, r.text
    request_id = r.json()["request_id"]
    r = api.client.post(
        f"/disposition/requests/{request_id}/approve", headers=_tok(api, "administrator", sub="director")
    )
    assert r.status_code == 200, r.text
    r = api.client.post(f"/disposition/requests/{request_id}/execute", headers=arch)
    assert r.status_code == 200, r.text
    return ids, request_id


def scenario_settings(devstore: DevStore, state: Path, database_url: str | None) -> ArchiveSettings:
    return make_settings(
        devstore,
        state,
        database_url=database_url,
        retention={"medical": "20y", "administrative": "10y", "administrative/shortlived": "1s"},
        min_retention=f"{SHORT}s",
        certificate_retention="1d",
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def scenario(
    request: pytest.FixtureRequest, devstore: DevStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    pg_base = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    state = tmp_path_factory.mktemp(f"rebuild-{request.param}")
    settings = scenario_settings(devstore, state, fresh_database(pg_base) if pg_base else None)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        ids, request_id = build_scenario(api)
        before = snapshot(api, ids, request_id)
    yield Scenario(settings, ids, request_id, before, request.param, pg_base)


def drop_catalog(sc: Scenario) -> str | None:
    """Lose the catalog: delete the SQLite file, or (PostgreSQL) rebuild into a fresh database."""
    if sc.backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(str(sc.settings.state_dir / "catalog.db") + suffix).unlink(missing_ok=True)
        return None
    assert sc.pg_base is not None
    return fresh_database(sc.pg_base)


def same(after: dict[str, Any], before: dict[str, Any]) -> None:
    assert set(after) == set(before)
    for key, value in before.items():
        if key.endswith("/hold-at"):
            assert len(after[key]) == len(value), key
            assert all(timedelta(0) <= a - b <= timedelta(seconds=1) for a, b in zip(after[key], value, strict=True)), (
                key
            )
        else:
            assert after[key] == value, key


def answers_after(settings: ArchiveSettings, sc: Scenario) -> dict[str, Any]:
    with TestClient(create_app(settings)) as client:
        return snapshot(Api(client, settings), sc.ids, sc.request_id)


def test_rebuilt_catalog_answers_like_the_lost_one(scenario: Scenario) -> None:
    sc = scenario
    into = drop_catalog(sc)
    dry = rebuild_catalog(sc.settings, into=into, dry_run=True).summary()
    report = rebuild_catalog(sc.settings, into=into, workers=4)
    same_counts = ("records", "versions", "destroyed_records", "dispositions", "holds", "flags", "skipped", "errors")
    assert {k: dry[k] for k in same_counts} == {k: report.summary()[k] for k in same_counts}
    assert report.ok, (report.errors, report.skipped)
    assert (report.records, report.destroyed_records, report.dispositions) == (6, 1, 1)
    assert report.versions == 8 and report.holds == 3 and report.flags == 1
    assert report.unaudited == [] and report.approximated == []
    target = sc.settings.model_copy(update={"database_url": into}) if into else sc.settings
    after = answers_after(target, sc)
    same(after, sc.before)
    assert after["held/record"]["legal_hold"] is True and after["doomed/record"]["status"] == "destroyed"
    assert after["admin/record"]["retain_until"] == sc.before["admin/record"]["retain_until"]
    # the rebuild is itself in the audit trail, and the trail still verifies end to end
    check = verify_chain(ObjectStore(sc.settings), None, local_heads(sc.settings.state_dir))
    assert check.ok, check.problems
    # …and a second rebuild into the now non-empty catalog is refused
    with pytest.raises(UserError, match="not empty"):
        rebuild_catalog(sc.settings, into=into)


def test_interrupted_rebuild_resumes(scenario: Scenario) -> None:
    sc = scenario
    into = fresh_database(sc.pg_base) if sc.pg_base else f"sqlite:///{sc.settings.state_dir / 'resume.db'}"

    def stop_after_first_batch(stage: str, n: int, total: int) -> None:
        if stage == "written" and n >= 2:
            raise KeyboardInterrupt  # as if killed between two committed batches

    with pytest.raises(KeyboardInterrupt):
        rebuild_catalog(sc.settings, into=into, batch=2, progress=stop_after_first_batch)
    engine = db.make_engine(into)
    with engine.connect() as conn:
        partial = conn.execute(select(func.count()).select_from(db.records)).scalar()
        assert conn.execute(select(rebuild_runs.c.finished_at)).scalar() is None
    assert partial == 2
    report = rebuild_catalog(sc.settings, into=into, batch=2)
    assert report.ok and report.resumed_records == 2 and any("resuming" in n for n in report.notes)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.records)).scalar() == 7
        assert conn.execute(select(rebuild_runs.c.finished_at)).scalar() is not None
    engine.dispose()
    same(answers_after(sc.settings.model_copy(update={"database_url": into}), sc), sc.before)


# --- a small archive of its own, for the CLI, tampering and a real kill
def _env(settings: ArchiveSettings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HDC_ARCHIVE_STATE_DIR": str(settings.state_dir),
        "HDC_ARCHIVE_S3_ENDPOINT": settings.s3_endpoint,
        "HDC_ARCHIVE_S3_ACCESS_KEY": settings.s3_access_key,
        "HDC_ARCHIVE_S3_SECRET_KEY": settings.s3_secret_key,
        "HDC_ARCHIVE_BUCKET_RECORDS": settings.bucket_records,
        "HDC_ARCHIVE_BUCKET_AUDIT": settings.bucket_audit,
        "HDC_ARCHIVE_AUDIT_FSYNC": "false",
        **extra,
    }


def _cli(settings: ArchiveSettings, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hdc.cli", "archive", "catalog", "rebuild", *args],
        capture_output=True,
        text=True,
        env=_env(settings, **extra),
        timeout=120,
    )


@pytest.fixture(scope="module")
def small(devstore: DevStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArchiveSettings, list[str]]]:
    settings = make_settings(devstore, tmp_path_factory.mktemp("rebuild-cli"))
    ids = []
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        for i in range(12):
            r = api.ingest(f"record {i}".encode(), medical(patient_id=f"TN-S-{i % 3}", title=f"Consultation {i}"))
            assert r.status_code == 201, r.text
            ids.append(r.json()["record_id"])
    yield settings, ids


def test_cli_dry_run_reports_and_writes_nothing(small: tuple[ArchiveSettings, list[str]]) -> None:
    settings, _ids = small
    into = settings.state_dir / "dry.db"
    r = _cli(settings, "--dry-run", "--into", f"sqlite:///{into}")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "would rebuild 12 record(s)" in r.stdout
    assert json.loads(r.stdout.strip().splitlines()[-1])["records"] == 12
    assert not into.exists()


def test_cli_refuses_the_live_catalog_and_bad_arguments(small: tuple[ArchiveSettings, list[str]]) -> None:
    settings, _ids = small
    r = _cli(settings)  # the configured catalog still holds the records
    assert r.returncode == 2 and "not empty" in r.stderr and "--into" in r.stderr, (r.stdout, r.stderr)
    for args, needle in (
        (("--workers", "0"), "--workers 0"),
        (("--batch", "0"), "--batch 0"),
        (("--show", "-1"), "--show -1"),
        (("--into", "nosuchdb://x"), "nosuchdb"),
        (("--into", f"sqlite:///{settings.state_dir}/no/such/dir/x.db"), "cannot be opened"),
    ):
        r = _cli(settings, *args)
        assert r.returncode == 2 and needle in r.stderr, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
    corrupt = settings.state_dir / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    r = _cli(settings, "--into", f"sqlite:///{corrupt}")
    assert r.returncode == 2 and "cannot be opened" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _cli(settings, "--into", f"sqlite:///{settings.state_dir}/x.db", HDC_ARCHIVE_S3_ENDPOINT="127.0.0.1:1")
    assert r.returncode == 2 and "unreachable" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _cli(settings, "--into", f"sqlite:///{settings.state_dir}/x.db", HDC_ARCHIVE_BUCKET_RECORDS="no-such-bucket")
    assert r.returncode == 2 and "HDC_ARCHIVE_BUCKET_RECORDS" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = _cli(settings, "--into", "sqlite:///x.db", HDC_ARCHIVE_STATE_DIR=str(settings.state_dir / "empty"))
    assert r.returncode == 2 and "keyring" in r.stderr, r.stderr


def test_killed_rebuild_is_completed_by_a_rerun(small: tuple[ArchiveSettings, list[str]]) -> None:
    settings, ids = small
    target = settings.state_dir / "killed.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hdc.cli",
            "archive",
            "catalog",
            "rebuild",
            "--into",
            f"sqlite:///{target}",
            "--workers",
            "1",
            "--batch",
            "1",
        ],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        engine = db.make_engine(f"sqlite:///{target}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with engine.connect() as conn:
                    if conn.execute(select(rebuild_runs.c.id)).first() is not None:
                        break
            except Exception:  # tables not created yet
                pass
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    r = _cli(settings, "--into", f"sqlite:///{target}")
    assert r.returncode == 0, (r.stdout, r.stderr)
    with engine.connect() as conn:
        got = {row[0] for row in conn.execute(select(db.records.c.record_id))}
        assert conn.execute(select(rebuild_runs.c.finished_at)).scalar() is not None
    engine.dispose()
    assert got == set(ids)


def test_tampered_objects_are_reported_not_accepted(small: tuple[ArchiveSettings, list[str]]) -> None:
    settings, ids = small
    store = ObjectStore(settings)
    key = f"records/{ids[0]}/v000001"
    genuine = store.read_all(store.records, key)
    env, hlen = Envelope.from_header(genuine)
    sealed = bytearray(env.sealed_meta)
    sealed[10] ^= 0x01  # one bit of the sealed metadata (e.g. to change a title or a patient)
    doc = json.loads(genuine[len(MAGIC) + 4 : hlen])
    doc["meta"] = base64.b64encode(bytes(sealed)).decode()
    body = json.dumps(doc, separators=(",", ":")).encode()
    forged = MAGIC + len(body).to_bytes(4, "big") + body + genuine[hlen:]
    until = datetime.now(UTC) + timedelta(seconds=5)
    # a store administrator cannot overwrite the locked version, but can add a newer one…
    store.client.put_object(store.records, key, io.BytesIO(forged), len(forged), retention=Retention(COMPLIANCE, until))
    # …or copy a record under a name of their choosing
    stray = f"records/{uuid.uuid4()}/v000001"
    store.client.put_object(
        store.records, stray, io.BytesIO(genuine), len(genuine), retention=Retention(COMPLIANCE, until)
    )
    r = _cli(settings, "--into", f"sqlite:///{settings.state_dir / 'tampered.db'}")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert f"SKIPPED: {key}" in r.stdout and "fails authentication" in r.stdout
    assert f"SKIPPED: {stray}" in r.stdout and f"header names record {ids[0]}" in r.stdout
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["records"] == 12 and summary["skipped"] == 2  # the genuine version is used
    engine = db.make_engine(f"sqlite:///{settings.state_dir / 'tampered.db'}")
    with engine.connect() as conn:
        row = db.get_record(conn, ids[0])
        assert row is not None and row.title == "Consultation 0"
    engine.dispose()


def test_records_from_before_the_header_kept_creation_are_rebuilt_from_the_audit_trail(
    devstore: DevStore, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Objects sealed by an older release (no created_at / correction_reason in the header)."""
    from archive_service import ingest
    from archive_service.crypto import new_envelope

    def old_release_envelope(provider: Any, record_id: str, version: int, chunk: int, meta: dict[str, Any]) -> Any:
        old = {k: v for k, v in meta.items() if k not in ("created_at", "correction_reason")}
        return new_envelope(provider, record_id, version, chunk, old)

    monkeypatch.setattr(ingest, "new_envelope", old_release_envelope)
    settings = make_settings(devstore, tmp_path_factory.mktemp("rebuild-old"))
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        rid = api.ingest(b"v1", medical(patient_id="TN-OLD")).json()["record_id"]
        assert api.ingest(b"v2", medical(patient_id="TN-OLD"), record_id=rid, reason="typo in date").status_code == 201
        before = api.client.get(f"/records/{rid}/versions", headers=api.token("archivist")).json()
    report = rebuild_catalog(settings, into=f"sqlite:///{settings.state_dir / 'old.db'}")
    assert report.ok and len(report.approximated) == 3  # two creation times, one correction reason
    after_settings = settings.model_copy(update={"database_url": f"sqlite:///{settings.state_dir / 'old.db'}"})
    with TestClient(create_app(after_settings)) as client:
        after = client.get(f"/records/{rid}/versions", headers=Api(client, settings).token("archivist")).json()
    assert [v["correction_reason"] for v in after] == [None, "typo in date"]
    for a, b in zip(after, before, strict=True):
        gap = datetime.fromisoformat(a["created_at"]) - datetime.fromisoformat(b["created_at"])
        assert timedelta(0) <= gap <= timedelta(seconds=2)  # the audit entry / object date: just after
        assert {k: v for k, v in a.items() if k != "created_at"} == {k: v for k, v in b.items() if k != "created_at"}


def test_a_destroyed_medical_record_comes_back_as_a_tombstone_without_medical_data() -> None:
    """Its certificate withholds title, author and tags (store administrators read certificates)."""
    from datetime import UTC, datetime

    from archive_service.rebuild import RebuildReport, _plan_destroyed
    from archive_service.rebuild_scan import AuditFacts

    entry = {
        "record_id": "r-med", "record_class": "medical", "subclass": "consultation", "facility": "hu-tunis-nord",
        "document_date": "2001-02-03", "retain_until": "2021-02-03T00:00:00+00:00", "language": "fr",
        "content_type": "application/pdf", "created_at": "2001-02-04T10:00:00+00:00", "created_by": "arch",
        "descriptive": "withheld: medical record",
        "versions": [{"version": 1, "sha256": "ab" * 32, "size": 10, "created_at": "2001-02-04T10:00:00+00:00",
                      "created_by": "arch", "retain_until": "2021-02-03T00:00:00+00:00"}],
    }  # fmt: skip
    report = RebuildReport(target="sqlite://", dry_run=True)
    planned = _plan_destroyed("r-med", entry, datetime(2022, 1, 1, tzinfo=UTC), AuditFacts(), "i1", report)
    record, rows = planned.rows()
    assert record["status"] == "destroyed" and record["title"] == "" and record["tags"] == "[]"
    assert rows[0]["sha256"] == "ab" * 32 and rows[0]["state"] == "destroyed"
    assert any("withheld" in n or "not kept" in n for n in report.notes) and report.approximated == []
