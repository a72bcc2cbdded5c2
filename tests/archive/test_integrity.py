"""Envelope encryption, key rotation, fixity and audit-chain verification, against the real store."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from fastapi.testclient import TestClient
from minio.commonconfig import CopySource
from sqlalchemy import text
from typer.testing import CliRunner

from archive_service.app import create_app
from archive_service.audit import verify_chain
from archive_service.cli import app as cli_app
from archive_service.crypto import TAG, Envelope
from archive_service.devstore import DevStore

from .conftest import Api, make_settings, medical


@pytest.fixture(scope="module")
def api(devstore: DevStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = make_settings(devstore, tmp_path_factory.mktemp("archive-integrity"))
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


def _archive(api: Api):  # type: ignore[no-untyped-def]
    return api.client.app.state.archive  # type: ignore[attr-defined]


def _env(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in api.settings.model_dump(mode="json").items():
        if v is not None and not isinstance(v, dict):
            monkeypatch.setenv(f"HDC_ARCHIVE_{k.upper()}", str(v))
    monkeypatch.setenv("HDC_ARCHIVE_RETENTION", json.dumps(api.settings.retention))


def test_store_holds_only_ciphertext_with_sse(api: Api) -> None:
    data = b"ECG trace " * 20000
    rid = api.ingest(data, medical(title="ECG de repos")).json()["record_id"]
    store = _archive(api).store
    key = f"records/{rid}/v000001"
    raw = store.read_all(store.records, key)
    env, hlen = Envelope.from_header(raw)
    assert env.record_id == rid and b"ECG" not in raw
    chunks = -(-len(data) // api.settings.chunk_size)
    assert len(raw) == hlen + len(data) + TAG * chunks
    st = store.client.stat_object(store.records, key)
    assert st.metadata.get("x-amz-server-side-encryption") == "AES256"
    # tampering with a ciphertext byte is caught on read (GCM tag), not served
    from archive_service.crypto import cipher_for

    row = _archive(api).version(rid)
    cipher = cipher_for(_archive(api).provider, rid, 1, row.key_id, row.wrapped_dek, row.prefix)
    ct = bytearray(raw[hlen : hlen + api.settings.chunk_size + TAG])
    assert cipher.open(0, bytes(ct), chunks == 1) == data[: api.settings.chunk_size]
    ct[5] ^= 1
    with pytest.raises(InvalidTag):
        cipher.open(0, bytes(ct), chunks == 1)
    # chunks cannot be reordered or the final flag dropped (truncation)
    second = raw[hlen + api.settings.chunk_size + TAG : hlen + 2 * (api.settings.chunk_size + TAG)]
    with pytest.raises(InvalidTag):
        cipher.open(0, second, False)
    last = raw[hlen + (chunks - 1) * (api.settings.chunk_size + TAG) :]
    with pytest.raises(InvalidTag):
        cipher.open(chunks - 1, last, False)


def test_key_rotation_rewraps_without_touching_content(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(300_000)
    rid = api.ingest(data, medical(title="IRM cérébrale")).json()["record_id"]
    archive = _archive(api)
    store = archive.store
    key = f"records/{rid}/v000001"
    before = store.head(store.records, key)
    old_key = archive.version(rid).key_id
    _env(api, monkeypatch)
    res = CliRunner().invoke(cli_app, ["keys", "rotate"])
    assert res.exit_code == 0, res.output
    assert "re-wrapped" in res.output
    after_row = archive.version(rid)
    assert after_row.key_id != old_key and after_row.rewrap_version_id
    assert store.head(store.records, key) == before  # same version id, size, ETag: content untouched
    assert [v for k, v, _l, _m in store.list_versions(store.records, key) if k == key] == [before[0]]
    sidecar = json.loads(store.read_all(store.records, f"keys/{rid}/v000001.json"))
    assert sidecar["key_id"] == after_row.key_id and sidecar["previous_key_id"] == old_key
    # the running service picks up the rotated keyring and still reads the record
    assert api.client.get(f"/records/{rid}/content", headers=api.token("archivist")).content == data
    # new ingests use the new key; the old key can be retired once nothing uses it
    rid2 = api.ingest(b"after rotation", medical()).json()["record_id"]
    assert archive.version(rid2).key_id == after_row.key_id
    res = CliRunner().invoke(cli_app, ["keys", "retire", old_key])
    assert res.exit_code == 0, res.output
    assert api.client.get(f"/records/{rid}/content", headers=api.token("archivist")).content == data


def _held(store: Any, key: str, vid: str) -> bool:
    from minio.error import S3Error

    try:
        return bool(store.legal_hold(store.records, key, vid))
    except S3Error as exc:  # a version that never had a hold
        if exc.code == "NoSuchObjectLegalHold":
            return False
        raise


def test_key_sidecars_follow_the_record_hold(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-wrapped data key is needed to read a version once the old KEK is retired: it is held
    with its record, whether the hold came before the rotation or after."""
    archive = _archive(api)
    store = archive.store
    held_first = api.ingest(b"held, then keys rotated", medical()).json()["record_id"]
    held_after = api.ingest(b"keys rotated, then held", medical()).json()["record_id"]
    h = api.token("archivist")
    assert api.client.post(f"/records/{held_first}/hold", json={"reason": "case 11"}, headers=h).status_code == 200
    _env(api, monkeypatch)
    assert CliRunner().invoke(cli_app, ["keys", "rotate"]).exit_code == 0
    assert api.client.post(f"/records/{held_after}/hold", json={"reason": "case 12"}, headers=h).status_code == 200

    def sidecar(rid: str) -> bool:
        return _held(store, f"keys/{rid}/v000001.json", str(archive.version(rid).rewrap_version_id))

    assert sidecar(held_first) and sidecar(held_after)
    r = api.client.post(f"/records/{held_first}/hold/release", json={"reason": "case 11 closed"}, headers=h)
    assert r.status_code == 200 and not sidecar(held_first)


def _version_of(archive: Any, record_id: str) -> str:
    return str(archive.version(record_id).s3_version_id)


def test_fixity_detects_mismatches(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _archive(api)
    good = api.ingest(b"intact record", medical()).json()["record_id"]
    bad_hash = api.ingest(b"catalog lies", medical()).json()["record_id"]
    swapped = api.ingest(b"will be shadowed", medical()).json()["record_id"]
    with archive.engine.begin() as conn:
        conn.execute(text("update versions set sha256 = :h where record_id = :r"), {"h": "1" * 64, "r": bad_hash})
    # someone with store credentials uploads a new version of an object (the locked one stays)
    store = archive.store
    skey = f"records/{swapped}/v000001"
    store.client.put_object(store.records, skey, io.BytesIO(b"forged"), 6)
    # a PUT repeated after a lost answer leaves the same bytes twice: a harmless copy, not a failure
    gkey = f"records/{good}/v000001"
    same = store.read_all(store.records, gkey, _version_of(archive, good))
    store.client.put_object(store.records, gkey, io.BytesIO(same), len(same))
    admin = api.token("administrator")
    r = api.client.post("/admin/fixity", headers=admin).json()
    failed = {(f["record_id"], f["detail"].split(" ")[0]) for f in r["failures"]}
    assert r["checked"] >= 3
    ids = {f["record_id"] for f in r["failures"]}
    assert bad_hash in ids and swapped in ids and good not in ids, failed
    # the alert's gauge comes from the catalog's results: it counts them after a restart too
    gauge = [ln for ln in api.client.get("/metrics").text.splitlines() if ln.startswith("hdc_archive_fixity_failures ")]
    assert gauge and float(gauge[0].split()[1]) >= 2, gauge
    _env(api, monkeypatch)
    res = CliRunner().invoke(cli_app, ["fixity"])
    assert res.exit_code == 1 and f"MISMATCH {bad_hash}" in res.output
    # the forged version does not change what the service serves
    assert api.client.get(f"/records/{swapped}/content", headers=api.token("archivist")).content == b"will be shadowed"


def test_fixity_batches_check_the_least_recently_checked_first(api: Api) -> None:
    """The nightly job checks a batch (`--limit`): versions whose last check failed first (a
    restored one clears at the next run), then never-checked ones, then the oldest checks, so
    successive batches cycle through the whole archive."""
    from archive_service import catalogdb as db
    from archive_service.fixity import run_fixity

    archive = _archive(api)
    with archive.engine.connect() as conn:
        total = len(list(db.iter_committed(conn)))
    list(run_fixity(archive, total))  # everything checked once, a day ago (checks keep whole seconds:
    with archive.engine.begin() as conn:  # the ones below must not tie with these)
        conn.execute(text("update versions set fixity_checked_at = :t"), {"t": db.now() - timedelta(days=1)})
    with archive.engine.connect() as conn:
        failed = db.fixity_failures(conn)
    fresh = api.ingest(b"never checked yet", medical()).json()["record_id"]
    batch = list(run_fixity(archive, failed + 1))
    assert [r.ok for r in batch[:failed]] == [False] * failed  # the earlier test's failures, again
    assert batch[failed].record_id == fresh and batch[failed].ok
    with archive.engine.connect() as conn:
        oldest = db.least_checked(conn, failed + 1)[failed]
    assert oldest.record_id != fresh and oldest.fixity_ok
    again = list(run_fixity(archive, failed + 1))[failed]
    assert (again.record_id, again.version) == (oldest.record_id, oldest.version)


def test_export_restores_from_store(api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(150_000)
    rid = api.ingest(data, medical()).json()["record_id"]
    _env(api, monkeypatch)
    out = tmp_path / "restored.bin"
    res = CliRunner().invoke(cli_app, ["export", rid, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_audit_chain_verifies_and_detects_tampering(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _archive(api)
    for i in range(3):
        api.client.get(f"/records/nope-{i}", headers=api.token("archivist"))
        api.client.get(f"/records/nope-{i}b", headers=api.token("archivist"))
        archive.audit.flush()  # one batch per round
    r = api.client.post("/audit/verify", headers=api.token("auditor")).json()
    assert r["ok"], r["problems"]
    assert r["entries"] >= archive.audit.flushed_seq > 0
    _env(api, monkeypatch)
    res = CliRunner().invoke(cli_app, ["audit", "verify"])
    assert res.exit_code == 0 and "chain intact" in res.output, res.output
    store = archive.store
    keys = sorted(store.list_keys(store.audit, "chain/"))
    assert len(keys) >= 2
    own = [k for k in keys if k.startswith(f"chain/{archive.audit.writer}/")]
    assert len(own) >= 2

    def unlocked_copy(name: str) -> str:
        bucket = f"{store.audit}-{name}"
        store.client.make_bucket(bucket)
        for k in keys:
            store.client.copy_object(bucket, k, CopySource(store.audit, k))
        assert verify_chain(store, bucket).ok
        return bucket

    # 1) on unlocked copies of the chain: delete a whole batch, then remove one entry
    copy = unlocked_copy("gap")
    store.client.remove_object(copy, own[0])
    rep = verify_chain(store, copy)
    assert any("missing" in p for p in rep.problems), rep.problems
    copy = unlocked_copy("cut")
    lines = store.read_all(copy, own[1]).splitlines()
    body = b"".join(line + b"\n" for line in lines[1:])
    store.client.put_object(copy, own[1], io.BytesIO(body), len(body))
    rep = verify_chain(store, copy)
    assert any("expected" in p or "its name says" in p for p in rep.problems), rep.problems
    # 2) in the locked bucket: a new version of a batch with one entry altered
    lines = store.read_all(store.audit, keys[0]).splitlines()
    entry = json.loads(lines[0])
    entry["status"] = 200
    entry["actor"] = "someone-else"
    forged = b"\n".join([json.dumps(entry).encode(), *lines[1:]]) + b"\n"
    store.client.put_object(store.audit, keys[0], io.BytesIO(forged), len(forged))
    res = CliRunner().invoke(cli_app, ["audit", "verify"])
    assert res.exit_code == 1
    assert "overwritten" in res.output and "altered" in res.output, res.output
