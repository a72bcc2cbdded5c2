"""Key rotation: re-wrap data keys under the current KEK without touching content.

The new wrap goes to the catalog and, so that the store alone stays restorable, to a small
locked sidecar `keys/<record>/vNNNNNN.json` with the version's retain-until date.
"""

from __future__ import annotations

import base64
import json

from sqlalchemy import and_, update

from . import catalogdb as db
from . import store_sync
from .service import Archive, rewrap_key


def rewrap_all(archive: Archive) -> int:
    """Re-wrap every committed version whose data key is wrapped by an older KEK; returns the count."""
    current = archive.keys.current_key_id()
    done = 0
    with archive.engine.connect() as conn:
        rows = [v for v in db.iter_committed(conn) if v.key_id != current]
    for v in rows:
        dek = archive.keys.unwrap(v.key_id, v.wrapped_dek)
        key_id, wrapped = archive.keys.wrap(dek)
        doc = {
            "record_id": v.record_id,
            "version": v.version,
            "key_id": key_id,
            "wrapped_dek": base64.b64encode(wrapped).decode(),
            "previous_key_id": v.key_id,
            "rewrapped_at": db.now().isoformat(),
        }
        until = db.utc(v.retain_until)
        assert until is not None
        # The sidecar is needed to read the version once the old KEK is retired: held with the record.
        held = bool(archive.record(v.record_id).legal_hold)
        written = archive.store.put(
            archive.store.records,
            rewrap_key(v.record_id, v.version),
            json.dumps(doc).encode(),
            until,
            "application/json",
            legal_hold=held,
        )
        with archive.engine.begin() as conn:
            conn.execute(
                update(db.versions)
                .where(and_(db.versions.c.record_id == v.record_id, db.versions.c.version == v.version))
                .values(key_id=key_id, wrapped_dek=wrapped, rewrap_version_id=written.version_id)
            )
            rec = db.get_record(conn, v.record_id)
            if rec is not None and bool(rec.legal_hold) != held:  # a hold changed meanwhile
                store_sync.mark(conn, v.record_id)
        done += 1
    return done
