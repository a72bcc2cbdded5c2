"""Expire the oldest audit batches once their lock has passed, behind an anchor the verifier trusts.

The audit trail is kept for `HDC_ARCHIVE_AUDIT_RETENTION` (each batch locked until then) and is
then deleted by a deliberate operator command, never by a lifecycle rule. Each writer's chain
starts at entry 1, so deleting its first batches would look like tampering to `audit verify`.
Before anything is deleted, the run:

1. takes, per writer, only the leading batches that are all past their retain-until date,
   each with exactly one version (never the writer's last batch: it holds the chain's head);
2. re-verifies those batches (hashes and links, from the previous anchor or from entry 1);
3. writes a locked **anchor** `anchors/<writer>/<through seq>.json` with the sequence number
   and hash of the last entry removed, and the batch keys it replaces;
4. deletes the batches' versions.

`verify_chain` starts each writer's chain from its newest anchor. A batch missing after an
anchor is still reported as missing; an anchor that does not fit the next remaining entry
(sequence or hash) is reported as broken. A run interrupted between 3 and 4 is finished by the
next run (the anchor's batches are deleted again).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .audit import GENESIS, PREFIX, anchor_key, batch_range, entry_hash, newest_anchors
from .settings import ArchiveSettings, parse_duration
from .store import ObjectStore


@dataclass
class WriterExpiry:
    writer: str
    batches: list[str] = field(default_factory=list)
    through_seq: int = 0
    kept_because: str = ""


@dataclass
class ExpiryReport:
    writers: list[WriterExpiry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return sum(len(w.batches) for w in self.writers)


def _expirable(
    store: ObjectStore, bucket: str, keys: list[str], versions: dict[str, list[tuple[str, bool]]], now: datetime
) -> tuple[list[str], str]:
    """The leading batches all past their lock (never the last one), and why the next one stays."""
    out: list[str] = []
    for key in keys[:-1]:
        live = [vid for vid, marker in versions[key] if not marker]
        if len(live) != 1 or len(versions[key]) != 1:
            return out, f"{key} has {len(versions[key])} versions: run `hdc archive audit verify`"
        until = store.retention(bucket, key, live[0])
        if until is not None and until > now:
            return out, f"{key} is locked until {until.isoformat()}"
        out.append(key)
    return out, f"{keys[-1]} holds the chain's head" if keys else "no batches"


def _verified_through(
    store: ObjectStore, bucket: str, keys: list[str], start: tuple[int, str]
) -> tuple[int, str] | str:
    """(last seq, last hash) after checking `keys` chain on from `start`; a problem string otherwise."""
    prev_seq, prev_hash = start
    for key in keys:
        for lineno, line in enumerate(store.read_all(bucket, key).splitlines(), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                return f"{key}:{lineno}: not JSON"
            if (
                entry.get("seq") != prev_seq + 1
                or entry.get("prev") != prev_hash
                or entry.get("hash") != entry_hash(entry)
            ):
                return f"{key}:{lineno}: does not verify (run `hdc archive audit verify`); nothing removed"
            prev_seq, prev_hash = int(entry["seq"]), str(entry["hash"])
    return prev_seq, prev_hash


def expire_audit(
    store: ObjectStore, settings: ArchiveSettings, dry_run: bool = False, now: datetime | None = None
) -> ExpiryReport:
    """Remove, per writer, the leading audit batches whose lock has passed (see the module doc)."""
    now = now or datetime.now(UTC)
    bucket = store.audit
    report = ExpiryReport()
    versions: dict[str, dict[str, list[tuple[str, bool]]]] = {}
    for key, vid, _latest, marker in store.list_versions(bucket, PREFIX):
        if batch_range(key) is None:
            continue
        writer = key[len(PREFIX) :].rpartition("/")[0]
        versions.setdefault(writer, {}).setdefault(key, []).append((vid, marker))
    anchors = newest_anchors(store, bucket)
    for writer in sorted(versions):
        anchor = anchors.get(writer)
        if anchor and anchor.get("broken"):
            report.problems.append(f"{writer}: anchor {anchor['key']} is unreadable; nothing removed")
            continue
        start = (anchor["through_seq"], anchor["through_hash"]) if anchor else (0, GENESIS)
        keys = sorted(versions[writer], key=lambda k: batch_range(k) or (0, 0))
        # Batches an interrupted run anchored but did not delete: finish the job.
        leftovers = [k for k in keys if (batch_range(k) or (0, 0))[1] <= start[0]]
        keys = [k for k in keys if k not in leftovers]
        todo, why = _expirable(store, bucket, keys, versions[writer], now)
        item = WriterExpiry(writer, kept_because=why)
        report.writers.append(item)
        if todo:
            through = _verified_through(store, bucket, todo, start)
            if isinstance(through, str):
                report.problems.append(f"{writer}: {through}")
                continue
            item.batches, item.through_seq = todo, through[0]
            if not dry_run:
                until = now + parse_duration(settings.audit_retention)
                body = {
                    "writer": writer,
                    "through_seq": through[0],
                    "through_hash": through[1],
                    "removed": todo,
                    "previous_anchor": anchor["key"] if anchor else None,
                    "created_at": now.isoformat(),
                }
                store.put(
                    bucket,
                    anchor_key(writer, through[0]),
                    json.dumps(body, indent=1).encode(),
                    until,
                    "application/json",
                )
        if dry_run:
            continue
        for key in leftovers + item.batches:
            for vid, _marker in versions[writer][key]:
                store.delete_version(bucket, key, vid)
    return report
