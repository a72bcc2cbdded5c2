"""Fixity: re-read stored versions, decrypt, recompute SHA-256 and compare with the catalog.

Also reports objects the store holds under a record's key that the catalog does not know
(another version uploaded behind the service's back) and envelope headers that disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import and_, update

from . import catalogdb as db
from .crypto import Envelope, KeyError_
from .ingest import open_content
from .service import Archive
from .store import StoreRefused


@dataclass
class FixityResult:
    record_id: str
    version: int
    ok: bool
    detail: str


def check_version(archive: Archive, v: Any) -> FixityResult:
    try:
        head = archive.store.head(archive.store.records, v.object_key, v.s3_version_id)
        if head is None:
            return FixityResult(
                v.record_id, v.version, False, f"object {v.object_key} version {v.s3_version_id} missing"
            )
        others = [
            vid
            for key, vid, _l, _m in archive.store.list_versions(archive.store.records, v.object_key)
            if key == v.object_key and vid != v.s3_version_id
        ]
        # A PUT repeated after its answer was lost stores the same bytes again (same size and
        # ETag): a harmless copy, deleted with the record. Anything else was written behind the service.
        foreign = [
            vid for vid in others if archive.store.head(archive.store.records, v.object_key, vid) != (vid, *head[1:])
        ]
        if foreign:
            return FixityResult(
                v.record_id, v.version, False, f"{len(foreign)} unexpected version(s) of {v.object_key} in the store"
            )
        raw_head = b"".join(
            archive.store.read(archive.store.records, v.object_key, v.s3_version_id, 0, int(v.header_len))
        )
        env, hlen = Envelope.from_header(raw_head)
        if (env.record_id, env.version, hlen) != (v.record_id, v.version, v.header_len):
            return FixityResult(v.record_id, v.version, False, "envelope header does not match the catalog")
        hasher = hashlib.sha256()
        total = 0
        if int(v.size) > 0:
            for piece in open_content(archive, v, 0, int(v.size) - 1):
                hasher.update(piece)
                total += len(piece)
        digest = hasher.hexdigest()
        if digest != v.sha256 or total != int(v.size):
            return FixityResult(
                v.record_id,
                v.version,
                False,
                f"SHA-256 {digest} ({total} bytes) differs from the catalog's {v.sha256} ({v.size} bytes)",
            )
        return FixityResult(v.record_id, v.version, True, "ok")
    except InvalidTag:
        return FixityResult(v.record_id, v.version, False, "content fails authentication (altered ciphertext)")
    except (KeyError_, ValueError, OSError, StoreRefused) as exc:
        return FixityResult(v.record_id, v.version, False, f"{type(exc).__name__}: {exc}")


def run_fixity(archive: Archive, limit: int | None = None) -> Iterator[FixityResult]:
    """Check every committed version, or the `limit` next in line (`catalogdb.least_checked`);
    each result is kept in the catalog (`fixity_ok`, `fixity_checked_at`)."""
    with archive.engine.connect() as conn:
        rows = list(db.iter_committed(conn)) if limit is None else db.least_checked(conn, limit)
    for v in rows:
        res = check_version(archive, v)
        with archive.engine.begin() as conn:
            conn.execute(
                update(db.versions)
                .where(and_(db.versions.c.record_id == v.record_id, db.versions.c.version == v.version))
                .values(fixity_checked_at=db.now(), fixity_ok=res.ok)
            )
        yield res
