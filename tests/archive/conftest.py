"""Fixtures: one real SeaweedFS store per session, a fresh archive (own buckets, state dir) per module."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from archive_service.app import create_app
from archive_service.auth import mint_token
from archive_service.devstore import DevStore, start_devstore
from archive_service.settings import ArchiveSettings


@pytest.fixture(scope="session")
def devstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStore]:
    work = tmp_path_factory.mktemp("seaweed")
    store = start_devstore(work)
    try:
        yield store
    finally:
        store.stop()
        shutil.rmtree(work, ignore_errors=True)


def make_settings(store: DevStore, state: Path, **over: Any) -> ArchiveSettings:
    tag = uuid.uuid4().hex[:10]
    base: dict[str, Any] = {
        "state_dir": state,
        "s3_endpoint": store.endpoint,
        "s3_access_key": store.access_key,
        "s3_secret_key": store.secret_key,
        "bucket_records": f"rec-{tag}",
        "bucket_audit": f"aud-{tag}",
        "bucket_default_retention_days": 1,
        "min_retention": "2s",
        "audit_fsync": False,
        "audit_flush_seconds": 0.5,
        "chunk_size": 65536,
        "part_chunks": 80,  # 5 MiB parts: a few-MB record already takes the multipart path
        "upload_concurrency": 2,
        "max_record_bytes": 32 * 1024 * 1024,
    }
    base.update(over)
    return ArchiveSettings(**base)


class Api:
    """A TestClient plus token helpers."""

    def __init__(self, client: TestClient, settings: ArchiveSettings) -> None:
        self.client = client
        self.settings = settings

    def token(self, *roles: str, sub: str = "alice", facility: str | None = None, **extra: Any) -> dict[str, str]:
        return {"Authorization": "Bearer " + mint_token(self.settings, sub, list(roles), facility, **extra)}

    def ingest(
        self,
        data: bytes,
        meta: dict[str, Any],
        headers: dict[str, str] | None = None,
        sha: str | None = None,
        record_id: str | None = None,
        reason: str = "fix",
    ) -> Any:
        h = {
            **(headers or self.token("archivist")),
            "X-Archive-Metadata": json.dumps(meta),
            "X-Content-SHA256": sha or hashlib.sha256(data).hexdigest(),
            "Content-Type": "application/pdf",
        }
        if record_id:
            h["X-Correction-Reason"] = reason
            return self.client.post(f"/records/{record_id}/versions", content=data, headers=h)
        return self.client.post("/records", content=data, headers=h)


def medical(**over: Any) -> dict[str, Any]:
    meta = {
        "record_class": "medical",
        "subclass": "consultation",
        "facility": "hu-tunis-nord",
        "patient_id": "TN-1234567",
        "document_date": "2024-03-01",
        "title": "Compte rendu de consultation cardiologie",
        "author": "Dr Ben Salah",
        "language": "fr",
        "tags": ["cardiology"],
    }
    meta.update(over)
    return meta


def administrative(**over: Any) -> dict[str, Any]:
    meta = {
        "record_class": "administrative",
        "subclass": "finance",
        "facility": "hr-ariana",
        "document_date": "2023-11-15",
        "title": "Budget prévisionnel 2024",
        "author": "Direction financière",
        "language": "fr",
        "tags": [],
    }
    meta.update(over)
    return meta


@pytest.fixture(scope="module")
def api(devstore: DevStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = make_settings(devstore, tmp_path_factory.mktemp("archive-state"))
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)
