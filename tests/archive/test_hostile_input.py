"""Hostile or careless input that once reached the server as an exception (a 500) or was stored
wrong: each case must now get a 4xx naming what is wrong, or be stored intact.

The `papi` fixture lets a server exception become the 500 a real client sees; `answer()` re-sends
a 500'd request through a raising client so the assertion message carries the server's exception.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient

from archive_service import catalogdb as db
from archive_service.app import create_app
from archive_service.auth import local_kid, local_signing_key
from archive_service.deps import header_text
from archive_service.devstore import DevStore

from .conftest import Api, administrative, make_settings

_APP: list[FastAPI] = []


@pytest.fixture(scope="module")
def papi(devstore: DevStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = make_settings(devstore, tmp_path_factory.mktemp("probe-state"))
    app = create_app(settings)
    _APP[:] = [app]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, settings)


def answer(r: Any) -> tuple[int, str]:
    """(status, body excerpt); for a 500, the server's exception instead of the body."""
    if r.status_code >= 500:
        req = r.request
        try:
            TestClient(_APP[0]).request(req.method, str(req.url), headers=req.headers, content=req.content)
        except Exception as exc:
            return r.status_code, repr(exc)[:300]
    return r.status_code, r.text[:300]


def _cursor(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _json_post(papi: Api, path: str, raw: bytes, method: str = "POST") -> Any:
    headers = {**papi.token("archivist"), "Content-Type": "application/json"}
    return papi.client.request(method, path, content=raw, headers=headers)


# --- records.py parse_metadata: json.loads RecursionError is not a ValueError
def test_deeply_nested_metadata_header_is_422(papi: Api) -> None:
    rid = papi.ingest(b"base", administrative()).json()["record_id"]
    for path, extra in (("/records", {}), (f"/records/{rid}/versions", {"X-Correction-Reason": "fix"})):
        h = {
            **papi.token("archivist"),
            "X-Archive-Metadata": "[" * 3000,
            "X-Content-SHA256": hashlib.sha256(b"x").hexdigest(),
            **extra,
        }
        r = papi.client.post(path, content=b"x", headers=h)
        assert r.status_code == 422, (path, answer(r))


# --- catalogdb.decode_cursor: TypeError / OverflowError escape the `except ValueError` in search.py
@pytest.mark.parametrize(
    "payload",
    [5, [1, 2], ["2024-01-01", None], ["2024-01-01", 1e400], ["2024-01-01", 10**30]],
    ids=["int", "ints", "null-seq", "inf-seq", "huge-seq"],
)
def test_forged_cursor_is_422(papi: Api, payload: object) -> None:
    papi.ingest(b"c", administrative(title="Cursor probe budget"))
    for body in ({"cursor": _cursor(payload)}, {"q": "budget", "cursor": _cursor(payload)}):
        r = papi.client.post("/search", json=body, headers=papi.token("archivist"))
        assert r.status_code == 422, (body, answer(r))


# --- catalogdb.search: date_to + timedelta(days=1) overflows for 9999-12-31
def test_title_search_up_to_the_last_date_is_200(papi: Api) -> None:
    papi.ingest(b"d", administrative(title="Budget maxdate"))
    r = papi.client.post("/search", json={"q": "budget", "date_to": "9999-12-31"}, headers=papi.token("archivist"))
    assert r.status_code == 200, answer(r)


# --- unbounded integers reach SQLite (OverflowError: Python int too large to convert to SQLite INTEGER)
def test_huge_version_numbers_are_404_or_422(papi: Api) -> None:
    rid = papi.ingest(b"v", administrative()).json()["record_id"]
    tok = papi.token("archivist")
    big = "99999999999999999999"
    for path in (f"/records/{rid}/versions/{big}", f"/records/{rid}/content?version={big}"):
        r = papi.client.get(path, headers=tok)
        assert r.status_code in (404, 422), (path, answer(r))


def test_flagged_with_huge_since_seq_is_not_500(papi: Api) -> None:
    r = papi.client.get("/audit/flagged?since_seq=99999999999999999999", headers=papi.token("auditor"))
    assert r.status_code in (200, 422), answer(r)


# --- service.Archive.version: `version or rec.current_version` treats version 0 as "current"
def test_version_zero_is_not_the_current_version(papi: Api) -> None:
    rid = papi.ingest(b"v0", administrative()).json()["record_id"]
    r = papi.client.get(f"/records/{rid}/versions/0", headers=papi.token("archivist"))
    assert r.status_code in (404, 422), answer(r)


# --- models.RetentionIn._aware keeps the client's offset; SQLite DateTime drops it (catalog != store)
def test_retention_with_offset_is_the_same_instant_in_catalog_and_store(papi: Api) -> None:
    tok = papi.token("archivist")
    rid = papi.ingest(b"r", administrative()).json()["record_id"]
    current = datetime.fromisoformat(papi.client.get(f"/records/{rid}", headers=tok).json()["retain_until"])
    target = current.replace(year=current.year + 1).astimezone(UTC)
    local = target.astimezone(timezone(timedelta(hours=-5)))  # same instant, written in UTC-5
    r = papi.client.put(
        f"/records/{rid}/retention", json={"retain_until": local.isoformat(), "reason": "litigation"}, headers=tok
    )
    assert r.status_code == 200, answer(r)
    archive = papi.client.app.state.archive  # type: ignore[attr-defined]
    with archive.engine.connect() as conn:
        v = db.get_version(conn, rid, 1)
    in_store = archive.store.retention(archive.store.records, v.object_key, v.s3_version_id)
    in_catalog = datetime.fromisoformat(papi.client.get(f"/records/{rid}", headers=tok).json()["retain_until"])
    assert in_store == target
    assert in_catalog == in_store, ("catalog", in_catalog, "store", in_store)


def test_retention_near_year_9999_with_an_offset_is_not_500(papi: Api) -> None:
    rid = papi.ingest(b"r2", administrative()).json()["record_id"]
    r = papi.client.put(
        f"/records/{rid}/retention",
        json={"retain_until": "9999-12-31T23:59:59-14:00", "reason": "xyz"},
        headers=papi.token("archivist"),
    )
    assert r.status_code in (409, 422), answer(r)


# --- FastAPI's default 422 handler echoes `input`; a lone surrogate or an infinite float cannot be
# --- rendered as JSON, so the validation error itself becomes a 500 (every JSON-body endpoint)
@pytest.mark.parametrize(
    ("path", "method", "raw"),
    [
        ("/search", "POST", b'{"q": "\\ud800 scanner"}'),
        ("/search", "POST", b'{"limit": 1e400}'),
        ("/records/{rid}/hold", "POST", b'{"reason": "\\ud800abc"}'),
        ("/records/{rid}/retention", "PUT", b'{"retain_until": 1e400, "reason": "xyz"}'),
        ("/disposition/requests", "POST", b'{"record_ids": ["x"], "reason": "\\udfffabc"}'),
    ],
    ids=["search-q-surrogate", "search-limit-inf", "hold-reason-surrogate", "retention-inf", "disposition-surrogate"],
)
def test_unrenderable_invalid_input_is_422(papi: Api, path: str, method: str, raw: bytes) -> None:
    rid = papi.ingest(b"u", administrative()).json()["record_id"]
    r = _json_post(papi, path.format(rid=rid), raw, method)
    assert r.status_code == 422, answer(r)


# --- models.SearchQuery.patient_id is an unconstrained str; crypto.patient_index encodes it to UTF-8
def test_search_patient_id_with_lone_surrogate_is_422(papi: Api) -> None:
    r = _json_post(papi, "/search", b'{"patient_id": "\\ud800"}')
    assert r.status_code == 422, answer(r)


# --- auth.TokenVerifier._verify iterates the roles claim without checking its type
@pytest.mark.parametrize("roles", [None, 5, [["archivist"]], {"archivist": 1}], ids=["null", "int", "nested", "object"])
def test_token_with_malformed_roles_claim_is_401_or_403(papi: Api, roles: object) -> None:
    rid = papi.ingest(b"t", administrative()).json()["record_id"]
    s = papi.settings
    key = local_signing_key(s)
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "x", "iss": s.jwt_issuer, "aud": s.jwt_audience, "exp": now + 60, s.jwt_roles_claim: roles}
    token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": local_kid(key)})
    r = papi.client.get(f"/records/{rid}", headers={"Authorization": "Bearer " + token})
    assert r.status_code in (401, 403), answer(r)  # never 200: an object's keys grant no role


# --- records.parse_metadata: a UTF-8 header is read as latin-1 and stored as mojibake (locked forever)
def test_non_ascii_metadata_header_is_refused_or_kept_intact(papi: Api) -> None:
    h = {
        **papi.token("archivist"),
        "X-Archive-Metadata": json.dumps(administrative(title="Budget prévisionnel"), ensure_ascii=False).encode(),
        "X-Content-SHA256": hashlib.sha256(b"u").hexdigest(),
    }
    r = papi.client.post("/records", content=b"u", headers=h)  # type: ignore[arg-type]
    assert r.status_code == 201, answer(r)
    rid = r.json()["record_id"]
    got = papi.client.get(f"/records/{rid}", headers=papi.token("archivist")).json()
    assert got["title"] == "Budget prévisionnel"


def test_header_bytes_that_are_not_utf8_are_a_422_naming_the_header() -> None:
    """(Starlette's test client re-encodes header values as UTF-8, so this is checked on the helper.)"""
    latin1 = "Budget \xe9\xff"  # how Starlette hands over the bytes E9 FF
    with pytest.raises(RequestValidationError) as err:
        header_text(latin1, "X-Archive-Metadata")
    assert err.value.errors()[0]["loc"] == ("header", "X-Archive-Metadata")
    assert (
        header_text("Budget pr\xc3\xa9visionnel", "X") == "Budget prévisionnel"
    )  # UTF-8 bytes, as Starlette gives them
    assert header_text("plain", "X") == "plain"


def test_validation_errors_name_the_field_without_echoing_the_value(papi: Api) -> None:
    r = _json_post(papi, "/search", b'{"patient_id": 123456789, "limit": "many"}')
    assert r.status_code == 422, answer(r)
    fields = {tuple(d["loc"]) for d in r.json()["detail"]}
    assert fields == {("body", "patient_id"), ("body", "limit")}
    assert "123456789" not in r.text and "input" not in r.text
