"""Retention in the store (COMPLIANCE object lock), legal holds and disposition, with short schedules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from minio.commonconfig import COMPLIANCE

from archive_service.app import create_app
from archive_service.devstore import DevStore
from archive_service.store import StoreRefused

from .conftest import Api, administrative, make_settings, medical

SHORT = 4  # seconds of retention in this module


@pytest.fixture(scope="module")
def api(devstore: DevStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = make_settings(
        devstore,
        tmp_path_factory.mktemp("archive-retention"),
        retention={"medical": f"{SHORT}s", "administrative": f"{SHORT}s", "administrative/contract": "30d"},
        min_retention=f"{SHORT}s",
        certificate_retention="1d",
    )
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


def _archive(api: Api):  # type: ignore[no-untyped-def]
    return api.client.app.state.archive  # type: ignore[attr-defined]


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_buckets_have_object_lock_and_default_compliance_retention(api: Api) -> None:
    store = _archive(api).store
    for bucket in (store.records, store.audit):
        cfg = store.client.get_object_lock_config(bucket)
        assert (cfg.mode, cfg.duration, cfg.duration_unit.upper()) == (COMPLIANCE, 1, "DAYS")
        assert store.client.get_bucket_versioning(bucket).status == "Enabled"


def test_subclass_schedule_applies(api: Api) -> None:
    rec = api.ingest(
        b"contract", administrative(subclass="contract", document_date=str(datetime.now(UTC).date()))
    ).json()
    assert _when(rec["retain_until"]) > datetime.now(UTC) + timedelta(days=29)


def test_shortening_is_refused_by_service_and_store(api: Api) -> None:
    archivist = api.token("archivist")
    rec = api.ingest(b"keep me", administrative(subclass="contract")).json()
    rid, until = rec["record_id"], _when(rec["retain_until"])
    store = _archive(api).store
    key = f"records/{rid}/v000001"
    vid = store.head(store.records, key)[0]
    assert store.retention(store.records, key, vid) == until
    r = api.client.put(
        f"/records/{rid}/retention",
        json={"retain_until": (until - timedelta(days=1)).isoformat(), "reason": "try"},
        headers=archivist,
    )
    assert r.status_code == 409 and _when(r.json()["retain_until"]) == until
    r = api.client.delete(f"/records/{rid}", headers=archivist)
    assert r.status_code == 409 and _when(r.json()["retain_until"]) == until
    # the store itself refuses: not only the service
    with pytest.raises(StoreRefused):
        store.set_retention(store.records, key, vid, until - timedelta(days=1))
    with pytest.raises(StoreRefused):
        store.delete_version(store.records, key, vid)
    longer = until + timedelta(days=365)
    r = api.client.put(
        f"/records/{rid}/retention",
        json={"retain_until": longer.isoformat(), "reason": "litigation expected"},
        headers=archivist,
    )
    assert r.status_code == 200, r.text
    assert store.retention(store.records, key, vid) == longer.replace(microsecond=0)
    assert _when(api.client.get(f"/records/{rid}", headers=archivist).json()["retain_until"]) == longer.replace(
        microsecond=0
    )


def test_medical_retention_runs_from_the_patients_last_document(api: Api) -> None:
    first = api.ingest(b"a", medical(patient_id="PAT-RET-1")).json()
    time.sleep(1.1)
    second = api.ingest(b"b", medical(patient_id="PAT-RET-1")).json()
    assert _when(second["retain_until"]) > _when(first["retain_until"])
    again = api.client.get(f"/records/{first['record_id']}", headers=api.token("archivist")).json()
    assert again["retain_until"] == second["retain_until"]
    store = _archive(api).store
    key = f"records/{first['record_id']}/v000001"
    assert store.retention(store.records, key, store.head(store.records, key)[0]) == _when(second["retain_until"])


def test_legal_hold_place_release_and_roles(api: Api) -> None:
    rid = api.ingest(b"disputed", medical(patient_id="PAT-HOLD")).json()["record_id"]
    store = _archive(api).store
    key = f"records/{rid}/v000001"
    vid = store.head(store.records, key)[0]
    assert (
        api.client.post(
            f"/records/{rid}/hold",
            json={"reason": "court order 2024/117"},
            headers=api.token("clinician", facility="hu-tunis-nord"),
        ).status_code
        == 403
    )
    assert (
        api.client.post(f"/records/{rid}/hold", json={"reason": ""}, headers=api.token("archivist")).status_code == 422
    )
    r = api.client.post(
        f"/records/{rid}/hold", json={"reason": "court order 2024/117"}, headers=api.token("administrator", sub="legal")
    )
    assert r.status_code == 200 and r.json()["legal_hold"] is True
    assert store.legal_hold(store.records, key, vid) is True
    assert (
        api.client.post(f"/records/{rid}/hold", json={"reason": "again"}, headers=api.token("archivist")).status_code
        == 409
    )
    time.sleep(SHORT + 1)
    # retention has expired, but the hold keeps the object: the store refuses deletion
    with pytest.raises(StoreRefused):
        store.delete_version(store.records, key, vid)
    r = api.client.post(
        "/disposition/requests", json={"record_ids": [rid], "reason": "expired"}, headers=api.token("archivist")
    )
    assert r.status_code == 409 and "legal hold" in r.json()["detail"]
    r = api.client.post(
        f"/records/{rid}/hold/release", json={"reason": "case closed"}, headers=api.token("archivist", sub="legal2")
    )
    assert r.status_code == 200 and r.json()["legal_hold"] is False
    assert [h["action"] for h in r.json()["history"]] == ["place", "release"]
    assert store.legal_hold(store.records, key, vid) is False


def test_disposition_two_people_destroy_and_certificate(api: Api) -> None:
    a = api.ingest(b"old record 1", administrative(title="Registre 1998")).json()["record_id"]
    b = api.ingest(b"old record 2", administrative(title="Registre 1999")).json()
    api.ingest(b"old record 2 corrected", administrative(title="Registre 1999"), record_id=b["record_id"])
    b = b["record_id"]
    archivist = api.token("archivist", sub="archivist-1")
    # too early: still retained
    r = api.client.post(
        "/disposition/requests", json={"record_ids": [a], "reason": "schedule expired"}, headers=archivist
    )
    assert r.status_code == 409 and "retain_until" in r.json()
    # a second copy under a's object key, as a PUT repeated after a lost answer leaves one
    store = _archive(api).store
    key_a = f"records/{a}/v000001"
    store.put(store.records, key_a, store.read_all(store.records, key_a), datetime.now(UTC) + timedelta(seconds=SHORT))
    assert len(store.list_versions(store.records, key_a)) == 2
    time.sleep(SHORT + 1.5)
    due = {x["record_id"] for x in api.client.get("/disposition/due", headers=archivist).json()["records"]}
    assert {a, b} <= due
    req = api.client.post(
        "/disposition/requests", json={"record_ids": [a, b], "reason": "schedule expired"}, headers=archivist
    ).json()
    rid = req["request_id"]
    assert api.client.post(f"/disposition/requests/{rid}/execute", headers=archivist).status_code == 409  # not approved
    same = api.token("administrator", "archivist", sub="archivist-1")
    r = api.client.post(f"/disposition/requests/{rid}/approve", headers=same)
    assert r.status_code == 409 and "second person" in r.json()["detail"]
    assert (
        api.client.post(f"/disposition/requests/{rid}/approve", headers=api.token("archivist", sub="x")).status_code
        == 403
    )
    r = api.client.post(f"/disposition/requests/{rid}/approve", headers=api.token("administrator", sub="director"))
    assert r.status_code == 200 and r.json()["status"] == "approved"
    r = api.client.post(f"/disposition/requests/{rid}/execute", headers=archivist)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "executed"
    for rec in (a, b):
        assert store.list_versions(store.records, f"records/{rec}/") == []
        got = api.client.get(f"/records/{rec}", headers=archivist).json()
        assert got["status"] == "destroyed"
        assert api.client.get(f"/records/{rec}/content", headers=archivist).status_code == 410
    cert = api.client.get(f"/disposition/certificates/{rid}", headers=api.token("auditor")).json()
    doc = cert["document"]
    assert doc["requested_by"] == "archivist-1" and doc["approved_by"] == "director"
    assert {r["record_id"] for r in doc["records"]} == {a, b}
    assert [len(r["versions"]) for r in sorted(doc["records"], key=lambda r: r["record_id"] != b)] == [2, 1]
    # the certificate stays in the archive, locked
    key = cert["object_key"]
    assert {r["title"] for r in doc["records"]} == {"Registre 1998", "Registre 1999"}  # administrative: described
    vid = store.head(store.records, key)[0]
    assert store.retention(store.records, key, vid) > datetime.now(UTC) + timedelta(hours=23)
    with pytest.raises(StoreRefused):
        store.delete_version(store.records, key, vid)


def test_a_medical_records_certificate_keeps_no_medical_data(api: Api) -> None:
    """Store administrators can read certificates: a destroyed medical record leaves proof, not content."""
    title = "Sérologie VIH — résultat"
    rid = api.ingest(b"lab result", medical(title=title, tags=["serology"], author="Dr Medical")).json()["record_id"]
    time.sleep(SHORT + 1.5)
    archivist = api.token("archivist", sub="archivist-1")
    req = api.client.post(
        "/disposition/requests", json={"record_ids": [rid], "reason": "schedule expired"}, headers=archivist
    ).json()["request_id"]
    assert (
        api.client.post(
            f"/disposition/requests/{req}/approve", headers=api.token("administrator", sub="dir")
        ).status_code
        == 200
    )
    assert api.client.post(f"/disposition/requests/{req}/execute", headers=archivist).status_code == 200
    cert = api.client.get(f"/disposition/certificates/{req}", headers=api.token("auditor")).json()
    store = _archive(api).store
    raw = store.read_all(store.records, cert["object_key"]).decode()
    for secret in (title, "serology", "Dr Medical", "TN-1234567"):
        assert secret not in raw, secret
    [entry] = cert["document"]["records"]
    assert entry["record_id"] == rid and entry["record_class"] == "medical"
    assert entry["descriptive"] == "withheld: medical record"
    assert [v["sha256"] for v in entry["versions"]] and "meta" not in entry["versions"][0]
