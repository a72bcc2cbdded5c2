"""Holds and retention changes racing each other, a correction's commit, or the background sync
(archive_service/store_sync.py): whatever the order, the store ends as the catalog says, or the
record stays owed to the sync. Hooks force the bad orderings that timing alone makes rare.
"""

# ruff: noqa: F811  (fixtures imported by name, then used as arguments)
from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from archive_service import catalogdb as db
from archive_service import store_sync
from archive_service.app import create_app
from archive_service.devstore import DevStore

from .conftest import Api, administrative, make_settings, medical
from .test_catalog import (
    fresh_database,
    postgres,  # noqa: F401  (session fixture: a throw-away PostgreSQL)
)
from .test_fault_consistency import (  # noqa: F401  (fixtures)
    SHORT,
    _agree,
    _hold,
    _owed,
    api,
    settings,
    store,
    two_versions,
    up,
    versions_of,
)


def _archive(api: Api) -> Any:
    return api.client.app.state.archive  # type: ignore[attr-defined]


def _hold_req(api: Api, rid: str, on: bool, reason: str = "case 1") -> Any:
    path = f"/records/{rid}/hold" + ("" if on else "/release")
    return api.client.post(path, json={"reason": reason}, headers=api.token("archivist"))


@pytest.fixture(params=["sqlite", "postgresql"])
def any_api(store: DevStore, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The API on either catalog engine (the locking differs: database lock against row locks)."""
    up(store)
    extra = {"database_url": fresh_database(request.getfixturevalue("postgres"))} if request.param != "sqlite" else {}
    settings = make_settings(store, tmp_path / "state", audit_flush_seconds=3600, store_sync_seconds=3600, **extra)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)
    up(store)


# ---------------------------------------------------------------- a stale settle after a newer change


@contextlib.contextmanager
def paused(archive: Any, method: str, run: Callable[[], Any]) -> Iterator[dict[str, Any]]:
    """Run `run` in a thread whose calls of `archive.store.<method>` wait; the block runs while
    it waits, and it goes on (and is joined) when the block ends. Yields {"result": …} after."""
    orig = getattr(archive.store, method)
    reached, go = threading.Event(), threading.Event()

    def slow(*a: Any, **kw: Any) -> Any:
        if threading.current_thread().name == "paused":
            reached.set()
            go.wait(30)
        return orig(*a, **kw)

    setattr(archive.store, method, slow)
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.setdefault("result", run()), name="paused")
    t.start()
    try:
        assert reached.wait(30)
        yield out
    finally:
        go.set()
        t.join(30)
        delattr(archive.store, method)


@pytest.mark.parametrize("on", [True, False])
def test_stale_settle_write_after_a_newer_change_is_written_over(api: Api, on: bool) -> None:
    """A settle (the background sync) read the hold, then a request changes it and settles fully;
    the old settle's write lands last. It must see the catalog moved and write the current state."""
    archive = _archive(api)
    rid = api.ingest(b"p1", medical(title=f"stale {on}")).json()["record_id"]
    if not on:
        assert _hold_req(api, rid, True).status_code == 200
    with archive.engine.begin() as conn:  # a row an earlier outage left, which the sync now settles
        store_sync.mark(conn, rid)
    with paused(archive, "set_legal_hold", lambda: store_sync.settle(archive, rid)) as out:
        # the sync holds the old state and is about to write it
        r = _hold_req(api, rid, on, "the newer change")
        assert r.status_code == 200, r.text
    assert out["result"] is True
    state = _agree(api, rid)
    assert state["catalog_hold"] is on and [s[1] for s in state["store"]] == [on], state
    assert _owed(api) == 0


def test_racing_extensions_keep_the_later_lock(api: Api) -> None:
    archive = _archive(api)
    rid = two_versions(api, medical(title="extensions racing"))
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365 * 30)
    a, b = base, base + timedelta(days=10)
    with paused(archive, "set_retention", lambda: archive.extend_retention(rid, a, "a")):
        archive.extend_retention(rid, b, "b")
    assert all(s[2] == s[3] == b for s in _agree(api, rid)["store"])
    assert _owed(api) == 0


# ---------------------------------------------------------------- a change landing inside a correction's commit


def correct_while(api: Api, title: str, action: Callable[[str], None]) -> dict[str, Any]:
    """Store a correction of a new record; once its commit has read the record, start
    `action(record_id)` in a thread and give it time to run (it must wait for the commit, not slip
    in between the commit's reads and writes). Returns catalog and store state afterwards."""
    meta = medical(title=title)
    rid = api.ingest(b"v1", meta).json()["record_id"]
    orig = db.get_record
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action(rid)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, name="during-commit")

    def get_record(conn: Any, record_id: str) -> Any:
        row = orig(conn, record_id)
        if sys._getframe(1).f_code.co_name == "_commit" and t.ident is None:
            t.start()
            t.join(1.0)  # without the commit's lock the action completes here
        return row

    db.get_record = get_record  # type: ignore[assignment]
    try:
        r = api.ingest(b"v2", meta, record_id=rid)
    finally:
        db.get_record = orig  # type: ignore[assignment]
    t.join(60)
    assert t.ident is not None and not errors, errors
    assert r.status_code == 201, r.text
    assert _owed(api) == 0
    return _agree(api, rid)


def test_hold_placed_during_a_correction_commit_reaches_the_correction(any_api: Api) -> None:
    archive = _archive(any_api)
    state = correct_while(any_api, "hold at commit", lambda rid: archive.set_hold(rid, True, "meanwhile", "bob"))
    assert state["catalog_hold"] is True and [(s[0], s[1]) for s in state["store"]] == [(1, True), (2, True)], state


def test_extension_during_a_correction_commit_is_kept(any_api: Api) -> None:
    archive = _archive(any_api)
    until = (datetime.now(UTC) + timedelta(days=365 * 40)).replace(microsecond=0)
    state = correct_while(any_api, "extension at commit", lambda rid: archive.extend_retention(rid, until, "bob"))
    assert datetime.fromisoformat(state["catalog_retain"]) >= until, state
    assert all(s[2] == s[3] and s[3] >= until for s in state["store"]), state


def test_two_corrections_of_one_patient_commit_together(any_api: Api) -> None:
    """Each commit extends the patient's other record, which the other commit holds: PostgreSQL
    aborts one as a deadlock, and the commit is run again (the object is stored: a 503 here would
    make the client store the version twice)."""
    api = any_api
    archive = _archive(api)
    pid = "TN-2222222"
    ra = api.ingest(b"a1", medical(patient_id=pid, document_date="2010-01-01", title="A")).json()["record_id"]
    rb = api.ingest(b"b1", medical(patient_id=pid, document_date="2011-01-01", title="B")).json()["record_id"]
    barrier = threading.Barrier(2, timeout=5)
    armed = {"on": archive.engine.dialect.name == "postgresql"}  # SQLite serialises the commits whole

    def before(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if armed["on"] and "records.patient_index =" in statement and "records.record_id !=" in statement:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()  # both commits hold their own record's row here

    event.listen(archive.engine, "before_cursor_execute", before)
    out: dict[str, Any] = {}

    def correct(name: str, rid: str, day: str) -> None:
        r = api.ingest(name.encode() + b"2", medical(patient_id=pid, document_date=day, title=name), record_id=rid)
        out[name] = (r.status_code, r.text[:300])

    ts = [
        threading.Thread(target=correct, args=("A", ra, "2024-01-01")),
        threading.Thread(target=correct, args=("B", rb, "2025-01-01")),
    ]
    try:
        for t in ts:
            t.start()
        for t in ts:
            t.join(90)
    finally:
        armed["on"] = False
        event.remove(archive.engine, "before_cursor_execute", before)
    assert out["A"][0] == 201 and out["B"][0] == 201, out
    for rid in (ra, rb):
        versions = api.client.get(f"/records/{rid}/versions", headers=api.token("archivist")).json()
        assert len(versions) == 2, versions
    a, b = (_agree(api, rid) for rid in (ra, rb))
    assert a["catalog_retain"] == b["catalog_retain"], (a, b)  # both run from the patient's last document
    assert all(s[2] == s[3] for s in a["store"] + b["store"]), (a, b)


# ---------------------------------------------------------------- one object the store refuses for good


def test_one_missing_version_does_not_keep_the_hold_off_the_others(api: Api) -> None:
    archive = _archive(api)
    rid = two_versions(api, administrative(title="v1 vanishes"))
    v1, v2 = versions_of(api, rid)
    time.sleep(SHORT + 1.5)
    archive.store.delete_version(archive.store.records, v1.object_key, v1.s3_version_id)
    r = _hold_req(api, rid, True, "litigation")
    assert r.status_code == 500 and "recorded in the catalog" in r.json()["detail"], r.text
    assert _hold(archive, v2) is True  # the rest of the record is held all the same
    got = api.client.post("/admin/reconcile", headers=api.token("administrator")).json()
    assert got["store_sync_owed"] == 1, got  # v1 stays owed (and fixity reports it)
