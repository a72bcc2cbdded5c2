"""The store goes down (or its answer is lost) in the middle of operations other than ingest:
holds, retention, corrections, disposition, the audit flush. Catalog and store must agree
afterwards, the audit chain must verify, and nothing destroyed may go uncertified.

The tests marked xfail are known defects, left open (see docs/archive.md, Known limits): a retry of
the same call repairs them, but nothing repairs them without one.
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


@pytest.mark.xfail(
    strict=True,
    reason="known: a hold or retention change the store stops midway is repaired by retrying the call, "
    "not by /admin/reconcile (needs an intent log of store changes)",
)
@pytest.mark.parametrize("on", [True, False])
def test_hold_store_down_midway(api: Api, store: DevStore, on: bool) -> None:
    rid = two_versions(api, medical(title=f"hold {on}"))
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    if not on:
        assert (
            api.client.post(
                f"/records/{rid}/hold", json={"reason": "case 1"}, headers=api.token("archivist")
            ).status_code
            == 200
        )
    after_calls(archive.store, "set_legal_hold", 1, lambda: down(store))
    path = f"/records/{rid}/hold" if on else f"/records/{rid}/hold/release"
    r = api.client.post(path, json={"reason": "case 2"}, headers=api.token("archivist"))
    assert r.status_code == 503, r.text
    up(store)
    del archive.store.set_legal_hold
    # the operator's repair tool after an outage; then catalog and store must say the same thing
    assert api.client.post("/admin/reconcile", headers=api.token("administrator")).status_code == 200
    state = _agree(api, rid)
    assert all(s[1] is state["catalog_hold"] for s in state["store"]), state


@pytest.mark.xfail(
    strict=True,
    reason="known: a hold or retention change the store stops midway is repaired by retrying the call, "
    "not by /admin/reconcile (needs an intent log of store changes)",
)
def test_retention_store_down_midway(api: Api, store: DevStore) -> None:
    rid = two_versions(api, medical(title="retention"))
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    until = (datetime.now(UTC) + timedelta(days=365 * 30)).replace(microsecond=0)
    after_calls(archive.store, "set_retention", 1, lambda: down(store))
    body = {"retain_until": until.isoformat(), "reason": "litigation"}
    r = api.client.put(f"/records/{rid}/retention", json=body, headers=api.token("archivist"))
    assert r.status_code == 503, r.text
    up(store)
    del archive.store.set_retention
    assert api.client.post("/admin/reconcile", headers=api.token("administrator")).status_code == 200
    state = _agree(api, rid)
    assert all(s[2] == s[3] for s in state["store"]), state  # store lock == catalog, per version


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
        orig_put = archive.store.put

        def put(*a: Any, **kw: Any) -> Any:
            orig_put(*a, **kw)
            raise StoreUnavailable("store unreachable during PUT: connection reset (answer lost)")

        archive.store.put = put
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


@pytest.mark.xfail(
    strict=True,
    reason="known: when extending the patient's earlier records fails after a correction is committed, "
    "the client gets 503 and its retry stores another version (which applies the extension)",
)
def test_medical_correction_extension_failure_is_not_reported_as_not_stored(api: Api, store: DevStore) -> None:
    """A correction moves the patient's last document date, so the patient's earlier record must be
    extended; the store goes down right after the correction's object is written."""
    pid = "TN-7777777"
    api.ingest(b"older", medical(patient_id=pid, document_date="2001-01-01", title="older"))
    rid = api.ingest(b"newer", medical(patient_id=pid, document_date="2002-01-01", title="newer")).json()["record_id"]
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    after_calls(archive.store, "put", 1, lambda: down(store))
    r = api.ingest(b"corrected", medical(patient_id=pid, document_date="2012-01-01", title="newer"), record_id=rid)
    up(store)
    del archive.store.put
    versions = api.client.get(f"/records/{rid}/versions", headers=api.token("archivist")).json()
    # the version is committed: the client must not be told to send it again
    assert not (r.status_code >= 500 and len(versions) == 2), (r.status_code, r.text)


# ---------------------------------------------------------------- audit flush


def test_audit_flush_answer_lost_then_retried(api: Api, store: DevStore) -> None:
    """The batch PUT lands but its answer is lost; the next flush must not make the chain look tampered."""
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    for i in range(3):
        api.client.get(f"/records/nope-{i}", headers=api.token("archivist"))
    orig_put = archive.store.put

    def put(*a: Any, **kw: Any) -> Any:
        orig_put(*a, **kw)
        raise StoreUnavailable("store unreachable during PUT: connection reset (answer lost)")

    archive.store.put = put
    with pytest.raises(StoreUnavailable):
        archive.audit.flush()
    del archive.store.put
    api.client.get("/records/nope-after", headers=api.token("archivist"))
    archive.audit.flush()
    report = verify_chain(archive.store, None, local_heads(api.settings.state_dir))
    assert report.ok, report.problems
