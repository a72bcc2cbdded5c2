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
    case,
    column,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    table,
    text,
    update,
)
from sqlalchemy.engine import Connection, Row, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.sql import Select
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
#: The fixity gauge counts failed versions and the nightly batch picks the least recently checked:
#: created by `create_schema` on existing catalogs too (create_all only indexes new tables).
FIXITY_INDEX_SQL = "CREATE INDEX IF NOT EXISTS ix_versions_fixity ON versions (fixity_ok, fixity_checked_at)"

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

#: A destroyed record's certificate entry, written in the transaction that marks it destroyed and
#: removed in the one that records its certificate: a run the store interrupts before the
#: certificate is written leaves them here for the next run to certify, not lost.
uncertified = Table(
    "disposition_uncertified",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("record_id", String(36), primary_key=True),
    Column("entry", Text, nullable=False),
)

#: Records whose objects in the store may lag the catalog's legal hold or retention dates: such a
#: change is committed here first, with a row in this table, then applied to every version's object
#: (store_sync.py). The row goes once the store matches; one left behind (a store outage, a crash)
#: is finished by the next sync. Rows are only added and deleted, so writers never conflict.
store_sync = Table(
    "store_sync",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(36), nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
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


def safe_url(url: str) -> str:
    """The URL with its password hidden, even when it does not parse (a typo must not print it)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(?<=:)[^:/@]*(?=@)", "***", url)


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
    # psycopg 3 prepares a statement on its fifth run, and PostgreSQL then moves to a generic plan
    # that ignores the values: for a title search it picks the trigram index whatever the words, and
    # a page of two common words took 57 ms at p50 on the 1M-record bench instead of 17 ms. Planning
    # each query with its values costs a fraction of a millisecond.
    args = {"prepare_threshold": None} if make_url(url).get_driver_name() == "psycopg" else {}
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True, connect_args=args)


def open_catalog(url: str, setting: str = "HDC_ARCHIVE_DATABASE_URL", hint: str = "") -> Engine:
    """Engine on the catalog with its schema; an unusable URL or database is a UserError naming
    `setting` and never the password (drivers repeat the URL in their messages)."""
    from hdc.errors import UserError

    shown = safe_url(url)
    try:
        engine = make_engine(url)
    except (ArgumentError, ValueError):
        raise UserError(
            f"{setting} {shown!r}: not a SQLAlchemy URL (dialect+driver://user:password@host:port/database)"
        ) from None
    try:
        create_schema(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        detail = str(getattr(exc, "orig", exc)).splitlines()[0].replace(url, shown)
        raise UserError(f"{setting} {shown!r}: the catalog cannot be opened or created ({detail}){hint}") from None
    return engine


def create_schema(engine: Engine) -> None:
    """Tables, indexes and the dialect's title index; idempotent."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text(FIXITY_INDEX_SQL))
        if engine.dialect.name == "sqlite":
            _sqlite_fts(conn)
        elif engine.dialect.name == "postgresql":
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
            conn.execute(
                text("CREATE INDEX IF NOT EXISTS ix_records_title_trgm ON records USING gin (title gin_trgm_ops)")
            )
            # Common title words are found by walking the dates newest first: with the title in
            # the index, the walk checks titles without visiting the table (an index-only scan).
            conn.execute(
                text(
                    "CREATE INDEX IF NOT EXISTS ix_records_date_title ON records "
                    "(document_date DESC, seq DESC) INCLUDE (status, title)"
                )
            )


#: SQLite's title index is an FTS5 table whose rowid is a date-ordered key, `date_key(document_date,
#: seq)`: a MATCH ordered by rowid DESC streams matches newest document first (FTS5 reads its doclists
#: in rowid order and consumes ORDER BY rowid), so a page of a common word stops after `limit` rows,
#: and date ranges and keyset cursors become rowid ranges. It keeps its own copy of title and
#: facility (an external-content table would need the key as a stored column of `records`).
#: The largest value an Integer column holds on both engines (PostgreSQL's integer is 32-bit): API
#: bounds on version and sequence numbers, so a huge number is a 422, not a driver overflow.
MAX_INT = 2**31 - 1
KEY_DAY = 1 << 32  # seq stays below 2^32; Julian day numbers need 22 bits: the key fits in 54 bits
_JDN_OFFSET = 1721424  # date.toordinal() + this = the Julian day number SQLite's julianday() truncates to
_SQL_KEY = "CAST(julianday({p}.document_date) AS INTEGER) * 4294967296 + {p}.seq"
#: Prefix indexes of 1, 2, 4 and 6 characters: a query word is looked up by its longest indexed
#: prefix, which FTS5 streams in rowid order (a prefix without its own index is gathered in full
#: first: tens of milliseconds for a common word); longer words are then checked on the title.
FTS_PREFIXES = (1, 2, 4, 6)
FTS_TABLE_SQL = (
    "CREATE VIRTUAL TABLE records_fts USING fts5(title, facility, tokenize='unicode61 remove_diacritics 2', "
    f"prefix='{' '.join(map(str, FTS_PREFIXES))}')"
)
#: Candidates read through the shortened prefixes before asking for the whole words instead
#: (a rare word that shares its first letters with a common one).
FTS_CANDIDATE_BUDGET = 400
#: Fills an empty title index from `records` (schema migration, bulk loads), in key order.
FTS_FILL_SQL = (
    "INSERT INTO records_fts(rowid, title, facility) "
    f"SELECT {_SQL_KEY.format(p='records')}, title, facility FROM records ORDER BY 1"
)
_FTS_TRIGGERS = {
    "records_fts_ai": "CREATE TRIGGER records_fts_ai AFTER INSERT ON records BEGIN "
    f"INSERT INTO records_fts(rowid, title, facility) VALUES ({_SQL_KEY.format(p='new')}, new.title, new.facility); END",
    "records_fts_ad": "CREATE TRIGGER records_fts_ad AFTER DELETE ON records BEGIN "
    f"DELETE FROM records_fts WHERE rowid = {_SQL_KEY.format(p='old')}; END",
    "records_fts_au": "CREATE TRIGGER records_fts_au AFTER UPDATE OF title, facility, document_date, seq ON records BEGIN "
    f"DELETE FROM records_fts WHERE rowid = {_SQL_KEY.format(p='old')}; "
    f"INSERT INTO records_fts(rowid, title, facility) VALUES ({_SQL_KEY.format(p='new')}, new.title, new.facility); END",
}
fts = table("records_fts", column("rowid", BigInteger), column("records_fts", Text))


def date_key(day: date, seq: int = 0) -> int:
    """The title index's rowid for (document date, seq): the search order as one integer."""
    return (day.toordinal() + _JDN_OFFSET) * KEY_DAY + seq


def _sqlite_fts(conn: Connection) -> None:
    """Create, or migrate to, the date-keyed title index and the triggers that keep it in step.

    Earlier catalogs had an external-content index keyed by seq (and an fts5vocab table): both are
    replaced and the new index is filled from `records` (about a minute per million records).
    """
    row = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'records_fts'")).first()
    current = row is not None and row[0] == FTS_TABLE_SQL
    triggers = {r[0]: r[1] for r in conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))}
    if current and all(triggers.get(n) == sql for n, sql in _FTS_TRIGGERS.items()):
        return
    for name in _FTS_TRIGGERS:
        conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
    if not current:
        conn.execute(text("DROP TABLE IF EXISTS records_fts_vocab"))
        conn.execute(text("DROP TABLE IF EXISTS records_fts"))
        conn.execute(text(FTS_TABLE_SQL))
        conn.execute(text(FTS_FILL_SQL))
    for sql in _FTS_TRIGGERS.values():
        conn.execute(text(sql))


#: Words as FTS5's unicode61 tokenizer cuts them: letters and digits (an underscore separates, as in SQLite).
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


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


def _fts_match(words: Sequence[str], facility: str | None, shorten: bool) -> str:
    """FTS5 query: every word as a prefix of a title word; a facility narrows inside the index too.

    With `shorten`, each word is cut to its longest indexed prefix length (see FTS_PREFIXES).
    """

    def term(w: str) -> str:
        if shorten:
            w = w[: max([n for n in FTS_PREFIXES if n <= len(w)] or [len(w)])]
        return '"' + w.replace('"', "") + '"*'

    match = "title : (" + " AND ".join(term(w) for w in words) + ")"
    if facility:  # the exact facility equality is applied on the table as well
        match += ' AND facility : ^"' + facility.replace('"', "") + '"'
    return match


def _fts_shortened(words: Sequence[str]) -> bool:
    """Whether some word is longer than its longest indexed prefix (then titles are checked here)."""
    return any(len(w) not in FTS_PREFIXES for w in words)


def title_condition(dialect: str, q: str) -> ColumnElement[bool] | None:
    """PostgreSQL: every word of `q` is a substring of the title (trigram index). SQLite uses `fts`."""
    words = _WORD.findall(q)
    if not words:
        return None
    return and_(*[records.c.title.ilike("%" + w.replace("%", r"\%").replace("_", r"\_") + "%") for w in words])


def encode_cursor(row: Row[Any]) -> str:
    raw = json.dumps([row.document_date.isoformat(), row.seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[date, int]:
    """Raises ValueError on anything but a cursor this service could have issued: `[date, seq]`.

    A forged cursor only moves the position in the list (the filters are applied again), but it
    must not reach the database as a value the driver cannot bind.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got = json.loads(raw)
        if not (isinstance(got, list) and len(got) == 2 and isinstance(got[0], str) and type(got[1]) is int):
            raise ValueError("not [date, seq]")
        day, seq = date.fromisoformat(got[0]), got[1]
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"not a cursor issued by this service: {exc}") from None
    if not 0 <= seq < KEY_DAY:
        raise ValueError("not a cursor issued by this service: sequence number out of range")
    return day, seq


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
    # A patient has few records: read them in date order and apply the title rule here.
    post_filter = bool(words) and patient_index is not None
    dated_fts = bool(words) and not post_filter and conn.dialect.name == "sqlite"
    if words and not post_filter and not dated_fts:
        cond = title_condition(conn.dialect.name, q or "")
        assert cond is not None
        conds.append(cond)
    if cursor:
        day, seq = decode_cursor(cursor)
        conds.append(or_(records.c.document_date < day, and_(records.c.document_date == day, records.c.seq < seq)))
    base = select(records, versions.c.size, versions.c.sha256)
    joined = records.join(
        versions, and_(versions.c.record_id == records.c.record_id, versions.c.version == records.c.current_version)
    )
    if dated_fts:
        # Matches come out of the index newest first; dates and cursor bound its rowid range.
        one = facilities[0] if facilities is not None and len(facilities) == 1 else None
        if date_from is not None:
            conds.append(fts.c.rowid >= date_key(date_from))
        if date_to is not None:
            conds.append(fts.c.rowid <= date_key(date_to, KEY_DAY - 1))  # date_to + 1 day overflows on 9999-12-31
        if cursor:
            conds.append(fts.c.rowid < date_key(day, seq))

        def dated(match: str) -> Select[Any]:
            return (
                base.select_from(fts.join(joined, records.c.seq == fts.c.rowid % KEY_DAY))
                .where(and_(*conds, fts.c.records_fts.op("MATCH")(match)))
                .order_by(fts.c.rowid.desc())
            )

        if not _fts_shortened(words):
            return _page(list(conn.execute(dated(_fts_match(words, one, False)).limit(limit + 1))), limit)
        # Stream candidates of the shortened prefixes and check the whole words on the title; if
        # they are mostly other words (a rare word sharing a common prefix), ask for the whole words.
        rows = []
        result = conn.execute(dated(_fts_match(words, one, True)))
        try:
            for scanned, row in enumerate(result, 1):
                if title_matches("sqlite", row.title, words):
                    rows.append(row)
                    if len(rows) > limit:
                        return _page(rows, limit)
                if scanned >= FTS_CANDIDATE_BUDGET:
                    break
            else:
                return _page(rows, limit)
        finally:
            result.close()
        return _page(list(conn.execute(dated(_fts_match(words, one, False)).limit(limit + 1))), limit)
    newest_first = (records.c.document_date.desc(), records.c.seq.desc())
    if words and not post_filter:
        # PostgreSQL: pick the page's keys first (an index-only walk of ix_records_date_title, or
        # the trigram index for rare words), then read those rows only.
        keys = select(records.c.seq).where(and_(*conds)).order_by(*newest_first).limit(limit + 1).subquery()
        stmt = base.select_from(joined.join(keys, keys.c.seq == records.c.seq)).order_by(*newest_first)
        return _page(list(conn.execute(stmt)), limit)
    stmt = (
        base.select_from(joined).where(and_(*conds)).order_by(*newest_first).limit(None if post_filter else limit + 1)
    )
    if post_filter:
        rows = []
        result = conn.execute(stmt)
        try:
            for row in result:
                if title_matches(conn.dialect.name, row.title, words):
                    rows.append(row)
                    if len(rows) > limit:
                        break
        finally:
            result.close()
        return _page(rows, limit)
    return _page(list(conn.execute(stmt)), limit)


def _page(rows: list[Row[Any]], limit: int) -> tuple[list[Row[Any]], str | None]:
    """At most `limit` rows and the cursor of the next page (rows holds limit + 1 when there is one)."""
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


def least_checked(conn: Connection, limit: int) -> list[Row[Any]]:
    """The `limit` committed versions to check next: those whose last check failed (so a restored
    one clears at the next run), never checked, then checked longest ago. A fixity job run with a
    batch size cycles through the whole archive."""
    failed_first = case((versions.c.fixity_ok.is_(False), 0), else_=1)
    return list(
        conn.execute(
            select(versions)
            .where(versions.c.state == "committed")
            .order_by(
                failed_first, versions.c.fixity_checked_at.asc().nulls_first(), versions.c.record_id, versions.c.version
            )
            .limit(limit)
        )
    )


def fixity_failures(conn: Connection) -> int:
    """Committed versions whose last fixity check failed (the alert's gauge; survives restarts)."""
    return int(
        conn.execute(
            select(func.count()).where(and_(versions.c.state == "committed", versions.c.fixity_ok.is_(False)))
        ).scalar()
        or 0
    )


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
    "store_sync",
    "update",
    "versions",
]
