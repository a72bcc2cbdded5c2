"""The record catalog: SQLAlchemy Core, one code path for SQLite (WAL, default) and PostgreSQL.

Only title search differs by dialect (SQLite FTS5 table kept by triggers, PostgreSQL trigram index);
everything else is the same statements. Rows follow the ingest protocol: a version is `pending`
until its object is complete in the store, then `committed`; the reconciler settles the rest.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import ColumnElement

metadata = MetaData()

records = Table(
    "records",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(36), nullable=False, unique=True),
    Column("status", String(12), nullable=False),  # pending | active | destroyed
    Column("record_class", String(16), nullable=False),
    Column("subclass", String(64), nullable=False),
    Column("facility", String(64), nullable=False),
    Column("patient_index", String(64)),
    Column("document_date", Date, nullable=False),
    Column("title", Text, nullable=False),
    Column("author", String(200), nullable=False),
    Column("language", String(16), nullable=False),
    Column("tags", Text, nullable=False, default="[]"),
    Column("content_type", String(200), nullable=False),
    Column("current_version", Integer, nullable=False),
    Column("retain_until", DateTime(timezone=True), nullable=False),
    Column("legal_hold", Boolean, nullable=False, default=False),
    Column("hold_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("destroyed_at", DateTime(timezone=True)),
)
Index("ix_records_patient", records.c.patient_index, records.c.document_date)
Index("ix_records_facility", records.c.facility, records.c.document_date)
Index("ix_records_class", records.c.record_class, records.c.document_date)
Index("ix_records_date", records.c.document_date)
Index("ix_records_due", records.c.status, records.c.retain_until)

versions = Table(
    "versions",
    metadata,
    Column("record_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("state", String(12), nullable=False),  # pending | committed | destroyed
    Column("object_key", String(300), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("upload_id", String(300)),
    Column("s3_version_id", String(200)),
    Column("etag", String(100)),
    Column("size", BigInteger),
    Column("sha256", String(64), nullable=False),
    Column("header_len", Integer, nullable=False),
    Column("key_id", String(100), nullable=False),
    Column("wrapped_dek", LargeBinary, nullable=False),
    Column("prefix", LargeBinary, nullable=False),
    Column("chunk_size", Integer, nullable=False),
    Column("meta", Text, nullable=False),  # JSON: descriptive metadata of this version (no patient id)
    Column("retain_until", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("correction_reason", Text),
    Column("rewrap_version_id", String(200)),
    Column("fixity_checked_at", DateTime(timezone=True)),
    Column("fixity_ok", Boolean),
)
Index("ix_versions_state", versions.c.state, versions.c.owner)

dispositions = Table(
    "dispositions",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("status", String(12), nullable=False),  # requested | approved | executed | rejected
    Column("record_ids", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("approved_by", String(200)),
    Column("approved_at", DateTime(timezone=True)),
    Column("executed_by", String(200)),
    Column("executed_at", DateTime(timezone=True)),
    Column("certificate_key", String(300)),
)

holds = Table(
    "holds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(36), nullable=False, index=True),
    Column("action", String(8), nullable=False),  # place | release
    Column("reason", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)


flags = Table(
    "access_flags",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),  # the audit entry's sequence number
    Column("ts", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("facility", String(64)),
    Column("record_id", String(36)),
    Column("path", String(500), nullable=False),
    Column("justification", Text, nullable=False),
)


def utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every time in the catalog is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, pool_size=8, max_overflow=8, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Tables, indexes and the dialect's title index; idempotent."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            _sqlite_fts(conn)
        elif engine.dialect.name == "postgresql":
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            conn.execute(
                text("CREATE INDEX IF NOT EXISTS ix_records_title_trgm ON records USING gin (title gin_trgm_ops)")
            )


_FTS_COLUMNS = ("title", "facility")


def _sqlite_fts(conn: Connection) -> None:
    """FTS5 over title and facility (so a facility filter narrows the text match inside the index).

    An older index without the facility column is rebuilt in place.
    """
    conn.execute(text("CREATE VIRTUAL TABLE IF NOT EXISTS records_fts_vocab USING fts5vocab(records_fts, 'row')"))
    exists = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'records_fts'")).first()
    if exists:
        cols = tuple(r[1] for r in conn.execute(text("PRAGMA table_info(records_fts)")))
        if cols == _FTS_COLUMNS:
            return
        for name in ("records_fts_ai", "records_fts_ad", "records_fts_au"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        conn.execute(text("DROP TABLE records_fts"))
    conn.execute(
        text(
            "CREATE VIRTUAL TABLE records_fts USING fts5(title, facility, content='records', content_rowid='seq', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
    )
    conn.execute(
        text(
            "CREATE TRIGGER records_fts_ai AFTER INSERT ON records BEGIN "
            "INSERT INTO records_fts(rowid, title, facility) VALUES (new.seq, new.title, new.facility); END"
        )
    )
    conn.execute(
        text(
            "CREATE TRIGGER records_fts_ad AFTER DELETE ON records BEGIN INSERT INTO records_fts(records_fts, rowid, "
            "title, facility) VALUES('delete', old.seq, old.title, old.facility); END"
        )
    )
    conn.execute(
        text(
            "CREATE TRIGGER records_fts_au AFTER UPDATE OF title, facility ON records BEGIN "
            "INSERT INTO records_fts(records_fts, rowid, title, facility) VALUES('delete', old.seq, old.title, old.facility); "
            "INSERT INTO records_fts(rowid, title, facility) VALUES (new.seq, new.title, new.facility); END"
        )
    )
    if exists:
        conn.execute(text("INSERT INTO records_fts(records_fts) VALUES('rebuild')"))


_WORD = re.compile(r"\w+", re.UNICODE)


def _fold(value: str) -> str:
    """Case- and accent-insensitive form (what SQLite's unicode61 remove_diacritics does)."""
    return "".join(c for c in unicodedata.normalize("NFKD", value.casefold()) if not unicodedata.combining(c))


def title_matches(dialect: str, title: str, words: Sequence[str]) -> bool:
    """The same rule as the database's title search, for rows already narrowed (a patient's records)."""
    if dialect == "sqlite":
        tokens = _WORD.findall(_fold(title))
        return all(any(t.startswith(_fold(w)) for t in tokens) for w in words)
    low = title.lower()
    return all(w.lower() in low for w in words)


#: Above this estimated share of matching titles, walking the date-ordered index and checking titles
#: finds a page sooner than materialising every FTS match (common words); below it, FTS wins.
SCAN_SELECTIVITY = 0.02
SCAN_CAP = 50_000


def sqlite_title_selectivity(conn: Connection, words: Sequence[str]) -> float:
    """Estimated share of records whose title has every word (from the FTS vocabulary, independent words)."""
    total = conn.execute(text("SELECT max(seq) FROM records")).scalar() or 0
    if not total:
        return 0.0
    share = 1.0
    for w in words:
        f = _fold(w)
        docs = conn.execute(
            text("SELECT coalesce(sum(doc), 0) FROM records_fts_vocab WHERE term >= :lo AND term < :hi"),
            {"lo": f, "hi": f + "\U0010ffff"},
        ).scalar()
        share *= min(1.0, float(docs or 0) / total)
    return share


def title_condition(dialect: str, q: str, facility: str | None = None) -> ColumnElement[bool] | None:
    """Every word of `q` must appear in the title (word prefix in SQLite, substring in PostgreSQL)."""
    words = _WORD.findall(q)
    if not words:
        return None
    if dialect == "sqlite":
        match = "title : (" + " AND ".join('"' + w.replace('"', "") + '"*' for w in words) + ")"
        if facility:  # narrows inside the index; the exact facility equality is applied on the table too
            match += ' AND facility : ^"' + facility.replace('"', "") + '"'
        sub = text("SELECT rowid FROM records_fts WHERE records_fts MATCH :fts").bindparams(fts=match)
        return records.c.seq.in_(sub.columns(rowid=Integer))
    return and_(*[records.c.title.ilike("%" + w.replace("%", r"\%").replace("_", r"\_") + "%") for w in words])


def encode_cursor(row: Row[Any]) -> str:
    raw = json.dumps([row.document_date.isoformat(), row.seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[date, int]:
    """Raises ValueError on a cursor this service did not issue."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    day, seq = json.loads(raw)
    return date.fromisoformat(day), int(seq)


def search(
    conn: Connection,
    *,
    patient_index: str | None = None,
    facilities: Sequence[str] | None = None,
    record_class: str | None = None,
    subclass: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Row[Any]], str | None]:
    """Active records, newest document first, keyset-paginated (stable under inserts)."""
    conds: list[ColumnElement[bool]] = [records.c.status == "active"]
    if patient_index is not None:
        conds.append(records.c.patient_index == patient_index)
    if facilities is not None:
        conds.append(
            records.c.facility.in_(list(facilities)) if len(facilities) != 1 else records.c.facility == facilities[0]
        )
    if record_class is not None:
        conds.append(records.c.record_class == record_class)
    if subclass is not None:
        conds.append(records.c.subclass == subclass)
    if date_from is not None:
        conds.append(records.c.document_date >= date_from)
    if date_to is not None:
        conds.append(records.c.document_date <= date_to)
    words = _WORD.findall(q or "")
    post_filter = bool(words) and patient_index is not None
    scan = False
    if words and not post_filter and conn.dialect.name == "sqlite":
        scan = post_filter = sqlite_title_selectivity(conn, words) >= SCAN_SELECTIVITY
    if words and not post_filter:
        one = facilities[0] if facilities is not None and len(facilities) == 1 else None
        cond = title_condition(conn.dialect.name, q or "", one)
        if cond is not None:
            conds.append(cond)
    if cursor:
        day, seq = decode_cursor(cursor)
        conds.append(or_(records.c.document_date < day, and_(records.c.document_date == day, records.c.seq < seq)))
    stmt = (
        select(records, versions.c.size, versions.c.sha256)
        .join(
            versions, and_(versions.c.record_id == records.c.record_id, versions.c.version == records.c.current_version)
        )
        .where(and_(*conds))
        .order_by(records.c.document_date.desc(), records.c.seq.desc())
        .limit(limit + 1)
    )
    rows: list[Row[Any]] = []
    if post_filter:
        # A patient has few records, and common words match a large share of titles: read in date
        # order and apply the title rule here, rather than materialising every match in the catalog.
        scanned = 0
        for row in conn.execute(stmt.limit(None if not scan else SCAN_CAP)):
            scanned += 1
            if title_matches(conn.dialect.name, row.title, words):
                rows.append(row)
                if len(rows) > limit:
                    break
        if scan and len(rows) <= limit and scanned >= SCAN_CAP:  # the estimate was wrong: use the index
            one = facilities[0] if facilities is not None and len(facilities) == 1 else None
            cond = title_condition(conn.dialect.name, q or "", one)
            assert cond is not None
            rows = list(conn.execute(stmt.where(cond)))
    else:
        rows = list(conn.execute(stmt))
    nxt = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], nxt


def get_record(conn: Connection, record_id: str) -> Row[Any] | None:
    return conn.execute(select(records).where(records.c.record_id == record_id)).first()


def get_version(conn: Connection, record_id: str, version: int) -> Row[Any] | None:
    return conn.execute(
        select(versions).where(and_(versions.c.record_id == record_id, versions.c.version == version))
    ).first()


def list_versions(
    conn: Connection, record_id: str, states: Sequence[str] = ("committed", "destroyed")
) -> list[Row[Any]]:
    return list(
        conn.execute(
            select(versions)
            .where(and_(versions.c.record_id == record_id, versions.c.state.in_(list(states))))
            .order_by(versions.c.version)
        )
    )


def next_version(conn: Connection, record_id: str) -> int:
    got = conn.execute(select(func.max(versions.c.version)).where(versions.c.record_id == record_id)).scalar()
    return int(got or 0) + 1


def iter_committed(conn: Connection, batch: int = 500) -> Iterator[Row[Any]]:
    """Every committed version, in pages (fixity, key rotation)."""
    last: tuple[str, int] = ("", 0)
    while True:
        rows = list(
            conn.execute(
                select(versions)
                .where(
                    and_(
                        versions.c.state == "committed",
                        or_(
                            versions.c.record_id > last[0],
                            and_(versions.c.record_id == last[0], versions.c.version > last[1]),
                        ),
                    )
                )
                .order_by(versions.c.record_id, versions.c.version)
                .limit(batch)
            )
        )
        if not rows:
            return
        yield from rows
        last = (rows[-1].record_id, rows[-1].version)


def due_for_disposition(conn: Connection, at: datetime, limit: int = 500) -> list[Row[Any]]:
    return list(
        conn.execute(
            select(records)
            .where(and_(records.c.status == "active", records.c.retain_until <= at, records.c.legal_hold.is_(False)))
            .order_by(records.c.retain_until)
            .limit(limit)
        )
    )


__all__ = [
    "create_schema",
    "dispositions",
    "holds",
    "insert",
    "make_engine",
    "records",
    "search",
    "select",
    "update",
    "versions",
]
