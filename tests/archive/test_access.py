"""Tokens, roles, facilities, break-glass — and that every decision is in the audit chain."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from archive_service.auth import mint_token
from archive_service.crypto import open_text

from .conftest import Api, administrative, medical


def _entries(api: Api) -> list[dict]:
    audit = api.client.app.state.archive.audit  # type: ignore[attr-defined]
    wal = audit.wal_path.read_text().splitlines()
    flushed = []
    store = audit.store
    for key in sorted(store.list_keys(store.audit, "chain/")):
        flushed += store.read_all(store.audit, key).decode().splitlines()
    by_seq = {e["seq"]: e for e in map(json.loads, flushed + wal)}
    return [by_seq[k] for k in sorted(by_seq)]


def test_missing_and_bad_tokens_are_401_and_audited(api: Api) -> None:
    rid = api.ingest(b"x", medical()).json()["record_id"]
    cases = {
        "none": {},
        "garbage": {"Authorization": "Bearer not.a.jwt"},
        "expired": {
            "Authorization": "Bearer " + mint_token(api.settings, "bob", ["archivist"], None, ttl_seconds=-120)
        },
        "audience": {
            "Authorization": "Bearer " + mint_token(api.settings, "bob", ["archivist"], None, aud="someone-else")
        },
        "issuer": {
            "Authorization": "Bearer " + mint_token(api.settings, "bob", ["archivist"], None, iss="https://evil")
        },
        "nbf": {
            "Authorization": "Bearer "
            + mint_token(api.settings, "bob", ["archivist"], None, nbf=int(time.time()) + 3600)
        },
    }
    foreign = ec.generate_private_key(ec.SECP256R1())
    cases["foreign-key"] = {
        "Authorization": "Bearer "
        + jwt.encode(
            {
                "sub": "eve",
                "iss": api.settings.jwt_issuer,
                "aud": api.settings.jwt_audience,
                "exp": int(time.time()) + 60,
                "roles": ["archivist"],
            },
            foreign,
            algorithm="ES256",
        )
    }
    for name, headers in cases.items():
        r = api.client.get(f"/records/{rid}", headers=headers)
        assert r.status_code == 401, (name, r.text)
    denied = [e for e in _entries(api) if e["path"] == f"/records/{rid}" and e["status"] == 401]
    assert len(denied) == len(cases) and all(e["outcome"] == "denied" for e in denied)


def test_roles_and_facility_rules(api: Api) -> None:
    med = api.ingest(b"medical bytes", medical(facility="hu-tunis-nord")).json()["record_id"]
    adm = api.ingest(b"admin bytes", administrative(facility="hr-ariana")).json()["record_id"]
    own = api.token("clinician", sub="dr-own", facility="hu-tunis-nord")
    other = api.token("clinician", sub="dr-other", facility="hr-ariana")
    assert api.client.get(f"/records/{med}/content", headers=own).content == b"medical bytes"
    # a clinician reads neither another facility's medical record without justification...
    r = api.client.get(f"/records/{med}/content", headers=other)
    assert r.status_code == 403 and "X-Access-Justification" in r.json()["detail"]
    # ...nor an administrative record of another facility, even with one
    assert (
        api.client.get(
            f"/records/{adm}", headers={**own, "X-Access-Justification": "emergency transfer of patient"}
        ).status_code
        == 403
    )
    # clinicians cannot ingest; auditors and administrators see metadata but not content
    assert api.ingest(b"x", medical(), headers=own).status_code == 403
    for role in ("auditor", "administrator"):
        h = api.token(role, sub=f"{role}-1")
        assert api.client.get(f"/records/{med}", headers=h).status_code == 200
        assert api.client.get(f"/records/{med}/content", headers=h).status_code == 403
    assert api.client.get("/audit/flagged", headers=own).status_code == 403
    assert api.client.get(f"/records/{med}", headers=api.token("nurse")).status_code == 403
    entries = [e for e in _entries(api) if e.get("record_id") == med and e["status"] == 403]
    assert {e["actor"] for e in entries} >= {"dr-other", "auditor-1", "administrator-1"}


def test_break_glass_is_allowed_recorded_and_flagged(api: Api) -> None:
    med = api.ingest(b"urgent", medical(facility="hu-tunis-nord", patient_id="PAT-BG-1")).json()["record_id"]
    other = {
        **api.token("clinician", sub="dr-er", facility="hr-ariana"),
        "X-Access-Justification": "patient unconscious in emergency room",
    }
    r = api.client.get(f"/records/{med}/content", headers=other)
    assert r.status_code == 200 and r.content == b"urgent"
    r = api.client.post("/search", json={"patient_id": "PAT-BG-1"}, headers=other)
    assert [x["record_id"] for x in r.json()["results"]] == [med]
    # without justification the same clinician's patient search stays in their facility
    r = api.client.post(
        "/search", json={"patient_id": "PAT-BG-1"}, headers=api.token("clinician", sub="dr-er", facility="hr-ariana")
    )
    assert r.json()["results"] == []
    flagged = api.client.get("/audit/flagged", headers=api.token("auditor", sub="aud")).json()["entries"]
    mine = [f for f in flagged if f["actor"] == "dr-er"]
    assert len(mine) == 2 and all("unconscious" in f["justification"] for f in mine)
    assert any(f["record_id"] == med and f["path"].endswith("/content") for f in mine)
    chain = [e for e in _entries(api) if e["actor"] == "dr-er" and e["flagged"]]
    assert len(chain) == 2
    # The trail lives in the store, where store administrators can read it: the justification
    # is sealed there (the keyring opens it), and kept readable for auditors in the catalog.
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    assert all("unconscious" not in json.dumps(e) for e in chain)
    assert [open_text(archive.audit_text_key, e["sealed"]) for e in chain] == [
        {"justification": "patient unconscious in emergency room"}
    ] * 2


def test_correction_reason_is_sealed_in_the_trail(api: Api) -> None:
    rid = api.ingest(b"v1", medical(patient_id="PAT-CR-1")).json()["record_id"]
    r = api.ingest(b"v2", medical(patient_id="PAT-CR-1"), record_id=rid, reason="dosage of insulin was wrong")
    assert r.status_code == 201, r.text
    entry = [e for e in _entries(api) if e["path"] == f"/records/{rid}/versions" and e["status"] == 201][-1]
    assert "insulin" not in json.dumps(entry) and entry["reason"] is None
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    assert open_text(archive.audit_text_key, entry["sealed"]) == {"correction_reason": "dosage of insulin was wrong"}
    hist = api.client.get(f"/records/{rid}/versions", headers=api.token("auditor", sub="aud")).json()
    assert hist[1]["correction_reason"] == "dosage of insulin was wrong"  # the catalog keeps it for auditors
    # a foreign keyring does not open it
    with pytest.raises(ValueError, match="does not open"):
        open_text(b"k" * 32, entry["sealed"])


def test_hold_reason_is_sealed_in_the_trail(api: Api) -> None:
    rid = api.ingest(b"x", medical(patient_id="PAT-HOLD-1")).json()["record_id"]
    reason = "litigation: family of Mr Ben Salah v. hospital"
    r = api.client.post(f"/records/{rid}/hold", json={"reason": reason}, headers=api.token("archivist"))
    assert r.status_code == 200, r.text
    entry = [e for e in _entries(api) if e["path"] == f"/records/{rid}/hold" and e["status"] == 200][-1]
    assert "Ben Salah" not in json.dumps(entry) and entry["reason"] is None
    archive = api.client.app.state.archive  # type: ignore[attr-defined]
    assert open_text(archive.audit_text_key, entry["sealed"]) == {"hold_reason": reason}
    hold = api.client.get(f"/records/{rid}/hold", headers=api.token("auditor", sub="aud")).json()
    assert hold["history"][0]["reason"] == reason  # the catalog keeps it for those allowed to read it


def test_docs_and_health(api: Api) -> None:
    assert api.client.get("/healthz").json()["status"] == "ok"
    assert api.client.get("/readyz").json()["checks"] == {"store": "ok", "catalog": "ok"}
    spec = api.client.get("/openapi.json").json()
    assert "/records" in spec["paths"] and "/search" in spec["paths"] and "/disposition/requests" in spec["paths"]
    assert api.client.get("/docs").status_code == 200
    text = api.client.get("/metrics").text
    assert "hdc_archive_ingest_bytes_total" in text and "hdc_archive_request_seconds_bucket" in text
    assert 'hdc_archive_errors_total{kind="unauthenticated"}' in text
