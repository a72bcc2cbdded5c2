"""The store goes down (or its answer is lost) in the middle of operations other than ingest:
holds, retention, corrections, disposition, the audit flush. Catalog and store must agree
afterwards, the audit chain must verify, and nothing destroyed may go uncertified.

Holds, retention extensions and the patient extension after an ingest are written to the catalog
first and rolled forward into the store (archive_service/store_sync.py): a retry of the call, the
reconciler, a disposition of the record or the background sync finishes what an outage stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from archive_service import catalogdb as db
from archive_service.app import create_app
from archive_service.audit import local_heads, verify_chain
from archive_service.devstore import DevStore, _s3_ready, start_devstore
from archive_service.settings import ArchiveSettings
from archive_service.store import StoreUnavailable

from .conftest import Api, administrative, make_settings, medical
from .test_catalog import (
    fresh_database,
    postgres,  # noqa: F401  (session fixture: a throw-away PostgreSQL)
)

SHORT = 3


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStore]:
    work = tmp_path_factory.mktemp("seaweed-probe")
    s = start_devstore(work)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(work, ignore_errors=True)


def down(s: DevStore) -> None:
    s.process.stop()


def up(s: DevStore) -> None:
    if not s.process.alive():
        s.process.start()
    s.process.wait_ready(lambda: _s3_ready(s.endpoint, s.access_key, s.secret_key), timeout=60)


@pytest.fixture
def settings(store: DevStore, tmp_path: Path) -> ArchiveSettings:
    up(store)
    return make_settings(
        store,
        tmp_path / "state",
        retention={"medical": "20y", "administrative": f"{SHORT}s"},
        min_retention=f"{SHORT}s",
        certificate_retention="1d",
        audit_flush_seconds=3600,
        store_sync_seconds=3600,  # the background sync only where a test asks for it
    )


@pytest.fixture
def api(settings: ArchiveSettings, store: DevStore) -> Iterator[Api]:
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)
    up(store)


def after_calls(obj: Any, name: str, n: int, action: Callable[[], None]) -> None:
    """Run `action` (e.g. stop the store) after the n-th successful call of obj.name."""
    orig = getattr(obj, name)
    count = {"n": 0}

    def wrapper(*a: Any, **kw: Any) -> Any:
        out = orig(*a, **kw)
        count["n"] += 1
        if count["n"] == n:
            action()
        return out

    setattr(obj, name, wrapper)


def lose_put_answers(archive: Any) -> None:
    """Every PUT lands in the store but its answer is lost (a reset connection): the caller sees 503."""
    orig_put = archive.store.put

    def put(*a: Any, **kw: Any) -> Any:
        orig_put(*a, **kw)
        raise StoreUnavailable("store unreachable during PUT: connection reset (answer lost)")

    archive.store.put = put


def versions_of(api: Api, rid: str) -> list[Any]:
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    with archive.engine.connect() as conn:
        return list(db.list_versions(conn, rid, ("committed",)))


def two_versions(api: Api, meta: dict[str, Any]) -> str:
    r = api.ingest(b"v1 " + json.dumps(meta).encode(), meta)
    assert r.status_code == 201, r.text
    rid = r.json()["record_id"]
    r = api.ingest(b"v2", meta, record_id=rid)
    assert r.status_code == 201, r.text
    return rid


def test_correction_of_held_record_is_held_in_store(api: Api) -> None:
    """Incidental (no fault needed): a new version of a record under legal hold is not held in the store."""
    meta = medical(title="held then corrected")
    rid = api.ingest(b"v1", meta).json()["record_id"]
    assert (
        api.client.post(f"/records/{rid}/hold", json={"reason": "case"}, headers=api.token("archivist")).status_code
        == 200
    )
    assert api.ingest(b"v2", meta, record_id=rid).status_code == 201
    archive = api.client.app.state.archive
    assert api.client.get(f"/records/{rid}/hold", headers=api.token("archivist")).json()["legal_hold"] is True
    assert [(v.version, _hold(archive, v)) for v in versions_of(api, rid)] == [(1, True), (2, True)]


# ---------------------------------------------------------------- disposition


def _approved_request(api: Api, ids: list[str]) -> str:
    r = api.client.post(
        "/disposition/requests", json={"record_ids": ids, "reason": "schedule expired"}, headers=api.token("archivist")
    )
    assert r.status_code == 201, r.text
    req = r.json()["request_id"]
    r = api.client.post(f"/disposition/requests/{req}/approve", headers=api.token("administrator", sub="director"))
    assert r.status_code == 200, r.text
    return req


def test_disposition_store_down_after_first_record_keeps_its_certificate(api: Api, store: DevStore) -> None:
    """The store goes down after record A is destroyed, before record B: A's destruction must be certified."""
    a = api.ingest(b"record a", administrative(title="A")).json()["record_id"]
    b = api.ingest(b"record b", administrative(title="B")).json()["record_id"]
    time.sleep(SHORT + 1.5)
    req = _approved_request(api, [a, b])
    first = sorted([a, b])[0]
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    # record `first` has one version: list sidecars, delete, list copies: stop after that last listing.
    after_calls(archive.store, "list_versions", 2, lambda: down(store))

    r = api.client.post(f"/disposition/requests/{req}/execute", headers=api.token("archivist"))
    assert r.status_code == 503, r.text
    up(store)
    del archive.store.list_versions  # back to the class method

    assert api.client.get(f"/records/{first}", headers=api.token("archivist")).json()["status"] == "destroyed"
    got = api.client.get(f"/disposition/requests/{req}", headers=api.token("archivist")).json()
    # What should hold: the interrupted run certified what it destroyed (docs: "an interrupted run
    # certifies what it destroyed and leaves the request `partial`").
    assert got["status"] == "partial", got

    r = api.client.post(f"/disposition/requests/{req}/execute", headers=api.token("archivist"))
    assert r.status_code == 200, r.text
    certified: set[str] = set()
    for key in archive.store.list_keys(archive.store.records, f"certificates/{req}/"):
        certified |= {x["record_id"] for x in json.loads(archive.store.read_all(archive.store.records, key))["records"]}
    assert certified == {a, b}, f"destroyed records without a destruction certificate: { ({a, b} - certified) }"


def test_disposition_store_down_before_certificate_keeps_its_certificate(api: Api, store: DevStore) -> None:
    """Every record destroyed, the store goes down just before the certificate is written; retry."""
    a = api.ingest(b"record c", administrative(title="C")).json()["record_id"]
    time.sleep(SHORT + 1.5)
    req = _approved_request(api, [a])
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    orig_put = archive.store.put

    def put(bucket: str, key: str, *rest: Any, **kw: Any) -> Any:
        if key.startswith("certificates/"):
            down(store)
        return orig_put(bucket, key, *rest, **kw)

    archive.store.put = put
    r = api.client.post(f"/disposition/requests/{req}/execute", headers=api.token("archivist"))
    assert r.status_code == 503, r.text
    up(store)
    del archive.store.put
    r = api.client.post(f"/disposition/requests/{req}/execute", headers=api.token("archivist"))
    assert r.status_code == 200, r.text
    cert = api.client.get(f"/disposition/certificates/{req}", headers=api.token("auditor")).json()
    assert [x["record_id"] for x in cert["document"]["records"]] == [a], cert["document"]


def test_disposition_store_down_mid_record_leaves_no_catalog_entry_without_object(api: Api, store: DevStore) -> None:
    """Record with 2 versions: the store goes down after its first version is deleted."""
    meta = administrative(title="D")
    rid = two_versions(api, meta)
    time.sleep(SHORT + 1.5)
    req = _approved_request(api, [rid])
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    after_calls(archive.store, "delete_version", 1, lambda: down(store))
    r = api.client.post(f"/disposition/requests/{req}/execute", headers=api.token("archivist"))
    assert r.status_code == 503, r.text
    up(store)
    del archive.store.delete_version
    missing = [
        v.version
        for v in versions_of(api, rid)
        if archive.store.head(archive.store.records, v.object_key, v.s3_version_id) is None
    ]
    assert missing == [], f"catalog lists committed versions {missing} of active record {rid} whose objects are gone"
    # the retry finishes the job (passes today)
    r = api.client.post(f"/disposition/requests/{req}/execute", headers=api.token("archivist"))
    assert r.status_code == 200, r.text
    assert api.client.get(f"/records/{rid}", headers=api.token("archivist")).json()["status"] == "destroyed"


# ---------------------------------------------------------------- holds and retention


def _hold(archive: Any, v: Any) -> bool:
    from minio.error import S3Error

    try:
        return bool(archive.store.legal_hold(archive.store.records, v.object_key, v.s3_version_id))
    except S3Error as exc:
        if exc.code == "NoSuchObjectLegalHold":
            return False
        raise


def _agree(api: Api, rid: str) -> dict[str, Any]:
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    rec = api.client.get(f"/records/{rid}", headers=api.token("archivist")).json()
    hold = api.client.get(f"/records/{rid}/hold", headers=api.token("archivist")).json()["legal_hold"]
    out = {"catalog_hold": hold, "catalog_retain": rec["retain_until"], "store": []}
    for v in versions_of(api, rid):
        out["store"].append(
            (
                v.version,
                _hold(archive, v),
                archive.store.retention(archive.store.records, v.object_key, v.s3_version_id),
                db.utc(v.retain_until),
            )
        )
    return out


def _hold_midway(api: Api, store: DevStore, on: bool) -> str:
    """A record of two versions whose hold change the store stops after the first version: 202,
    recorded in the catalog, owed to the store."""
    rid = two_versions(api, medical(title=f"hold {on}"))
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    if not on:
        r = api.client.post(f"/records/{rid}/hold", json={"reason": "case 1"}, headers=api.token("archivist"))
        assert r.status_code == 200, r.text
    after_calls(archive.store, "set_legal_hold", 1, lambda: down(store))
    r = api.client.post(_hold_path(rid, on), json={"reason": "case 2"}, headers=api.token("archivist"))
    assert r.status_code == 202, r.text
    assert r.json()["legal_hold"] is on and r.json()["store_synced"] is False, r.text
    up(store)
    del archive.store.set_legal_hold
    return rid


def _hold_path(rid: str, on: bool) -> str:
    return f"/records/{rid}/hold" if on else f"/records/{rid}/hold/release"


def _owed(api: Api) -> int:
    from archive_service.store_sync import count_pending

    return count_pending(api.client.app.state.archive)  # type: ignore[attr-defined]


@pytest.mark.parametrize("on", [True, False])
def test_hold_store_down_midway_is_finished_by_reconcile(api: Api, store: DevStore, on: bool) -> None:
    rid = _hold_midway(api, store, on)
    got = api.client.get(f"/records/{rid}/hold", headers=api.token("archivist")).json()
    assert (got["legal_hold"], got["store_synced"]) == (on, False), got
    state = _agree(api, rid)
    assert state["catalog_hold"] is on and _owed(api) == 1
    assert [s[1] for s in state["store"]] == [on, not on], state  # the store took the first version only
    # the operator's repair tool after an outage; then catalog and store must say the same thing
    r = api.client.post("/admin/reconcile", headers=api.token("administrator"))
    assert r.status_code == 200 and r.json()["store_synced"] == 1 and r.json()["store_sync_owed"] == 0, r.text
    state = _agree(api, rid)
    assert all(s[1] is on for s in state["store"]), state
    assert _owed(api) == 0
    assert api.client.get(f"/records/{rid}/hold", headers=api.token("archivist")).json()["store_synced"] is True


@pytest.mark.parametrize("on", [True, False])
def test_hold_repeated_while_owed_is_a_conflict_saying_so(api: Api, store: DevStore, on: bool) -> None:
    """After a 202 the hold is recorded: the same call again is the usual 409 (no second history
    entry), saying the store is being brought in line."""
    rid = _hold_midway(api, store, on)
    r = api.client.post(_hold_path(rid, on), json={"reason": "case 2"}, headers=api.token("archivist"))
    assert r.status_code == 409 and "being brought in line" in r.json()["detail"], r.text
    history = api.client.get(f"/records/{rid}/hold", headers=api.token("archivist")).json()["history"]
    assert [h["action"] for h in history] == (["place"] if on else ["place", "release"])


def test_store_down_from_the_start_changes_nothing(api: Api, store: DevStore) -> None:
    """Store unreachable before anything is done: 503 with Retry-After, catalog untouched."""
    rid = two_versions(api, medical(title="store down first"))
    down(store)
    try:
        r = api.client.post(f"/records/{rid}/hold", json={"reason": "case 5"}, headers=api.token("archivist"))
        assert r.status_code == 503 and r.headers["Retry-After"] == "30", r.text
        until = (datetime.now(UTC) + timedelta(days=365 * 40)).isoformat()
        r = api.client.put(
            f"/records/{rid}/retention", json={"retain_until": until, "reason": "x" * 5}, headers=api.token("archivist")
        )
        assert r.status_code == 503, r.text
        hold = api.client.get(f"/records/{rid}/hold", headers=api.token("archivist")).json()
        assert hold["legal_hold"] is False and hold["history"] == []
        assert api.client.get(f"/records/{rid}", headers=api.token("archivist")).json()["retain_until"] < until
        assert _owed(api) == 0
    finally:
        up(store)


def _retention_midway(api: Api, store: DevStore, title: str) -> tuple[str, datetime, dict[str, str]]:
    """A record of two versions whose extension the store stops after the first version: 503."""
    rid = two_versions(api, medical(title=title))
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    until = (datetime.now(UTC) + timedelta(days=365 * 30)).replace(microsecond=0)
    after_calls(archive.store, "set_retention", 1, lambda: down(store))
    body = {"retain_until": until.isoformat(), "reason": "litigation"}
    r = api.client.put(f"/records/{rid}/retention", json=body, headers=api.token("archivist"))
    assert r.status_code == 202 and r.json()["store_synced"] is False, r.text
    up(store)
    del archive.store.set_retention
    return rid, until, body


def test_retention_store_down_midway(api: Api, store: DevStore) -> None:
    rid, until, body = _retention_midway(api, store, "retention")
    state = _agree(api, rid)
    assert datetime.fromisoformat(state["catalog_retain"]) == until, state
    assert [s[2] == until for s in state["store"]] == [True, False], state  # the store took v1 only
    assert api.client.post("/admin/reconcile", headers=api.token("administrator")).status_code == 200
    state = _agree(api, rid)
    assert all(s[2] == s[3] == until for s in state["store"]), state  # store lock == catalog, per version
    # repeating the call afterwards changes nothing and succeeds
    r = api.client.put(f"/records/{rid}/retention", json=body, headers=api.token("archivist"))
    assert r.status_code == 200 and r.json()["versions"] == 2, r.text


def test_retention_store_down_midway_is_finished_by_repeating_the_call(api: Api, store: DevStore) -> None:
    rid, until, body = _retention_midway(api, store, "retention retry")
    r = api.client.put(f"/records/{rid}/retention", json=body, headers=api.token("archivist"))
    assert r.status_code == 200, r.text
    assert all(s[2] == s[3] == until for s in _agree(api, rid)["store"])
    assert _owed(api) == 0


def test_hold_and_extension_midway_on_postgresql(
    store: DevStore, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The same roll-forward on the production catalog engine: a hold the store stops midway, and a
    patient extension the store misses after an ingest, both finished by the reconciler."""
    settings = make_settings(
        store,
        tmp_path / "state",
        database_url=fresh_database(request.getfixturevalue("postgres")),
        audit_flush_seconds=3600,
        store_sync_seconds=3600,
    )
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        rid = _hold_midway(api, store, True)
        pid = "PG-4444444"
        older = api.ingest(b"older", medical(patient_id=pid, document_date="2001-01-01", title="older"))
        archive = client.app.state.archive  # type: ignore[attr-defined]
        after_calls(archive.store, "put", 1, lambda: down(store))
        r = api.ingest(b"newer", medical(patient_id=pid, document_date="2016-01-01", title="newer"))
        up(store)
        del archive.store.put
        assert r.status_code == 201, r.text
        assert _owed(api) == 2
        got = client.post("/admin/reconcile", headers=api.token("administrator")).json()
        assert (got["store_synced"], got["store_sync_owed"]) == (2, 0), got
        assert all(s[1] is True for s in _agree(api, rid)["store"])
        state = _agree(api, older.json()["record_id"])
        assert datetime.fromisoformat(state["catalog_retain"]) == datetime.fromisoformat(r.json()["retain_until"])
        assert all(s[2] == s[3] for s in state["store"]), state


def test_background_sync_finishes_without_anyone_asking(store: DevStore, tmp_path: Path) -> None:
    settings = make_settings(store, tmp_path / "state", audit_flush_seconds=3600, store_sync_seconds=0.5)
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        rid = _hold_midway(api, store, True)
        deadline = time.monotonic() + 30
        while _owed(api) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _owed(api) == 0
        assert all(s[1] is True for s in _agree(api, rid)["store"])
        metrics = client.get("/metrics").text
        assert "hdc_archive_store_sync_owed_records 0.0" in metrics


def test_catalog_rebuilt_from_a_partly_held_record_finishes_the_hold(store: DevStore, tmp_path: Path) -> None:
    """The catalog is lost while a hold is owed to the store: the rebuild says held (any version
    held) and leaves the rest to the store sync, which the next start runs."""
    from archive_service.rebuild import rebuild_catalog

    settings = make_settings(store, tmp_path / "state", audit_flush_seconds=3600, store_sync_seconds=3600)
    with TestClient(create_app(settings)) as client:
        rid = _hold_midway(Api(client, settings), store, True)
    into = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    report = rebuild_catalog(settings, into=into)
    assert any(rid in n and "some versions only" in n for n in report.notes), report.notes
    rebuilt = settings.model_copy(update={"database_url": into})
    with TestClient(create_app(rebuilt)) as client:  # its start reconciles: the sync holds v2
        api = Api(client, rebuilt)
        state = _agree(api, rid)
        assert state["catalog_hold"] is True and [s[1] for s in state["store"]] == [True, True], state
        assert _owed(api) == 0
        # the 202-answered hold is in the rebuilt history with its reason (from the audit trail)
        history = client.get(f"/records/{rid}/hold", headers=api.token("archivist")).json()["history"]
        assert [(h["action"], h["reason"]) for h in history] == [("place", "case 2")], history


def test_metrics_count_records_owed_a_store_update(api: Api, store: DevStore) -> None:
    _hold_midway(api, store, True)
    assert "hdc_archive_store_sync_owed_records 1.0" in api.client.get("/metrics").text


def test_disposition_applies_a_release_the_store_missed(api: Api, store: DevStore) -> None:
    """A release the store stopped midway: the record's destruction must not fail on a hold the
    catalog no longer has (it applies the release first)."""
    meta = administrative(title="held, released, destroyed")
    rid = two_versions(api, meta)
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    assert (
        api.client.post(f"/records/{rid}/hold", json={"reason": "case 3"}, headers=api.token("archivist")).status_code
        == 200
    )
    after_calls(archive.store, "set_legal_hold", 1, lambda: down(store))
    r = api.client.post(f"/records/{rid}/hold/release", json={"reason": "case 3"}, headers=api.token("archivist"))
    assert r.status_code == 202, r.text
    up(store)
    del archive.store.set_legal_hold
    assert [s[1] for s in _agree(api, rid)["store"]] == [False, True]
    time.sleep(SHORT + 1.5)
    req = _approved_request(api, [rid])
    r = api.client.post(f"/disposition/requests/{req}/execute", headers=api.token("archivist"))
    assert r.status_code == 200, r.text
    assert api.client.get(f"/records/{rid}", headers=api.token("archivist")).json()["status"] == "destroyed"
    assert archive.store.list_versions(archive.store.records, f"records/{rid}/") == []


def test_object_deleted_behind_the_service(api: Api, store: DevStore) -> None:
    """Someone removes a version's object once its lock has passed: reads name the missing object
    (500, restore runbook), a hold is still recorded, and the sync reports it owed instead of failing."""
    rid = api.ingest(b"soon gone", administrative(title="vanishing")).json()["record_id"]
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    [v] = versions_of(api, rid)
    time.sleep(SHORT + 1.5)
    archive.store.delete_version(archive.store.records, v.object_key, v.s3_version_id)
    r = api.client.get(f"/records/{rid}/content", headers=api.token("archivist"))
    assert r.status_code == 500 and "restore-record.md" in r.json()["detail"], r.text
    r = api.client.post(f"/records/{rid}/hold", json={"reason": "case 9"}, headers=api.token("archivist"))
    assert r.status_code == 500 and "recorded in the catalog" in r.json()["detail"], r.text
    got = api.client.post("/admin/reconcile", headers=api.token("administrator")).json()
    assert (got["store_synced"], got["store_sync_owed"]) == (0, 1), got
    report = api.client.post("/admin/fixity", headers=api.token("administrator")).json()
    assert any(f["record_id"] == rid for f in report["failures"]), report


def test_hold_placed_while_a_correction_is_stored_holds_the_correction(api: Api, store: DevStore) -> None:
    """The hold lands between the correction's catalog row and its commit: the hold's own pass does
    not see the pending version, so the commit must bring it under the hold too."""
    meta = medical(title="race")
    rid = api.ingest(b"v1", meta).json()["record_id"]
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    orig_put = archive.store.put

    def put(*a: Any, **kw: Any) -> Any:
        archive.set_hold(rid, True, "placed meanwhile", "bob")
        return orig_put(*a, **kw)

    archive.store.put = put
    r = api.ingest(b"v2", meta, record_id=rid)
    del archive.store.put
    assert r.status_code == 201, r.text
    assert [(s[0], s[1]) for s in _agree(api, rid)["store"]] == [(1, True), (2, True)]
    assert _owed(api) == 0


# ---------------------------------------------------------------- corrections


def test_correction_whose_answer_is_lost_then_retried_and_reconciled(
    settings: ArchiveSettings, store: DevStore
) -> None:
    """The correction's PUT lands but its answer is lost (503); the client retries (v3); at the next
    start the reconciler settles the pending v2: the record must still show v3 as current."""
    meta = administrative(title="original")
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        rid = api.ingest(b"v1", meta).json()["record_id"]
        archive = client.app.state.archive  # type: ignore[attr-defined]
        lose_put_answers(archive)
        r = api.ingest(b"v2", administrative(title="second"), record_id=rid)
        assert r.status_code == 503, r.text
        del archive.store.put
        r = api.ingest(b"v2", administrative(title="second"), record_id=rid)  # the client's retry
        assert r.status_code == 201, r.text
        assert r.json()["current_version"] == 3
    with TestClient(create_app(settings)) as client:  # restart: reconcile
        api = Api(client, settings)
        rec = client.get(f"/records/{rid}", headers=api.token("archivist")).json()
        assert rec["current_version"] == 3 and rec["title"] == "second", rec


def test_medical_correction_extension_failure_is_not_reported_as_not_stored(api: Api, store: DevStore) -> None:
    """A correction moves the patient's last document date, so the patient's earlier record must be
    extended; the store goes down right after the correction's object is written. The version is
    committed (201, no second version on a retry) and the extension follows once the store is back."""
    pid = "TN-7777777"
    older = api.ingest(b"older", medical(patient_id=pid, document_date="2001-01-01", title="older")).json()
    rid = api.ingest(b"newer", medical(patient_id=pid, document_date="2002-01-01", title="newer")).json()["record_id"]
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    after_calls(archive.store, "put", 1, lambda: down(store))
    r = api.ingest(b"corrected", medical(patient_id=pid, document_date="2012-01-01", title="newer"), record_id=rid)
    up(store)
    del archive.store.put
    assert r.status_code == 201, r.text
    versions = api.client.get(f"/records/{rid}/versions", headers=api.token("archivist")).json()
    assert len(versions) == 2
    new_until = r.json()["retain_until"]
    assert (
        api.client.get(f"/records/{older['record_id']}", headers=api.token("archivist")).json()["retain_until"]
        == new_until
    )
    assert _owed(api) == 1
    assert api.client.post("/admin/reconcile", headers=api.token("administrator")).status_code == 200
    state = _agree(api, older["record_id"])
    assert all(s[2] == s[3] and s[3].isoformat() == new_until.replace("Z", "+00:00") for s in state["store"]), (
        state,
        new_until,
    )


def test_reconciler_committing_a_medical_ingest_extends_the_patient_records(
    settings: ArchiveSettings, store: DevStore
) -> None:
    """The service dies between the object's PUT and its commit: the reconciler commits it at the
    next start, and must push the patient's earlier records to the new date as the ingest would."""
    pid = "TN-5555555"
    with TestClient(create_app(settings)) as client:
        api = Api(client, settings)
        older = api.ingest(b"older", medical(patient_id=pid, document_date="2001-01-01", title="older")).json()
        archive = client.app.state.archive  # type: ignore[attr-defined]
        lose_put_answers(archive)
        r = api.ingest(b"newer", medical(patient_id=pid, document_date="2015-06-01", title="newer"))
        assert r.status_code == 503, r.text
        del archive.store.put
    with TestClient(create_app(settings)) as client:  # restart: reconcile
        api = Api(client, settings)
        got = client.post("/search", json={"patient_id": pid}, headers=api.token("archivist")).json()
        [newer] = [x for x in got["results"] if x["title"] == "newer"]
        old = client.get(f"/records/{older['record_id']}", headers=api.token("archivist")).json()
        assert old["retain_until"] == newer["retain_until"], (old, newer)
        state = _agree(api, older["record_id"])
        assert all(s[2] == s[3] for s in state["store"]), state


# ---------------------------------------------------------------- audit flush


def test_audit_flush_answer_lost_then_retried(api: Api, store: DevStore) -> None:
    """The batch PUT lands but its answer is lost; the next flush must not make the chain look tampered."""
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    for i in range(3):
        api.client.get(f"/records/nope-{i}", headers=api.token("archivist"))
    lose_put_answers(archive)
    with pytest.raises(StoreUnavailable):
        archive.audit.flush()
    del archive.store.put
    api.client.get("/records/nope-after", headers=api.token("archivist"))
    archive.audit.flush()
    report = verify_chain(archive.store, None, local_heads(api.settings.state_dir))
    assert report.ok, report.problems
