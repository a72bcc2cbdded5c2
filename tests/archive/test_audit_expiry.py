"""Expiring the oldest audit batches: only past their lock, behind an anchor the verifier checks."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archive_service.audit import ANCHORS, PREFIX, anchor_key, local_heads, verify_chain
from archive_service.audit_expiry import expire_audit
from archive_service.cli import app as cli_app
from archive_service.devstore import DevStore
from archive_service.service import Archive

from .conftest import make_settings

RETENTION_S = 3


@pytest.fixture
def archive(devstore: DevStore, tmp_path: Path) -> Iterator[Archive]:
    settings = make_settings(devstore, tmp_path / "state", audit_retention=f"{RETENTION_S}s", audit_flush_seconds=3600)
    a = Archive.open(settings)
    try:
        yield a
    finally:
        a.close()


def batches(archive: Archive, rounds: int) -> None:
    """`rounds` batches of two entries each in the service's chain."""
    for i in range(rounds):
        archive.audit.append(actor="alice", method="GET", path=f"/records/r{i}", status=200, outcome="allowed")
        archive.audit.append(actor="alice", method="GET", path=f"/records/r{i}b", status=200, outcome="allowed")
        archive.audit.flush()


def chain_keys(archive: Archive) -> list[str]:
    return sorted(archive.store.list_keys(archive.store.audit, f"{PREFIX}{archive.audit.writer}/"))


def test_expiry_waits_for_the_lock_then_anchors_and_keeps_the_chain_verifiable(archive: Archive) -> None:
    store, writer = archive.store, archive.audit.writer
    batches(archive, 3)
    keys = chain_keys(archive)
    assert len(keys) == 3

    locked = expire_audit(store, archive.settings)
    assert locked.removed == 0 and "locked until" in locked.writers[0].kept_because
    assert chain_keys(archive) == keys

    time.sleep(RETENTION_S + 1)
    dry = expire_audit(store, archive.settings, dry_run=True)
    assert dry.removed == 2 and chain_keys(archive) == keys  # a dry run changes nothing

    done = expire_audit(store, archive.settings)
    assert not done.problems
    assert [w.batches for w in done.writers] == [keys[:2]] and done.writers[0].through_seq == 4
    assert chain_keys(archive) == keys[2:]  # never the last batch: it holds the head
    assert store.list_keys(store.audit, ANCHORS) == [anchor_key(writer, 4)]
    anchor = json.loads(store.read_all(store.audit, anchor_key(writer, 4)))
    assert anchor["removed"] == keys[:2] and anchor["through_seq"] == 4
    assert store.retention(store.audit, anchor_key(writer, 4), None) is not None  # the anchor is locked

    report = verify_chain(store, None, local_heads(archive.settings.state_dir))
    assert report.ok, report.problems
    assert report.anchors == 1 and report.entries == 2
    batches(archive, 1)  # the chain goes on after an expiry
    assert verify_chain(store).ok


def test_verify_refuses_an_anchor_that_does_not_fit(archive: Archive) -> None:
    store, writer = archive.store, archive.audit.writer
    batches(archive, 3)
    time.sleep(RETENTION_S + 1)
    expire_audit(store, archive.settings)
    assert verify_chain(store).ok

    def forge(seq: int, digest: str) -> None:
        body = json.dumps({"writer": writer, "through_seq": seq, "through_hash": digest}).encode()
        store.client.put_object(store.audit, anchor_key(writer, seq), io.BytesIO(body), len(body))

    # an anchor past the end of the chain would hide every batch: refused
    forge(1_000, "0" * 64)
    problems = verify_chain(store).problems
    assert any("claims entries through 1000" in p for p in problems), problems
    # an anchor on an existing entry with another hash: refused
    store.client.remove_object(store.audit, anchor_key(writer, 1_000))  # not locked: a plain PUT
    forge(5, "f" * 64)
    problems = verify_chain(store).problems
    assert any("does not match that entry" in p for p in problems), problems


def test_cli_expire_reports_and_records_itself(
    archive: Archive, monkeypatch: pytest.MonkeyPatch, devstore: DevStore
) -> None:
    batches(archive, 2)
    settings = archive.settings
    for k, v in {
        **devstore.env(),
        "HDC_ARCHIVE_STATE_DIR": str(settings.state_dir),
        "HDC_ARCHIVE_BUCKET_RECORDS": settings.bucket_records,
        "HDC_ARCHIVE_BUCKET_AUDIT": settings.bucket_audit,
        "HDC_ARCHIVE_AUDIT_RETENTION": f"{RETENTION_S}s",
        "HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS": "1",
        "HDC_ARCHIVE_AUDIT_FSYNC": "false",
    }.items():
        monkeypatch.setenv(k, v)
    runner = CliRunner()
    res = runner.invoke(cli_app, ["audit", "expire"])
    assert res.exit_code == 0, res.output
    assert "0 batch(es) removed" in res.output and "locked until" in res.output
    time.sleep(RETENTION_S + 1)
    res = runner.invoke(cli_app, ["audit", "expire", "--dry-run"])
    assert res.exit_code == 0 and "would remove 1 batch(es) through entry 2" in res.output, res.output
    res = runner.invoke(cli_app, ["audit", "expire"])
    assert res.exit_code == 0 and "removed 1 batch(es) through entry 2" in res.output, res.output
    res = runner.invoke(cli_app, ["audit", "verify"])
    assert res.exit_code == 0 and "chain intact" in res.output, res.output
