"""Ingest, retrieve, versions, search against the real store."""

from __future__ import annotations

import hashlib
import json
import os

from .conftest import Api, administrative, medical


def test_ingest_and_read_back_small_record(api: Api) -> None:
    data = os.urandom(200_000)
    r = api.ingest(data, medical())
    assert r.status_code == 201, r.text
    rec = r.json()
    assert rec["sha256"] == hashlib.sha256(data).hexdigest()
    assert rec["size"] == len(data) and rec["version"] == 1 and rec["has_patient"]
    got = api.client.get(f"/records/{rec['record_id']}/content", headers=api.token("archivist"))
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "application/pdf"


def test_ingest_answer_is_what_the_catalog_holds(api: Api) -> None:
    """The ingest answer is built from what was written, not read back: it must match a later GET."""
    h = api.token("archivist")
    for data in (os.urandom(3000), os.urandom(6 * 1024 * 1024 + 1)):  # one PUT; multipart
        r = api.ingest(data, medical(title="Compte rendu", tags=["cardio", "urgent"]))
        assert r.status_code == 201, r.text
        answer = r.json()
        assert answer.pop("version") == 1
        assert api.client.get(f"/records/{answer['record_id']}", headers=h).json() == answer


def test_multipart_record_and_ranges(api: Api) -> None:
    data = os.urandom(12 * 1024 * 1024 + 12345)  # three 5 MiB parts
    r = api.ingest(data, medical(title="Scanner thoracique"))
    assert r.status_code == 201, r.text
    rid = r.json()["record_id"]
    h = api.token("archivist")
    for rng, lo, hi in [
        ("bytes=0-99", 0, 99),
        ("bytes=65530-65545", 65530, 65545),
        ("bytes=-777", len(data) - 777, len(data) - 1),
        (f"bytes={5 * 1024 * 1024 - 3}-", 5 * 1024 * 1024 - 3, len(data) - 1),
    ]:
        got = api.client.get(f"/records/{rid}/content", headers={**h, "Range": rng})
        assert got.status_code == 206, rng
        assert got.content == data[lo : hi + 1], rng
        assert got.headers["content-range"] == f"bytes {lo}-{hi}/{len(data)}"
    bad = api.client.get(f"/records/{rid}/content", headers={**h, "Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416
    whole = api.client.get(f"/records/{rid}/content", headers=h)
    assert hashlib.sha256(whole.content).hexdigest() == hashlib.sha256(data).hexdigest()


def test_empty_record(api: Api) -> None:
    r = api.ingest(b"", administrative(title="Empty form"))
    assert r.status_code == 201, r.text
    got = api.client.get(f"/records/{r.json()['record_id']}/content", headers=api.token("archivist"))
    assert got.status_code == 200 and got.content == b""


def test_checksum_mismatch_stores_nothing(api: Api) -> None:
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    before = set(archive.store.list_keys(archive.store.records, "records/"))
    for size in (1000, 7 * 1024 * 1024):
        r = api.ingest(os.urandom(size), medical(), sha="0" * 64)
        assert r.status_code == 400 and "mismatch" in r.json()["detail"]
    assert set(archive.store.list_keys(archive.store.records, "records/")) == before
    assert archive.store.list_uploads("records/") == []
    from sqlalchemy import text

    with archive.engine.connect() as conn:
        assert conn.execute(text("select count(*) from versions where state='pending'")).scalar() == 0


def test_invalid_metadata_names_the_field(api: Api) -> None:
    cases = [
        (medical(patient_id=None), "patient_id"),
        (medical(facility="nowhere"), "facility"),
        (medical(document_date="2024-13-01"), "document_date"),
        ({**medical(), "colour": "red"}, "colour"),
        (administrative(patient_id="X1"), "patient_id"),
    ]
    for meta, field in cases:
        r = api.ingest(b"abc", meta)
        assert r.status_code == 422, r.text
        assert field in json.dumps(r.json()["detail"]), (field, r.text)
    r = api.client.post(
        "/records",
        content=b"x",
        headers={**api.token("archivist"), "X-Archive-Metadata": "{not json", "X-Content-SHA256": "a" * 64},
    )
    assert r.status_code == 422 and "X-Archive-Metadata" in r.text
    r = api.client.post(
        "/records",
        content=b"x",
        headers={**api.token("archivist"), "X-Archive-Metadata": json.dumps(medical()), "X-Content-SHA256": "xyz"},
    )
    assert r.status_code == 422 and "X-Content-SHA256" in r.text


def test_too_large_is_413(api: Api) -> None:
    limit = api.settings.max_record_bytes
    r = api.client.post(
        "/records",
        content=b"x" * 10,
        headers={
            **api.token("archivist"),
            "X-Archive-Metadata": json.dumps(medical()),
            "X-Content-SHA256": "a" * 64,
            "Content-Length": str(limit + 1),
        },
    )
    assert r.status_code == 413

    def gen():  # no Content-Length: the limit is enforced while streaming
        for _ in range(limit // (1 << 20) + 2):
            yield b"y" * (1 << 20)

    r = api.client.post(
        "/records",
        content=gen(),
        headers={**api.token("archivist"), "X-Archive-Metadata": json.dumps(medical()), "X-Content-SHA256": "a" * 64},
    )
    assert r.status_code == 413


def test_correction_creates_version_and_keeps_old(api: Api) -> None:
    v1 = os.urandom(5000)
    rid = api.ingest(v1, medical(title="Lettre de sortie")).json()["record_id"]
    v2 = os.urandom(6000)
    r = api.ingest(v2, medical(title="Lettre de sortie (corrigée)"), record_id=rid, reason="wrong dosage")
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2 and r.json()["title"] == "Lettre de sortie (corrigée)"
    h = api.token("archivist")
    hist = api.client.get(f"/records/{rid}/versions", headers=h).json()
    assert [v["version"] for v in hist] == [1, 2] and hist[1]["correction_reason"] == "wrong dosage"
    assert api.client.get(f"/records/{rid}/content?version=1", headers=h).content == v1
    assert api.client.get(f"/records/{rid}/content", headers=h).content == v2
    # changing the patient is not a correction
    r = api.ingest(b"x", medical(patient_id="OTHER"), record_id=rid)
    assert r.status_code == 409


def test_search_by_patient_facility_class_date_text(api: Api) -> None:
    h = api.token("archivist")
    ids = []
    for i, (title, day) in enumerate(
        [
            ("Radiographie du genou", "2022-01-10"),
            ("Bilan sanguin", "2022-06-01"),
            ("Radiographie du thorax", "2023-02-02"),
        ]
    ):
        ids.append(
            api.ingest(
                f"doc{i}".encode(),
                medical(patient_id="PAT-SEARCH-1", title=title, document_date=day, facility="hr-ariana"),
            ).json()["record_id"]
        )
    r = api.client.post("/search", json={"patient_id": "PAT-SEARCH-1"}, headers=h).json()
    assert [x["record_id"] for x in r["results"]] == ids[::-1]
    r = api.client.post("/search", json={"patient_id": "pat-search-1 ", "q": "radiographie"}, headers=h).json()
    assert {x["record_id"] for x in r["results"]} == {ids[0], ids[2]}
    r = api.client.post(
        "/search", json={"patient_id": "PAT-SEARCH-1", "date_from": "2022-02-01", "date_to": "2022-12-31"}, headers=h
    ).json()
    assert [x["record_id"] for x in r["results"]] == [ids[1]]
    page1 = api.client.post("/search", json={"patient_id": "PAT-SEARCH-1", "limit": 2}, headers=h).json()
    page2 = api.client.post(
        "/search", json={"patient_id": "PAT-SEARCH-1", "limit": 2, "cursor": page1["next_cursor"]}, headers=h
    ).json()
    assert [x["record_id"] for x in page1["results"] + page2["results"]] == ids[::-1] and page2["next_cursor"] is None
    r = api.client.post(
        "/search", json={"facility": "hr-ariana", "record_class": "medical", "q": "thorax"}, headers=h
    ).json()
    assert [x["record_id"] for x in r["results"]] == [ids[2]]
    assert (
        api.client.post("/search", json={"date_from": "2023-01-01", "date_to": "2022-01-01"}, headers=h).status_code
        == 422
    )
    assert api.client.post("/search", json={"cursor": "garbage"}, headers=h).status_code == 422


def test_patient_id_never_stored_in_clear(api: Api) -> None:
    secret_pid = "TN-PLAINTEXT-98765"
    rid = api.ingest(b"some scan", medical(patient_id=secret_pid, title="Echographie")).json()["record_id"]
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    raw = archive.store.read_all(archive.store.records, f"records/{rid}/v000001")
    assert secret_pid.encode() not in raw and b"some scan" not in raw and b"Echographie" not in raw
    db_path = api.settings.state_dir / "catalog.db"
    for f in db_path.parent.glob("catalog.db*"):
        assert secret_pid.encode() not in f.read_bytes()
