"""SQLite's date-keyed title index: order, date ranges, pagination across equal dates, consistency
under updates and deletes, prefix handling, and migration of a catalog built with the older index."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, text, update

from archive_service import catalogdb as db


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = db.make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    db.create_schema(eng)
    yield eng
    eng.dispose()


def _rows(titles: list[str], days: list[date], facility: str = "hu-tunis-nord") -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "record_id": str(uuid.uuid4()),
            "status": "active",
            "record_class": "medical",
            "subclass": "imaging",
            "facility": facility,
            "patient_index": None,
            "document_date": day,
            "title": title,
            "author": "Dr X",
            "language": "fr",
            "tags": "[]",
            "content_type": "application/pdf",
            "current_version": 1,
            "retain_until": now + timedelta(days=1),
            "legal_hold": False,
            "created_at": now,
            "created_by": "t",
        }
        for title, day in zip(titles, days, strict=True)
    ]


def _insert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    versions = [
        {
            "record_id": r["record_id"],
            "version": 1,
            "state": "committed",
            "object_key": "k",
            "owner": "o",
            "size": 1,
            "sha256": "0" * 64,
            "header_len": 1,
            "key_id": "k",
            "wrapped_dek": b"x",
            "prefix": b"y",
            "chunk_size": 1,
            "meta": "{}",
            "retain_until": r["retain_until"],
            "created_at": r["created_at"],
            "created_by": "t",
        }
        for r in rows
    ]
    with engine.begin() as conn:
        conn.execute(db.records.insert(), rows)
        conn.execute(db.versions.insert(), versions)


def _all_pages(engine: Engine, limit: int = 4, **query: Any) -> list[str]:
    got: list[str] = []
    cursor = None
    with engine.connect() as conn:
        while True:
            page, cursor = db.search(conn, limit=limit, cursor=cursor, **query)
            got += [r.record_id for r in page]
            if cursor is None:
                return got


def _reference(engine: Engine, words: list[str], lo: date | None = None, hi: date | None = None) -> list[str]:
    with engine.connect() as conn:
        rows = list(conn.execute(db.select(db.records).where(db.records.c.status == "active")))
    rows.sort(key=lambda r: (r.document_date, r.seq), reverse=True)
    return [
        r.record_id
        for r in rows
        if db.title_matches("sqlite", r.title, words)
        and (lo is None or r.document_date >= lo)
        and (hi is None or r.document_date <= hi)
    ]


def _assert_index_consistent(engine: Engine) -> None:
    """One index row per record, keyed by (document date, seq), holding the record's title."""
    with engine.connect() as conn:
        want = {
            db.date_key(r.document_date, r.seq): (r.title, r.facility)
            for r in conn.execute(
                db.select(db.records.c.seq, db.records.c.document_date, db.records.c.title, db.records.c.facility)
            )
        }
        have = {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT rowid, title, facility FROM records_fts"))}
        assert conn.execute(text("INSERT INTO records_fts(records_fts) VALUES('integrity-check')")) is not None
    assert have == want


def test_matches_come_newest_first_with_ties_broken_by_seq(engine: Engine) -> None:
    days = [date(2019, 1, 1) + timedelta(days=(i * 7) % 5) for i in range(30)]  # six records per day
    titles = ["Compte rendu de consultation" if i % 3 else "Compte rendu opératoire" for i in range(30)]
    _insert(engine, _rows(titles, days))
    _assert_index_consistent(engine)
    for q, limit in (("compte", 4), ("compte", 6), ("consultation", 5), ("rendu opér", 1), ("compte", 100)):
        assert _all_pages(engine, limit=limit, q=q) == _reference(engine, q.split()), (q, limit)
    # the index key orders exactly like (document_date, seq)
    assert db.date_key(date(2019, 1, 2), 1) > db.date_key(date(2019, 1, 1), 2**32 - 1)


def test_date_ranges_are_inclusive_and_bound_the_index(engine: Engine) -> None:
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(40)]
    _insert(engine, _rows(["Bilan sanguin"] * 40, days))
    for lo, hi in (
        (date(2020, 1, 10), date(2020, 1, 10)),
        (date(2020, 1, 5), date(2020, 1, 20)),
        (None, date(2020, 1, 3)),
    ):
        got = _all_pages(engine, limit=3, q="bilan", date_from=lo, date_to=hi)
        assert got == _reference(engine, ["bilan"], lo, hi) and got


def test_updates_and_deletes_keep_the_index_in_step(engine: Engine) -> None:
    rows = _rows(["Radiographie du genou", "Radiographie pulmonaire", "Échographie abdominale"], [date(2021, 5, 1)] * 3)
    _insert(engine, rows)
    a, b, c = (r["record_id"] for r in rows)
    with engine.begin() as conn:  # a correction changes the title and the document date
        conn.execute(
            update(db.records)
            .where(db.records.c.record_id == a)
            .values(title="Scanner cérébral", document_date=date(2022, 1, 1))
        )
        conn.execute(update(db.records).where(db.records.c.record_id == b).values(facility="hr-ariana"))
        conn.execute(delete(db.versions).where(db.versions.c.record_id == c))
        conn.execute(delete(db.records).where(db.records.c.record_id == c))
    _assert_index_consistent(engine)
    with engine.begin() as conn:  # the date alone moves the record in the index order
        conn.execute(update(db.records).where(db.records.c.record_id == b).values(document_date=date(2023, 1, 1)))
    _assert_index_consistent(engine)
    assert _all_pages(engine, q="radiographie", date_to=date(2022, 12, 31)) == []
    assert _all_pages(engine, q="radiographie", date_from=date(2023, 1, 1)) == [b]
    assert _all_pages(engine, q="radiographie") == [b]
    assert _all_pages(engine, q="scanner") == [a]
    assert _all_pages(engine, q="echographie") == []
    assert _all_pages(engine, q="radio", facilities=["hr-ariana"]) == [b]
    assert _all_pages(engine, q="radio", facilities=["hu-tunis-nord"]) == []
    with engine.begin() as conn:  # destroyed records stay in the catalog but are not found
        conn.execute(update(db.records).where(db.records.c.record_id == b).values(status="destroyed"))
    assert _all_pages(engine, q="radiographie") == []


def test_shortened_prefixes_and_a_rare_word_behind_a_common_prefix(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'dermatoses' is looked up as 'dermat'*: 450 candidates are 'dermatologie', so the search gives
    up on the candidates after FTS_CANDIDATE_BUDGET and asks for the whole word."""
    n = 450
    titles = ["Dermatologie suivi"] * n + ["Dermatoses chroniques", "Lettre IRM", "Irrigation"]
    days = [date(2015, 1, 1) + timedelta(days=i % 97) for i in range(n)] + [date(2014, 1, 1)] * 3
    _insert(engine, _rows(titles, days))
    for q in ("dermatoses", "dermato", "dermatologie suivi", "derm", "d", "irm", "ir", "i", "lettre irm"):
        want = _reference(engine, q.split())
        assert _all_pages(engine, limit=50, q=q) == want and want, q
    monkeypatch.setattr(db, "FTS_CANDIDATE_BUDGET", 10_000)  # no fallback: same answers
    assert _all_pages(engine, limit=50, q="dermatoses") == _reference(engine, ["dermatoses"])


_OLD_SCHEMA = [  # the title index of catalogs created before the date-keyed one
    "CREATE VIRTUAL TABLE records_fts USING fts5(title, facility, content='records', content_rowid='seq', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE records_fts_vocab USING fts5vocab(records_fts, 'row')",
    "CREATE TRIGGER records_fts_ai AFTER INSERT ON records BEGIN "
    "INSERT INTO records_fts(rowid, title, facility) VALUES (new.seq, new.title, new.facility); END",
    "CREATE TRIGGER records_fts_ad AFTER DELETE ON records BEGIN INSERT INTO records_fts(records_fts, rowid, "
    "title, facility) VALUES('delete', old.seq, old.title, old.facility); END",
    "CREATE TRIGGER records_fts_au AFTER UPDATE OF title, facility ON records BEGIN "
    "INSERT INTO records_fts(records_fts, rowid, title, facility) VALUES('delete', old.seq, old.title, old.facility); "
    "INSERT INTO records_fts(rowid, title, facility) VALUES (new.seq, new.title, new.facility); END",
]


def test_a_catalog_with_the_older_index_is_migrated(tmp_path: Path) -> None:
    eng = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        db.metadata.create_all(eng)
        with eng.begin() as conn:
            for sql in _OLD_SCHEMA:
                conn.execute(text(sql))
        rows = _rows(
            [f"Compte rendu {i}" for i in range(20)], [date(2010, 1, 1) + timedelta(days=i % 4) for i in range(20)]
        )
        _insert(eng, rows)
        db.create_schema(eng)  # what the service does at start
        with eng.connect() as conn:
            assert (
                conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'records_fts'")).scalar()
                == db.FTS_TABLE_SQL
            )
            assert conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'records_fts_vocab'")).first() is None
        _assert_index_consistent(eng)
        assert (
            _all_pages(eng, limit=3, q="compte") == _reference(eng, ["compte"])
            and len(_reference(eng, ["compte"])) == 20
        )
        _insert(eng, _rows(["Compte rendu tardif"], [date(2011, 1, 1)]))  # the new triggers are in place
        assert _all_pages(eng, limit=1, q="tardif")[0] == _reference(eng, ["compte"])[0]
        _assert_index_consistent(eng)
        db.create_schema(eng)  # idempotent: nothing rebuilt a second time
        _assert_index_consistent(eng)
    finally:
        eng.dispose()


def test_title_words_are_cut_like_the_index_cuts_them(engine: Engine) -> None:
    """Underscores, apostrophes and hyphens separate words in the index and in the title check alike."""
    rows = _rows(["IRM_cérébrale de contrôle", "Lettre d'échographie", "Compte-rendu"], [date(2022, 2, 2)] * 3)
    _insert(engine, rows)
    a, b, c = (r["record_id"] for r in rows)
    assert _all_pages(engine, q="cereb") == [a]  # shortened to 'cere'*, then checked on the title
    assert _all_pages(engine, q="cérébrale IRM") == [a]
    assert _all_pages(engine, q="echogra") == [b]
    assert _all_pages(engine, q="rendu") == [c]
    assert _all_pages(engine, q="IRM_céré") == [a]  # the query is cut the same way
