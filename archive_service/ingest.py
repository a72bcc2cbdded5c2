"""Streaming ingest and retrieval of record content.

Crash protocol (each step durable before the next):
  1. catalog: insert the version as `pending` (owner = this instance, object key, envelope);
  2. store: stream encrypted parts into a multipart upload (or one PUT for a small record) —
     nothing is an object yet, so nothing is locked;
  3. verify the client's SHA-256 of the plaintext; on mismatch abort the upload and drop the row;
  4. store: complete the upload (the object appears, locked until its retain-until date);
  5. catalog: mark the version `committed`.
A crash before 4 leaves a pending row and an incomplete upload: the reconciler aborts both. A
crash between 4 and 5 leaves a pending row whose object exists: the digest was already verified,
so the reconciler commits it. Catalog rows never point at missing objects, and every object has
a row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime
from typing import Any, NamedTuple

import google_crc32c
from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from . import catalogdb as db
from . import store_sync
from .crypto import TAG, ChunkCipher, Envelope, chunk_count, cipher_for, new_envelope, patient_index
from .models import RecordClass, RecordMetadata
from .service import Archive, BadInput, Conflict, NotFound, TooLarge, drop_pending, object_key
from .store import StoreUnavailable


def plaintext_size(object_size: int, header_len: int, chunk_size: int) -> int:
    body = object_size - header_len
    chunks = max(1, -(-body // (chunk_size + TAG)))
    return body - TAG * chunks


class Sealed(NamedTuple):
    """One part as it goes to the store: the header (part 1) and each chunk's ciphertext, never
    copied into one buffer (the store client sends the pieces in turn)."""

    pieces: list[bytes]
    crc32c: int  # of the whole part, computed while sealing: the store checks it on a PutObject (s3put)


def seal_part(
    cipher: ChunkCipher,
    data: bytes | memoryview,
    first_counter: int,
    chunk_size: int,
    last: bool,
    head: bytes = b"",
) -> Sealed:
    """Encrypt one part's chunks (after `head`); only the record's very last chunk is final."""
    view = memoryview(data)
    n = chunk_count(len(data), chunk_size)
    pieces = [head] if head else []
    crc = google_crc32c.value(head)
    for i in range(n):
        sealed = cipher.seal(first_counter + i, view[i * chunk_size : (i + 1) * chunk_size], last and i == n - 1)
        crc = google_crc32c.extend(crc, sealed)
        pieces.append(sealed)
    return Sealed(pieces, crc)


class Pending(NamedTuple):
    """Step 1's result: what the rest of the ingest needs to seal, store and commit the version."""

    record_id: str
    version: int
    envelope: Envelope
    cipher: ChunkCipher
    retain_until: datetime
    created_at: datetime
    legal_hold: bool  # a correction of a held record is held in the store from its first byte


class Stored(NamedTuple):
    """A committed version: enough to answer the client without reading the catalog back."""

    record_id: str
    version: int
    size: int
    retain_until: datetime
    created_at: datetime


def _utc(value: datetime) -> datetime:
    out = db.utc(value)
    assert out is not None
    return out


# Statements built once: building a Core statement (and its cache key) per call cost more CPU than
# executing it. Parameters are bound at execution; the SET columns come from the parameter names.
_INSERT_RECORD = db.records.insert()
_INSERT_VERSION = db.versions.insert()
_UPDATE_VERSION = update(db.versions).where(
    and_(db.versions.c.record_id == bindparam("k_record"), db.versions.c.version == bindparam("k_version"))
)
_UPDATE_RECORD = update(db.records).where(db.records.c.record_id == bindparam("k_record"))
_LOCK_RECORD = (
    update(db.records).where(db.records.c.record_id == bindparam("k_record")).values(status=db.records.c.status)
)
_PATIENT_RECORDS_TO_EXTEND = select(db.records.c.record_id).where(
    and_(
        db.records.c.patient_index == bindparam("k_patient"),
        db.records.c.status == "active",
        db.records.c.record_id != bindparam("k_record"),
        db.records.c.retain_until < bindparam("k_until"),
    )
)


def commit_version(
    archive: Archive,
    record_id: str,
    version: int,
    version_id: str,
    etag: str,
    size: int,
    upload_id: str | None,
    extend_for: tuple[str, datetime] | None = None,
    held: bool | None = False,
) -> list[store_sync.Owed]:
    """Step 5 in one transaction: the version becomes visible, the record shows its latest version.

    With `extend_for` = (patient index, retain-until), the patient's other active records are
    extended to that date in the same transaction. `held`: whether the object was stored under
    legal hold (None: unknown). Returns the records whose objects must now follow the catalog
    (store_sync.settle), so a failure there cannot undo or repeat the commit.
    """
    committed = {
        "k_record": record_id,
        "k_version": version,
        "state": "committed",
        "s3_version_id": version_id,
        "etag": etag,
        "size": size,
        "upload_id": upload_id,
    }
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return _commit(archive, record_id, version, committed, extend_for, held)
        except DBAPIError as exc:  # nothing in the store depends on a transaction that rolled back
            if attempt == DEADLOCK_RETRIES - 1 or getattr(exc.orig, "sqlstate", None) not in _RETRYABLE:
                raise
    raise AssertionError("unreachable")


#: PostgreSQL aborts one of two commits that extend each other's records (the same patient):
#: deadlock_detected, serialization_failure. The transaction is simply run again.
_RETRYABLE = ("40P01", "40001")
DEADLOCK_RETRIES = 5


def _commit(
    archive: Archive,
    record_id: str,
    version: int,
    committed: dict[str, Any],
    extend_for: tuple[str, datetime] | None,
    held: bool | None,
) -> list[store_sync.Owed]:
    owed: list[store_sync.Owed] = []
    committed = dict(committed)  # a retried transaction starts from the caller's values
    with archive.engine.begin() as conn:
        if version == 1:  # the pending record row already carries this version's metadata
            conn.execute(_UPDATE_VERSION, committed)
            conn.execute(_UPDATE_RECORD, {"k_record": record_id, "status": "active"})
        else:
            # Take the record row first (on SQLite, the write lock): a hold or an extension of the
            # record waits for this commit, or is seen by the reads below, never half of each.
            conn.execute(_LOCK_RECORD, {"k_record": record_id})
            row = db.get_version(conn, record_id, version)
            assert row is not None
            meta = json.loads(row.meta)
            rec = db.get_record(conn, record_id)
            assert rec is not None
            record_retain, version_retain = _utc(rec.retain_until), _utc(row.retain_until)
            if version_retain < record_retain:
                committed["retain_until"] = record_retain  # extended since step 1: lock it as long
            conn.execute(_UPDATE_VERSION, committed)
            if held is None or bool(rec.legal_hold) != held or version_retain < record_retain:
                # A hold or an extension of the record landed while this version was being stored.
                owed.append(store_sync.mark(conn, record_id))
            if version < int(rec.current_version):
                # The reconciler settling a correction whose answer was lost after a later one
                # was committed: the version joins the history, the record keeps its newest.
                return owed
            retain = max(record_retain, version_retain)
            values: dict[str, Any] = {"status": "active", "current_version": version, "retain_until": retain}
            for field in ("subclass", "document_date", "title", "author", "language", "content_type"):
                values[field] = meta[field]
            values["document_date"] = date.fromisoformat(meta["document_date"])
            values["tags"] = json.dumps(meta["tags"])
            conn.execute(_UPDATE_RECORD, {"k_record": record_id, **values})
        if extend_for is None:
            return owed
        pidx, until = extend_for
        earlier = [
            r[0]
            for r in conn.execute(
                _PATIENT_RECORDS_TO_EXTEND, {"k_patient": pidx, "k_record": record_id, "k_until": until}
            )
        ]
        if earlier:
            for rid, locks in store_sync.extend_in(conn, earlier, until).items():
                owed.append(store_sync.mark(conn, rid, store_sync.Change(locks=locks)))
    return owed


def _begin(
    archive: Archive,
    meta: RecordMetadata,
    who: str,
    sha256: str,
    content_type: str,
    record_id: str | None,
    reason: str | None,
) -> Pending:
    """Step 1: the pending catalog row (and a pending record row for a new record)."""
    s = archive.settings
    retain = archive.retain_until_for(meta.record_class.value, meta.subclass, meta.document_date)
    pidx = patient_index(archive.keys.index_key, meta.patient_id) if meta.patient_id else None
    held = False
    with archive.engine.begin() as conn:
        if record_id is None:
            record_id = str(uuid.uuid4())
            version = 1
        else:
            rec = db.get_record(conn, record_id)
            if rec is None or rec.status == "pending":
                raise NotFound(f"record {record_id} not found")
            if rec.status != "active":
                raise Conflict(f"record {record_id} is {rec.status}: no new version")
            if (
                rec.record_class != meta.record_class.value
                or rec.facility != meta.facility
                or rec.patient_index != pidx
            ):
                raise Conflict(
                    "a correction keeps the record's class, facility and patient: "
                    "record_class, facility and patient_id must match the record"
                )
            version = db.next_version(conn, record_id)
            # The new version is locked at least as long as the record already is (an extension
            # by PUT /retention or by a later document), and held if the record is.
            retain = max(retain, _utc(rec.retain_until))
            held = bool(rec.legal_hold)
        now = db.now()
        # Sealed in the object's header: with the KEK, the store alone rebuilds the catalog (rebuild.py).
        sealed_meta = {
            **meta.model_dump(mode="json"),
            "content_type": content_type,
            "sha256": sha256,
            "created_by": who,
            "created_at": now.isoformat(),
            "correction_reason": reason,
        }
        envelope, cipher = new_envelope(archive.provider, record_id, version, s.chunk_size, sealed_meta)
        header = envelope.to_header()
        public_meta = meta.model_dump(mode="json", exclude={"patient_id"})
        public_meta["content_type"] = content_type
        if version == 1:
            conn.execute(
                _INSERT_RECORD,
                dict(
                    record_id=record_id,
                    status="pending",
                    record_class=meta.record_class.value,
                    subclass=meta.subclass,
                    facility=meta.facility,
                    patient_index=pidx,
                    document_date=meta.document_date,
                    title=meta.title,
                    author=meta.author,
                    language=meta.language,
                    tags=json.dumps(meta.tags),
                    content_type=content_type,
                    current_version=1,
                    retain_until=retain,
                    legal_hold=False,
                    created_at=now,
                    created_by=who,
                ),
            )
        try:
            conn.execute(
                _INSERT_VERSION,
                dict(
                    record_id=record_id,
                    version=version,
                    state="pending",
                    object_key=object_key(record_id, version),
                    owner=archive.instance,
                    sha256=sha256,
                    header_len=len(header),
                    key_id=envelope.key_id,
                    wrapped_dek=envelope.wrapped_dek,
                    prefix=envelope.prefix,
                    chunk_size=s.chunk_size,
                    meta=json.dumps(public_meta),
                    retain_until=retain,
                    created_at=now,
                    created_by=who,
                    correction_reason=reason,
                ),
            )
        except IntegrityError:
            raise Conflict(f"record {record_id}: another correction is being stored; retry") from None
    return Pending(record_id, version, envelope, cipher, retain, now, held)


def _store_small(
    archive: Archive,
    meta: RecordMetadata,
    who: str,
    sha256: str,
    content_type: str,
    existing: str | None,
    reason: str | None,
    data: bytes,
) -> Stored:
    """A record that fits one part, already verified: steps 1, 2+4 (one PUT) and 5 in one worker hop."""
    record_id, version, envelope, cipher, retain, created, held = _begin(
        archive, meta, who, sha256, content_type, existing, reason
    )
    key = object_key(record_id, version)
    try:
        sealed = seal_part(cipher, data, 0, archive.settings.chunk_size, True, envelope.to_header())
    except BaseException:
        drop_pending(archive, record_id, version)
        raise
    # From here on the object may exist: a failure leaves the pending row to the reconciler.
    written = archive.store.put(
        archive.store.records, key, sealed.pieces, retain, crc32c=sealed.crc32c, legal_hold=held
    )
    owed = commit_version(
        archive,
        record_id,
        version,
        written.version_id,
        written.etag,
        len(data),
        None,
        _extension(archive, meta, retain),
        held,
    )
    store_sync.settle_after_commit(archive, owed)
    return Stored(record_id, version, len(data), retain, created)


def _extension(archive: Archive, meta: RecordMetadata, retain: datetime) -> tuple[str, datetime] | None:
    """Medical retention runs from the patient's last document: (patient index, date) to extend to."""
    s = archive.settings
    if meta.record_class is RecordClass.MEDICAL and s.medical_retention_from_last_document and meta.patient_id:
        return patient_index(archive.keys.index_key, meta.patient_id), retain
    return None


def _begin_multipart(
    archive: Archive,
    meta: RecordMetadata,
    who: str,
    sha256: str,
    content_type: str,
    existing: str | None,
    reason: str | None,
) -> tuple[Pending, str]:
    """Step 1, then open the multipart upload and record its id (so the reconciler can abort it)."""
    pending = _begin(archive, meta, who, sha256, content_type, existing, reason)
    try:
        upload_id = archive.store.create_upload(
            object_key(pending.record_id, pending.version), pending.retain_until, pending.legal_hold
        )
    except BaseException:
        drop_pending(archive, pending.record_id, pending.version)
        raise
    _record_upload(archive, pending.record_id, pending.version, upload_id)
    return pending, upload_id


class _PartBuffer:
    """The body's pieces as they arrive, cut into parts with one copy each.

    Pieces are kept as they are (no growing buffer: its reallocations cost more CPU per MiB than
    hashing it) and joined once when a part is full; the part is a view of that join, so its
    plaintext is freed as soon as the worker has sealed it.
    """

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self.pieces: list[bytes] = []
        self.size = 0

    def add(self, piece: bytes) -> None:
        self.pieces.append(piece)
        self.size += len(piece)

    def full(self) -> bool:
        return self.size > self.part_size

    def take_part(self) -> memoryview:
        """The first `part_size` bytes; the rest stays buffered."""
        whole = memoryview(b"".join(self.pieces))
        rest = bytes(whole[self.part_size :])
        self.pieces, self.size = ([rest] if rest else []), len(rest)
        return whole[: self.part_size]

    def take_all(self) -> bytes:
        whole = self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)
        self.pieces, self.size = [], 0
        return whole


async def ingest(
    archive: Archive,
    meta: RecordMetadata,
    who: str,
    sha256: str,
    content_type: str,
    body: AsyncIterator[bytes],
    existing: str | None = None,
    reason: str | None = None,
) -> Stored:
    """Stream `body` into the archive; returns the committed version.

    Nothing touches the catalog or the store until the body outgrows one part: a small record is
    read, verified and then stored in one worker hop; a large one is streamed part by part.
    """
    s = archive.settings
    loop = asyncio.get_running_loop()
    part_size, chunk = s.part_size, s.chunk_size
    chunks_per_part = s.part_chunks
    hasher = hashlib.sha256()
    buffered = _PartBuffer(part_size)
    total = 0
    started: tuple[Pending, str] | None = None
    parts: list[asyncio.Future[str]] = []
    slots = asyncio.Semaphore(s.upload_concurrency)
    maybe_completed = False

    def upload(number: int, box: list[bytes | memoryview], first_counter: int, last: bool) -> str:
        assert started is not None
        pending, upload_id = started
        head = pending.envelope.to_header() if number == 1 else b""
        # The plaintext leaves the box here, so it is freed once sealed, before the part is sent.
        sealed = seal_part(pending.cipher, box.pop(), first_counter, chunk, last, head)
        return archive.store.upload_part(
            object_key(pending.record_id, pending.version), upload_id, number, sealed.pieces
        )

    async def submit(box: list[bytes | memoryview], last: bool) -> None:
        """Hand one part's plaintext (in a box the worker empties, so it is freed once sealed) to a worker."""
        number = len(parts) + 1
        await slots.acquire()
        fut = loop.run_in_executor(archive.pool, upload, number, box, (number - 1) * chunks_per_part, last)
        fut.add_done_callback(lambda _f: slots.release())
        parts.append(fut)
        # Surface an upload failure early instead of streaming the rest of the body for nothing.
        for f in parts:
            if f.done() and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]

    try:
        async for piece in body:
            if not piece:
                continue
            total += len(piece)
            if total > s.max_record_bytes:
                raise TooLarge(f"record exceeds the {s.max_record_bytes}-byte limit (HDC_ARCHIVE_MAX_RECORD_BYTES)")
            hasher.update(piece)
            buffered.add(piece)
            while buffered.full():
                if started is None:
                    started = await loop.run_in_executor(
                        None, _begin_multipart, archive, meta, who, sha256, content_type, existing, reason
                    )
                await submit([buffered.take_part()], last=False)
        digest = hasher.hexdigest()
        if digest != sha256:
            raise BadInput(f"SHA-256 mismatch: client sent {sha256}, content hashes to {digest}; nothing stored")
        if started is None:
            return await loop.run_in_executor(
                archive.pool,
                _store_small,
                archive,
                meta,
                who,
                sha256,
                content_type,
                existing,
                reason,
                buffered.take_all(),
            )
        await submit([buffered.take_all()], last=True)
        etags = list(await asyncio.gather(*parts))
        pending, upload_id = started
        maybe_completed = True
        written = await loop.run_in_executor(
            None, archive.store.complete_upload, object_key(pending.record_id, pending.version), upload_id, etags
        )
        owed = await loop.run_in_executor(
            None,
            commit_version,
            archive,
            pending.record_id,
            pending.version,
            written.version_id,
            written.etag,
            total,
            upload_id,
            _extension(archive, meta, pending.retain_until),
            pending.legal_hold,
        )
    except BaseException as exc:
        for f in parts:
            f.cancel()
        if parts:
            await asyncio.gather(*parts, return_exceptions=True)
        if started is None:
            raise
        pending, upload_id = started
        if maybe_completed and isinstance(exc, StoreUnavailable | asyncio.CancelledError):
            # The object may exist: leave the pending row for the reconciler to settle.
            raise
        key = object_key(pending.record_id, pending.version)
        try:
            await loop.run_in_executor(None, archive.store.abort_upload, key, upload_id)
        except Exception:
            raise exc from None  # the reconciler aborts it later (pending row kept)
        await loop.run_in_executor(None, drop_pending, archive, pending.record_id, pending.version)
        raise
    if owed:
        await loop.run_in_executor(None, store_sync.settle_after_commit, archive, owed)
    return Stored(pending.record_id, pending.version, total, pending.retain_until, pending.created_at)


def _record_upload(archive: Archive, record_id: str, version: int, upload_id: str) -> None:
    with archive.engine.begin() as conn:
        conn.execute(_UPDATE_VERSION, {"k_record": record_id, "k_version": version, "upload_id": upload_id})


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


def _position(digits: str) -> int:
    """A byte position; past 2^63 (or past the 4300 digits `int` reads) it is simply beyond the end."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else 2**63


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single `bytes=` range → (start, end inclusive); None = the whole content.

    As RFC 9110 §14.2 has it: a Range that does not parse, names another unit, or asks for several
    ranges is ignored (the whole content, 200); only a well-formed range that no byte satisfies
    raises ValueError (416).
    """
    if not header:
        return None
    m = _RANGE.fullmatch(header)
    if m is None or (m[1] == "" and m[2] == ""):
        return None
    first, last = m[1], m[2]
    if first == "":
        n = _position(last)
        if n <= 0:
            raise ValueError("empty suffix range")
        if size == 0:
            return None  # the whole (empty) content satisfies a suffix: 200
        return max(0, size - n), size - 1
    start = _position(first)
    end = _position(last) if last else size - 1
    if last and end < start:
        return None  # invalid (last before first): ignored
    if start >= size:
        raise ValueError("range not satisfiable")
    return start, min(end, size - 1)


def open_content(archive: Archive, row: Any, start: int, end: int) -> Iterator[bytes]:
    """Decrypt plaintext bytes start..end (inclusive) of one version, reading only the chunks needed."""
    size = int(row.size)
    if size == 0:
        return iter(())
    c = int(row.chunk_size)
    ct = c + TAG
    cipher = cipher_for(archive.provider, row.record_id, row.version, row.key_id, row.wrapped_dek, row.prefix)
    n_chunks = chunk_count(size, c)
    first, last = start // c, end // c
    offset = int(row.header_len) + first * ct
    length = min((last + 1) * ct, size + TAG * n_chunks) - first * ct

    def gen() -> Iterator[bytes]:
        buf = bytearray()
        idx = first
        for piece in archive.store.read(archive.store.records, row.object_key, row.s3_version_id, offset, length):
            buf += piece
            while len(buf) >= ct or (idx == n_chunks - 1 and len(buf) == size - idx * c + TAG):
                take = ct if len(buf) >= ct else len(buf)
                plain = cipher.open(idx, bytes(buf[:take]), idx == n_chunks - 1)
                del buf[:take]
                lo = start - idx * c if idx == first else 0
                hi = end - idx * c + 1 if idx == last else len(plain)
                yield plain[lo:hi]
                idx += 1
                if idx > last:
                    return
        if idx <= last:
            raise OSError(f"object {row.object_key} is shorter than the catalog says")

    return gen()
