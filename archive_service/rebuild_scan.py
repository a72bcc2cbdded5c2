"""Read back, from the store alone, everything the catalog knew: the input of `rebuild`.

Three sources, all in object-locked buckets:
  * record objects `records/<id>/vNNNNNN`: the header holds the wrapped data key and the version's
    metadata sealed with that key (AES-GCM, associated data = record id and version), so it is
    unreadable and unforgeable without the KEK; the store itself reports size, ETag, version id,
    COMPLIANCE retain-until and legal hold; key sidecars `keys/<id>/vNNNNNN.json` hold re-wraps;
  * destruction certificates `certificates/<request>/<time>.json` (destroyed records, executed
    disposition requests);
  * the hash-chained audit log (ingests, corrections, holds with their reasons, break-glass flags).
Only headers are read (a ranged GET), never content: `hdc archive fixity` re-reads content.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from minio.error import S3Error
from pydantic import ValidationError

from .crypto import ChunkCipher, Envelope, KeyError_, KeyProvider, binding, open_text
from .models import RecordMetadata
from .store import ObjectStore, StoreRefused, StoreUnavailable, _mapped

RECORD_KEY = re.compile(r"^records/([0-9a-f-]{36})/v(\d{6})$")
SIDECAR_KEY = re.compile(r"^keys/([0-9a-f-]{36})/v(\d{6})\.json$")
CERT_KEY = re.compile(r"^certificates/([^/]+)/[^/]+\.json$")
HOLD_PATH = re.compile(r"^/records/([0-9a-f-]{36})/hold(/release)?$")
CORRECTION_PATH = re.compile(r"^/records/([0-9a-f-]{36})/versions$")
APPROVE_PATH = re.compile(r"^/disposition/requests/([^/]+)/approve$")
HEAD_READ = 16 * 1024  # enough for any header (metadata is bounded by the model); re-read if not


@dataclass(frozen=True)
class Listed:
    """One object version as the store lists it."""

    key: str
    version_id: str
    size: int
    etag: str
    last_modified: datetime | None
    marker: bool
    latest: bool


@dataclass
class Found:
    """One record version read back from the store: what the catalog's versions row held."""

    record_id: str
    version: int
    key: str
    s3_version_id: str
    etag: str
    object_size: int
    last_modified: datetime | None
    header_len: int
    key_id: str
    wrapped_dek: bytes
    prefix: bytes
    chunk_size: int
    sealed: dict[str, Any]
    retain_until: datetime | None = None
    legal_hold: bool | None = None
    rewrap_version_id: str | None = None


@dataclass
class Skip:
    """An object the rebuild could not (or would not) use, and why."""

    key: str
    version_id: str
    reason: str


@dataclass
class AuditFacts:
    """What the audit trail says about records (entries in chain order, per writer, then by time)."""

    ingests: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # record → (ts, actor, where)
    corrections: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # record → [(ts, reason, actor)]
    holds: dict[str, list[tuple[str, str, str, str]]] = field(
        default_factory=dict
    )  # record → [(ts, action, reason, actor)]
    flags: list[dict[str, Any]] = field(default_factory=list)
    approved_requests: dict[str, str] = field(default_factory=dict)  # disposition request → ts
    entries: int = 0
    batches: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Certificate:
    key: str
    request_id: str
    doc: dict[str, Any]


def list_versions(store: ObjectStore, bucket: str, prefix: str) -> dict[str, list[Listed]]:
    """Every version (and delete marker) under `prefix`, grouped by key, oldest first."""
    out: dict[str, list[Listed]] = {}
    with _mapped(f"list versions {bucket}/{prefix}"):
        for o in store.client.list_objects(bucket, prefix=prefix, recursive=True, include_version=True):
            if not o.object_name:
                continue
            out.setdefault(o.object_name, []).append(
                Listed(
                    o.object_name,
                    o.version_id or "",
                    int(o.size or 0),
                    (o.etag or "").strip('"'),
                    o.last_modified,
                    bool(o.is_delete_marker),
                    bool(o.is_latest == "true" or o.is_latest is True),
                )
            )
    epoch = datetime.min.replace(tzinfo=UTC)
    for vers in out.values():
        vers.sort(key=lambda v: v.last_modified or epoch)
    return out


@dataclass(frozen=True)
class Head:
    """The start of one object version, and the object lock the store reported with it."""

    envelope: Envelope
    header_len: int
    retain_until: datetime | None  # None: the store did not say (asked separately)
    legal_hold: bool | None


def _get(store: ObjectStore, key: str, version_id: str, length: int) -> tuple[bytes, Any]:
    with _mapped(f"GET {key}"):
        resp = store.client.get_object(store.records, key, offset=0, length=length, version_id=version_id or None)
        try:
            return resp.read(), resp.headers
        finally:
            resp.close()
            resp.release_conn()


def read_header(store: ObjectStore, key: str, version_id: str) -> Head:
    """The envelope at the start of one object version: one ranged GET, content untouched.

    S3 (MinIO, SeaweedFS) reports the version's retain-until date and legal hold as response
    headers of that GET, which saves two requests per version.
    """
    data, headers = _get(store, key, version_id, HEAD_READ)
    try:
        env, hlen = Envelope.from_header(data)
    except ValueError as exc:
        if "truncated" not in str(exc):
            raise
        data, headers = _get(store, key, version_id, 0)
        env, hlen = Envelope.from_header(data)
    until_text = headers.get("x-amz-object-lock-retain-until-date")
    hold_text = headers.get("x-amz-object-lock-legal-hold")
    until = datetime.fromisoformat(until_text).astimezone(UTC) if until_text else None
    return Head(env, hlen, until, hold_text.upper() == "ON" if hold_text else None)


def sidecar_wrap(store: ObjectStore, listed: list[Listed]) -> tuple[str, bytes, str] | None:
    """(key id, wrapped data key, sidecar version id) of the newest re-wrap, None if unreadable."""
    live = [v for v in listed if not v.marker]
    if not live:
        return None
    newest = live[-1]
    doc = json.loads(store.read_all(store.records, newest.key, newest.version_id or None))
    return str(doc["key_id"]), base64.b64decode(doc["wrapped_dek"], validate=True), newest.version_id


def open_version(
    store: ObjectStore,
    keys: KeyProvider,
    record_id: str,
    version: int,
    listed: Listed,
    sidecar: list[Listed] | None,
) -> tuple[Found | None, str, list[str]]:
    """Read, unwrap and authenticate one object version; returns (found or None, skip reason, notes)."""
    notes: list[str] = []
    try:
        head = read_header(store, listed.key, listed.version_id)
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"not an archive object: {exc}", notes
    env, hlen = head.envelope, head.header_len
    if env.record_id != record_id or env.version != version:
        return None, f"header names record {env.record_id} v{env.version}, not this key", notes
    wraps: list[tuple[str, bytes, str | None, str]] = []
    if sidecar:
        try:
            got = sidecar_wrap(store, sidecar)
            if got is not None:
                wraps.append((got[0], got[1], got[2], "key sidecar"))
        except (ValueError, KeyError, TypeError) as exc:
            notes.append(f"{sidecar[-1].key}: unreadable key sidecar ({exc}); the header's wrap is tried")
    wraps.append((env.key_id, env.wrapped_dek, None, "header"))
    failures = []
    for key_id, wrapped, rewrap_vid, where in wraps:
        try:
            dek = keys.unwrap(key_id, wrapped)
            sealed = ChunkCipher(dek, env.prefix, binding(record_id, version)).open_meta(env.sealed_meta)
        except KeyError_ as exc:
            failures.append(f"{where}: {exc}")
            continue
        except InvalidTag:
            failures.append(f"{where}: sealed metadata fails authentication (tampered, or not sealed by this archive)")
            continue
        if failures:
            notes.append(f"{listed.key}: " + "; ".join(failures) + f"; opened with the {where}'s wrap")
        try:
            meta = dict(json.loads(sealed))
            RecordMetadata.model_validate({k: meta[k] for k in RecordMetadata.model_fields if k in meta})
            if not re.fullmatch(r"[0-9a-f]{64}", str(meta.get("sha256", ""))):
                raise ValueError("sha256 missing or malformed")
        except (ValueError, ValidationError) as exc:
            return None, f"sealed metadata is not valid record metadata: {str(exc).splitlines()[0]}", notes
        return (
            Found(
                record_id,
                version,
                listed.key,
                listed.version_id,
                listed.etag,
                listed.size,
                listed.last_modified,
                hlen,
                key_id,
                wrapped,
                env.prefix,
                env.chunk_size,
                meta,
                retain_until=head.retain_until,
                legal_hold=head.legal_hold,
                rewrap_version_id=rewrap_vid,
            ),
            "",
            notes,
        )
    return None, "; ".join(failures), notes


@dataclass
class StoreScan:
    versions: dict[str, dict[int, Found]] = field(default_factory=dict)  # record → version → found
    skipped: list[Skip] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    objects: int = 0


def scan_records(
    store: ObjectStore,
    keys: KeyProvider,
    workers: int,
    progress: Callable[[int], None] | None = None,
    on_record: Callable[[str, dict[int, Found]], None] | None = None,
) -> StoreScan:
    """Every record version in the store, authenticated; several object versions under one key are
    reported (the service writes each key once) and the oldest authentic one is used.

    With `on_record`, each record's versions are handed over as soon as they are all read (keys
    are listed in order, so a record's versions are consecutive) instead of being kept in `versions`.
    """
    scan = StoreScan()
    listing = list_versions(store, store.records, "records/")
    sidecars = list_versions(store, store.records, "keys/")
    jobs: list[tuple[str, int, list[Listed]]] = []
    for key, vers in sorted(listing.items()):
        m = RECORD_KEY.match(key)
        if not m:
            scan.skipped.extend(Skip(key, v.version_id, "not a record object name") for v in vers if not v.marker)
            continue
        if any(v.marker for v in vers):
            scan.notes.append(f"{key}: a delete marker hides it (someone deleted it behind the service); versions kept")
        jobs.append((m.group(1), int(m.group(2)), [v for v in vers if not v.marker]))
    del listing

    def work(job: tuple[str, int, list[Listed]]) -> tuple[str, int, Found | None, list[Skip], list[str]]:
        record_id, version, vers = job
        side = sidecars.get(f"keys/{record_id}/v{version:06d}.json")
        chosen: Found | None = None
        skips: list[Skip] = []
        notes: list[str] = []
        for listed in vers:
            found, reason, more = open_version(store, keys, record_id, version, listed, side)
            notes.extend(more)
            if found is None:
                skips.append(Skip(listed.key, listed.version_id, reason))
            elif chosen is None:
                chosen = found
            else:
                skips.append(Skip(listed.key, listed.version_id, "a second object version under this key (ignored)"))
        if chosen is not None:
            if chosen.retain_until is None:
                chosen.retain_until = _retention(store, chosen.key, chosen.s3_version_id)
            if chosen.legal_hold is None:
                chosen.legal_hold = _legal_hold(store, chosen.key, chosen.s3_version_id)
        return record_id, version, chosen, skips, notes

    def guarded(job: tuple[str, int, list[Listed]]) -> tuple[str, int, Found | None, list[Skip], list[str]]:
        try:
            return work(job)
        except (S3Error, StoreRefused) as exc:  # one object the store will not serve: reported, the rest goes on
            key = f"records/{job[0]}/v{job[1]:06d}"
            detail = f"store error {exc.code}: {exc.message}" if isinstance(exc, S3Error) else str(exc)
            return job[0], job[1], None, [Skip(key, "", detail)], []

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rebuild-scan") as pool:
        scan.objects = sum(len(vers) for _, _, vers in jobs)
        group: tuple[str, dict[int, Found]] = ("", {})
        for n, (record_id, version, found, skips, notes) in enumerate(pool.map(guarded, jobs), 1):
            scan.skipped.extend(skips)
            scan.notes.extend(notes)
            if on_record is not None and record_id != group[0]:
                if group[1]:
                    on_record(*group)
                group = (record_id, {})
            if found is not None:
                if on_record is not None:
                    group[1][version] = found
                else:
                    scan.versions.setdefault(record_id, {})[version] = found
            if progress is not None:
                progress(n)
        if on_record is not None and group[1]:
            on_record(*group)
    return scan


def _retention(store: ObjectStore, key: str, version_id: str) -> datetime | None:
    try:
        return store.retention(store.records, key, version_id or None)
    except S3Error as exc:
        if exc.code in ("NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"):
            return None
        raise


def _legal_hold(store: ObjectStore, key: str, version_id: str) -> bool:
    """S3 answers NoSuchObjectLegalHold for a version that never had one."""
    try:
        return store.legal_hold(store.records, key, version_id or None)
    except S3Error as exc:
        if exc.code in ("NoSuchObjectLegalHold", "NoSuchObjectLockConfiguration"):
            return False
        raise


def read_certificates(store: ObjectStore) -> tuple[list[Certificate], list[Skip]]:
    """Destruction certificates, oldest version of each key (they are written once)."""
    certs: list[Certificate] = []
    skipped: list[Skip] = []
    for key, vers in sorted(list_versions(store, store.records, "certificates/").items()):
        live = [v for v in vers if not v.marker]
        m = CERT_KEY.match(key)
        if not m or not live:
            continue
        for extra in live[1:]:
            skipped.append(Skip(key, extra.version_id, "a second version of a certificate (ignored)"))
        try:
            doc = dict(json.loads(store.read_all(store.records, key, live[0].version_id or None)))
            if doc.get("certificate") != "destruction" or doc.get("request_id") != m.group(1):
                raise ValueError("not a destruction certificate of this request")
            for r in doc["records"]:
                str(r["record_id"]), int(r["versions"][0]["version"]) if r["versions"] else 0
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            skipped.append(Skip(key, live[0].version_id, f"unreadable certificate: {exc}"))
            continue
        certs.append(Certificate(key, m.group(1), doc))
    return certs, skipped


def iter_audit(store: ObjectStore) -> Iterator[tuple[str, dict[str, Any]]]:
    """(batch key, entry) for every entry of every writer's chain, in chain order per writer."""
    for key in sorted(k for k in store.list_keys(store.audit, "chain/") if k.endswith(".jsonl")):
        for line in store.read_all(store.audit, key).splitlines():
            try:
                yield key, dict(json.loads(line))
            except ValueError:
                yield key, {}


_KEEP = (
    "seq",
    "ts",
    "actor",
    "facility",
    "record_id",
    "path",
    "status",
    "method",
    "reason",
    "justification",
    "sealed",
    "flagged",
)


def _relevant(path: str) -> bool:
    """Ingests, corrections, holds and approvals (not searches or reads, far more numerous)."""
    return (
        path == "/records"
        or CORRECTION_PATH.match(path) is not None
        or HOLD_PATH.match(path) is not None
        or APPROVE_PATH.match(path) is not None
    )


def _private(e: dict[str, Any], text_key: bytes, where: str, problems: list[str]) -> dict[str, str]:
    """An entry's sealed free text (justification, correction or hold reason); older
    entries kept it in clear."""
    clear = {"justification": str(e["justification"])} if e.get("justification") else {}
    if not e.get("sealed"):
        return clear
    try:
        return {**clear, **open_text(text_key, str(e["sealed"]))}
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return clear


def read_audit(store: ObjectStore, text_key: bytes) -> AuditFacts:
    """Collect, from the audit trail, the facts the catalog needs and the store does not hold.

    `text_key` opens the entries' sealed free text (crypto.audit_text_key of the keyring).
    """
    facts = AuditFacts()
    entries: list[tuple[str, str, dict[str, Any]]] = []
    last_key = ""
    try:
        for key, e in iter_audit(store):
            if key != last_key:
                facts.batches += 1
                last_key = key
            if not e:
                facts.problems.append(f"{key}: a line is not JSON (run `hdc archive audit verify`)")
                continue
            facts.entries += 1
            succeeded = isinstance(e.get("status"), int) and e["status"] < 400
            if succeeded and (e.get("flagged") or (e.get("method") == "POST" and _relevant(str(e.get("path", ""))))):
                entries.append((str(e.get("ts", "")), key, {k: e.get(k) for k in _KEEP}))  # slim: millions of them
    except (StoreUnavailable, StoreRefused) as exc:
        facts.problems.append(f"audit trail unreadable: {exc}")
        return facts
    entries.sort(key=lambda t: t[0])  # chains of several writers, merged by time
    for ts, key, e in entries:
        path, actor, rid = str(e.get("path", "")), str(e.get("actor") or ""), e.get("record_id")
        where = f"{key} entry {e.get('seq')}"
        private = _private(e, text_key, where, facts.problems) if e.get("sealed") or e.get("flagged") else {}
        if e.get("flagged"):
            facts.flags.append({**e, "justification": private.get("justification", "")})
        if e.get("method") != "POST":
            continue
        if path == "/records" and e.get("status") == 201 and rid:
            facts.ingests.setdefault(str(rid), (ts, actor, where))
        elif (m := CORRECTION_PATH.match(path)) and e.get("status") == 201:
            reason = private.get("correction_reason") if e.get("sealed") else str(e.get("reason") or "")
            facts.corrections.setdefault(m.group(1), []).append((ts, reason or "", actor))
        elif (m := HOLD_PATH.match(path)) and e.get("status") in (200, 202):  # 202: store finished it later
            action = "release" if m.group(2) else "place"
            reason = private.get("hold_reason") if e.get("sealed") else str(e.get("reason") or "")
            facts.holds.setdefault(m.group(1), []).append((ts, action, reason or "", actor))
        elif m := APPROVE_PATH.match(path):
            facts.approved_requests[m.group(1)] = ts
    return facts


def audit_time(ts: str) -> datetime:
    """An audit timestamp as the catalog keeps times (UTC, whole seconds)."""
    return datetime.fromisoformat(ts).astimezone(UTC).replace(microsecond=0)
