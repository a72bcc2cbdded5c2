"""Append-only, hash-chained audit log: local write-ahead file, batches in an object-locked bucket.

Each entry carries the hash of the previous one; an entry is on disk (the write-ahead) before the
response leaves, and a background flusher moves batches to `chain/<first>-<last>.jsonl` objects
under COMPLIANCE retention. `verify_chain` re-reads the objects and reports altered, missing,
reordered or overwritten entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .periodic import Periodic
from .settings import ArchiveSettings, parse_duration
from .store import ObjectStore, StoreRefused, StoreUnavailable

log = logging.getLogger("hdc.archive.audit")
GENESIS = "0" * 64
PREFIX = "chain/"


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def batch_key(writer: str, first: int, last: int) -> str:
    return f"{PREFIX}{writer}/{first:012d}-{last:012d}.jsonl"


ANCHORS = "anchors/"  # where audit_expiry leaves the point each chain now starts from


def anchor_key(writer: str, through_seq: int) -> str:
    return f"{ANCHORS}{writer}/{through_seq:012d}.json"


def batch_range(key: str) -> tuple[int, int] | None:
    """(first, last) sequence numbers from `chain/<writer>/<first>-<last>.jsonl`."""
    name = key.rpartition("/")[2]
    if not name.endswith(".jsonl"):
        return None
    try:
        first, last = (int(x) for x in name[: -len(".jsonl")].split("-"))
    except ValueError:
        return None
    return first, last


def newest_anchors(store: ObjectStore, bucket: str) -> dict[str, dict[str, Any]]:
    """Each writer's newest anchor (the one with the highest sequence number)."""
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(store.list_keys(bucket, ANCHORS)):
        writer = key[len(ANCHORS) :].rpartition("/")[0]
        try:
            anchor = dict(json.loads(store.read_all(bucket, key)))
            anchor["through_seq"] = int(anchor["through_seq"])
            anchor["through_hash"] = str(anchor["through_hash"])
        except (ValueError, KeyError, TypeError):
            out[writer] = {"key": key, "broken": True, "through_seq": 0, "through_hash": GENESIS}
            continue
        if writer not in out or anchor["through_seq"] >= out[writer]["through_seq"]:
            out[writer] = {**anchor, "key": key}
    return out


class AuditLog:
    """One writer's audit chain (a service instance, or the operator CLI).

    Each writer has its own chain (`chain/<writer>/…`) so that several service instances and the
    CLI never interleave batches; an exclusive lock on the writer's directory keeps two processes
    from sharing one chain. Thread-safe; `append` never touches the network.
    """

    def __init__(self, settings: ArchiveSettings, store: ObjectStore, writer: str) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.prefix = f"{PREFIX}{writer}/"
        self.dir = settings.state_dir / "audit" / writer
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lockfile = (self.dir / "lock").open("w")
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX)  # wait for the other process using this chain
        self.wal_path = self.dir / "wal.jsonl"
        self.state_path = self.dir / "state.json"
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flusher = Periodic("audit-flusher", settings.audit_flush_seconds, self._flush_round)
        state = self._read_state()
        self.flushed_seq: int = state.get("flushed_seq", 0)
        self.flushed_hash: str = state.get("flushed_hash", GENESIS)
        self._pending: list[dict[str, Any]] = self._read_wal()
        self._pending = [e for e in self._pending if e["seq"] > self.flushed_seq]
        if self._pending:
            self.head_seq, self.head_hash = self._pending[-1]["seq"], self._pending[-1]["hash"]
        elif self.flushed_seq:
            self.head_seq, self.head_hash = self.flushed_seq, self.flushed_hash
        else:
            self.head_seq, self.head_hash = self._head_from_store()
            self.flushed_seq, self.flushed_hash = self.head_seq, self.head_hash
        self._wal = self.wal_path.open("a", encoding="utf-8")
        # Pending entries at start may already be in the store (killed between a batch PUT and
        # the state write); so may a batch whose PUT failed after the store took it.
        self._recheck = bool(self._pending)

    # --- local state
    def _read_state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_path.read_text()))
        except FileNotFoundError:
            return {}

    def _write_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"flushed_seq": self.flushed_seq, "flushed_hash": self.flushed_hash}))
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)

    def _read_wal(self) -> list[dict[str, Any]]:
        """Entries of the write-ahead; a torn last line (killed mid-write) is cut off."""
        if not self.wal_path.exists():
            return []
        raw = self.wal_path.read_bytes()
        entries: list[dict[str, Any]] = []
        good = 0
        for line in raw.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                entries.append(json.loads(line))
            except ValueError:
                break
            good += len(line)
        if good != len(raw):
            log.warning("audit write-ahead: cutting a torn last entry (%d bytes)", len(raw) - good)
            with self.wal_path.open("r+b") as fh:
                fh.truncate(good)
        return entries

    def _head_from_store(self) -> tuple[int, str]:
        """Continue the chain from the last batch in the store (state dir lost or new instance)."""
        try:
            keys = sorted(k for k in self.store.list_keys(self.store.audit, self.prefix) if k.endswith(".jsonl"))
            if not keys:
                return 0, GENESIS
            lines = self.store.read_all(self.store.audit, keys[-1]).splitlines()
            last = json.loads(lines[-1])
            return int(last["seq"]), str(last["hash"])
        except (StoreUnavailable, StoreRefused, ValueError, KeyError) as exc:
            raise RuntimeError(f"cannot find the audit chain head in the store: {exc}") from exc

    # --- writing
    def append(self, **fields: Any) -> dict[str, Any]:
        """Chain and persist one entry (write-ahead, flushed to the OS, fsync'd if configured)."""
        with self._lock:
            entry: dict[str, Any] = {
                "seq": self.head_seq + 1,
                "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
                "prev": self.head_hash,
                **fields,
            }
            entry["hash"] = entry_hash(entry)
            self._wal.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
            self._wal.flush()
            self.head_seq, self.head_hash = entry["seq"], entry["hash"]
            self._pending.append(entry)
            fd = self._wal.fileno()
        if self.settings.audit_fsync:
            # Outside the lock: concurrent requests share one disk flush (group commit).
            with contextlib.suppress(OSError):  # compacted meanwhile: the rewrite was fsync'd
                os.fsync(fd)
        return entry

    def flush(self) -> int:
        """Write pending entries to the store in batches; returns how many were written."""
        written = 0
        with self._flush_lock:
            if self._recheck:
                self._settle_stored()
                self._recheck = False
            while True:
                with self._lock:
                    batch = self._pending[: self.settings.audit_batch_max]
                if not batch:
                    return written
                body = "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in batch).encode()
                until = datetime.now(UTC) + parse_duration(self.settings.audit_retention)
                try:
                    self.store.put(
                        self.store.audit,
                        batch_key(self.writer, batch[0]["seq"], batch[-1]["seq"]),
                        body,
                        until,
                        "application/x-ndjson",
                    )
                except BaseException:
                    self._recheck = True  # the store may have taken it before the answer was lost
                    raise
                with self._lock:
                    self._mark_flushed(len(batch))
                written += len(batch)

    def _mark_flushed(self, n: int) -> None:
        """The first `n` pending entries are in the store (called under the lock)."""
        last = self._pending[n - 1]
        self.flushed_seq, self.flushed_hash = last["seq"], last["hash"]
        self._write_state()
        self._pending = self._pending[n:]
        self._compact()

    def _settle_stored(self) -> None:
        """Take as flushed the pending entries a stored batch already holds, instead of writing
        them again under an overlapping name, which `verify_chain` would rightly report."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                first = self._pending[0]["seq"]
            keys = sorted(self.store.list_keys(self.store.audit, f"{self.prefix}{first:012d}-"))
            if not keys:
                return
            try:
                stored = [
                    json.loads(line)["hash"] for line in self.store.read_all(self.store.audit, keys[-1]).splitlines()
                ]
            except (ValueError, KeyError, TypeError):
                return  # not a batch of ours: write as usual, and verify will report it
            with self._lock:
                if not stored or [e["hash"] for e in self._pending[: len(stored)]] != stored:
                    return
                log.warning("audit: %s was already in the store (an answer lost); not written again", keys[-1])
                self._mark_flushed(len(stored))

    def _compact(self) -> None:
        """Rewrite the write-ahead with the entries not yet in the store (called under the lock)."""
        tmp = self.wal_path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for e in self._pending:
                fh.write(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._wal.close()
        os.replace(tmp, self.wal_path)
        self._wal = self.wal_path.open("a", encoding="utf-8")

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending)

    # --- background flusher
    def start(self) -> None:
        self._flusher.start()

    def _flush_round(self, _stopping: threading.Event) -> None:
        try:
            self.flush()
        except (StoreUnavailable, StoreRefused) as exc:
            log.warning("audit flush postponed: %s (%d entries kept in the write-ahead)", exc, self.pending_count())

    def close(self) -> None:
        self._flusher.close(timeout=10)
        with contextlib.suppress(StoreUnavailable, StoreRefused):
            self.flush()
        self._wal.close()
        fcntl.flock(self._lockfile, fcntl.LOCK_UN)
        self._lockfile.close()


@dataclass
class VerifyReport:
    entries: int = 0
    objects: int = 0
    problems: list[str] = field(default_factory=list)
    last_seq: int = 0
    last_hash: str = GENESIS
    anchors: int = 0  # chains that start from an expiry anchor instead of entry 1

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(
    store: ObjectStore, bucket: str | None = None, expect_heads: dict[str, tuple[int, str]] | None = None
) -> VerifyReport:
    """Re-read every writer's batches from the store and check each chain end to end.

    Overwritten batches (more than one version of a key), deleted ones (delete markers or a gap in
    sequence numbers), altered entries (hash mismatch), broken links and reordering are reported.
    `expect_heads` (last flushed seq/hash per writer, known locally) also catches a truncated tail.
    A chain whose oldest batches were expired (audit_expiry) starts from its newest anchor.
    """
    bucket = bucket or store.audit
    report = VerifyReport()
    anchors = newest_anchors(store, bucket)
    by_writer: dict[str, dict[str, list[tuple[str, bool, bool]]]] = {}
    for key, vid, latest, marker in store.list_versions(bucket, PREFIX):
        writer = key[len(PREFIX) :].rpartition("/")[0] or "?"
        by_writer.setdefault(writer, {}).setdefault(key, []).append((vid, latest, marker))
    for writer in set(expect_heads or {}) - set(by_writer):
        seq = (expect_heads or {})[writer][0]
        if seq > 0:
            by_writer[writer] = {}
    for writer in sorted(by_writer):
        anchor = anchors.get(writer)
        start: tuple[int, str] | None = None
        if anchor is not None:
            if anchor.get("broken"):
                report.problems.append(f"{anchor['key']}: anchor unreadable; the chain is checked from entry 1")
            else:
                start = (anchor["through_seq"], anchor["through_hash"])
                report.anchors += 1
        end = _verify_writer(store, bucket, writer, by_writer[writer], (expect_heads or {}).get(writer), report, start)
        if start is not None and end < start[0]:
            report.problems.append(
                f"{writer}: the expiry anchor claims entries through {start[0]}, the chain ends before it"
            )
    return report


def _verify_writer(
    store: ObjectStore,
    bucket: str,
    writer: str,
    versions: dict[str, list[tuple[str, bool, bool]]],
    expect_head: tuple[int, str] | None,
    report: VerifyReport,
    anchor: tuple[int, str] | None = None,
) -> int:
    """One writer's chain; returns the last sequence number it reached. With an expiry `anchor` (seq, hash), the chain may begin right after it
    (the batches before were removed); batches still present before it are checked as usual, and
    the entry at the anchor must carry the anchor's hash."""
    keys = sorted(versions)
    prev_seq, prev_hash = 0, GENESIS
    head = batch_range(keys[0]) if keys else None
    if anchor is not None and (head is None or head[0] > 1):
        prev_seq, prev_hash = anchor
    for key in keys:
        vers = versions[key]
        if any(marker for _, _, marker in vers):
            report.problems.append(f"{key}: deleted (a delete marker hides the batch)")
        live = [v for v in vers if not v[2]]
        if len(live) > 1:
            report.problems.append(f"{key}: overwritten — {len(live)} versions of an append-only batch")
        name = key.rpartition("/")[2][: -len(".jsonl")]
        try:
            first, last = (int(x) for x in name.split("-"))
        except ValueError:
            report.problems.append(f"{key}: not a batch name (chain/WRITER/FIRST-LAST.jsonl)")
            continue
        if first != prev_seq + 1:
            if first > prev_seq + 1:
                report.problems.append(f"{writer}: entries {prev_seq + 1}..{first - 1} missing (no batch holds them)")
            else:
                report.problems.append(
                    f"{key}: overlaps or reorders earlier entries (starts at {first}, expected {prev_seq + 1})"
                )
        report.objects += 1
        try:
            body = store.read_all(bucket, key)
        except (StoreRefused, StoreUnavailable) as exc:
            report.problems.append(f"{key}: unreadable: {exc}")
            continue
        expected = first
        for lineno, line in enumerate(body.splitlines(), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                report.problems.append(f"{key}:{lineno}: not JSON")
                continue
            report.entries += 1
            seq = entry.get("seq")
            if seq != expected:
                report.problems.append(
                    f"{key}:{lineno}: entry seq {seq} where {expected} was expected (missing or reordered)"
                )
            if entry.get("hash") != entry_hash(entry):
                report.problems.append(f"{key}:{lineno}: entry {seq} altered (hash does not match its content)")
            if entry.get("prev") != prev_hash:
                report.problems.append(f"{key}:{lineno}: entry {seq} does not chain to the previous entry")
            prev_hash = str(entry.get("hash"))
            prev_seq = int(seq) if isinstance(seq, int) else expected
            expected = prev_seq + 1
            if anchor is not None and prev_seq == anchor[0] and prev_hash != anchor[1]:
                report.problems.append(f"{writer}: the expiry anchor at entry {anchor[0]} does not match that entry")
        if prev_seq != last:
            report.problems.append(f"{key}: ends at entry {prev_seq}, its name says {last}")
    if expect_head is not None and expect_head[0] > 0:
        seq, h = expect_head
        if prev_seq < seq:
            report.problems.append(
                f"{writer}: entries {prev_seq + 1}..{seq} missing at the end of the chain (last flushed was {seq})"
            )
        elif prev_seq == seq and prev_hash != h:
            report.problems.append(
                f"{writer}: entry {seq} hash differs from the one recorded locally when it was flushed"
            )
    return prev_seq


def local_heads(state_dir: Path) -> dict[str, tuple[int, str]]:
    """Last flushed (seq, hash) of every writer whose state lives in this state dir."""
    heads = {}
    for path in (state_dir / "audit").glob("*/state.json"):
        try:
            data = json.loads(path.read_text())
            heads[path.parent.name] = (int(data["flushed_seq"]), str(data["flushed_hash"]))
        except (OSError, ValueError, KeyError):
            continue
    return heads
