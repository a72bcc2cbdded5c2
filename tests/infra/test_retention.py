"""Against a real S3 store (SeaweedFS, standing in for MinIO): the default-retention provider, and
the archive service's own traffic on buckets provisioned as the program provisions them, checked
request by request against the IAM policy the program gives the archive's identity."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import urllib3
from minio import Minio
from minio.error import S3Error

from archive_service.devstore import DevStore, start_devstore
from archive_service.settings import ArchiveSettings
from archive_service.store import ObjectStore, StoreRefused
from infra.buckets import BucketSpec, archive_buckets
from infra.retention import BucketRetentionProvider
from infra.storage import archive_policy_document
from inventory.loader import load_catalog

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStore]:
    s = start_devstore(tmp_path_factory.mktemp("infra-s3"))
    try:
        yield s
    finally:
        s.stop()


def _props(store: DevStore, bucket: str, **kw: Any) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "mode": "COMPLIANCE",
        "years": 0,
        "days": 0,
        "endpoint": store.endpoint,
        "access_key": store.access_key,
        "secret_key": store.secret_key,
        "secure": False,
        "region": "",
        **kw,
    }


def _client(store: DevStore) -> Minio:
    return Minio(store.endpoint, access_key=store.access_key, secret_key=store.secret_key, secure=False)


def test_create_sets_compliance_default_and_objects_are_locked(store: DevStore) -> None:
    client = _client(store)
    client.make_bucket("medical-20y", object_lock=True)
    provider = BucketRetentionProvider()
    result = provider.create(_props(store, "medical-20y", years=20))
    assert result.id == "medical-20y"
    assert result.outs["applied_mode"] == "COMPLIANCE"
    assert result.outs["applied_duration"] == "20 Years"
    put = client.put_object("medical-20y", "record.pdf", io.BytesIO(b"%PDF record"), 11)
    retention = client.get_object_retention("medical-20y", "record.pdf", version_id=put.version_id)
    assert retention is not None and retention.mode == "COMPLIANCE"
    with pytest.raises(S3Error):
        client.remove_object("medical-20y", "record.pdf", version_id=put.version_id)


def test_update_changes_the_default_and_diff_sees_it(store: DevStore) -> None:
    client = _client(store)
    client.make_bucket("admin-10y", object_lock=True)
    provider = BucketRetentionProvider()
    olds = provider.create(_props(store, "admin-10y", years=10)).outs
    news = _props(store, "admin-10y", years=12)
    diff = provider.diff("admin-10y", olds, news)
    assert diff.changes and not diff.replaces
    assert provider.diff("admin-10y", olds, _props(store, "admin-10y", years=10)).changes is False
    assert provider.update("admin-10y", olds, news).outs["applied_duration"] == "12 Years"
    assert provider.read("admin-10y", news).outs["applied_mode"] == "COMPLIANCE"
    assert provider.diff("admin-10y", olds, _props(store, "other", years=10)).replaces == ["bucket"]


def test_days_as_the_archive_service_speaks_them(store: DevStore) -> None:
    _client(store).make_bucket("days-3650", object_lock=True)
    provider = BucketRetentionProvider()
    outs = provider.create(_props(store, "days-3650", days=3650)).outs
    assert (outs["applied_mode"], outs["applied_duration"]) == ("COMPLIANCE", "3650 Days")
    cfg = _client(store).get_object_lock_config("days-3650")
    assert (cfg.mode, cfg.duration, cfg.duration_unit.upper()) == ("COMPLIANCE", 3650, "DAYS")


def test_refuses_bad_input_and_bad_credentials(store: DevStore) -> None:
    _client(store).make_bucket("ops-5y", object_lock=True)
    provider = BucketRetentionProvider()
    provider.create(_props(store, "ops-5y", years=5))
    with pytest.raises(ValueError, match="retention mode"):
        provider.create(_props(store, "ops-5y", years=1, mode="FOREVER"))
    with pytest.raises(ValueError, match="exactly one of years or days"):
        provider.create(_props(store, "ops-5y", years=1, days=3))
    with pytest.raises(S3Error):
        provider.create(_props(store, "ops-5y", years=1, secret_key="wrong"))
    # nothing above changed the bucket's 5-year default
    cfg = _client(store).get_object_lock_config("ops-5y")
    assert (cfg.mode, cfg.duration) == ("COMPLIANCE", 5)


# -- the archive's requests against the archive's policy ------------------------------------
class RecordingPool:
    """Wraps the SDK's urllib3 pool: every request the archive's client sends is kept."""

    def __init__(self, inner: urllib3.PoolManager) -> None:
        self.inner = inner
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def urlopen(self, method: str, url: str, **kw: Any) -> Any:
        headers = {k.lower(): v for k, v in (kw.get("headers") or {}).items()}
        self.requests.append((method, url, headers))
        return self.inner.urlopen(method, url, **kw)

    def clear(self) -> None:
        self.inner.clear()


def required_actions(method: str, url: str, headers: dict[str, str]) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) an S3 request needs, per AWS's operation -> permission tables.

    Written from the S3 API, not from infra/storage.py's table, so the two check each other.
    """
    parts = urlsplit(url)
    bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
    q = parse_qs(parts.query, keep_blank_values=True)
    if not key:
        arn = f"arn:aws:s3:::{bucket}"
        table = {
            ("HEAD", ""): "s3:ListBucket",
            ("GET", "location"): "s3:GetBucketLocation",
            ("GET", "object-lock"): "s3:GetBucketObjectLockConfiguration",
            ("PUT", "object-lock"): "s3:PutBucketObjectLockConfiguration",
            ("GET", "versioning"): "s3:GetBucketVersioning",
            ("PUT", "versioning"): "s3:PutBucketVersioning",
            ("GET", "encryption"): "s3:GetEncryptionConfiguration",
            ("PUT", "encryption"): "s3:PutEncryptionConfiguration",
            ("DELETE", "encryption"): "s3:PutEncryptionConfiguration",
            ("GET", "uploads"): "s3:ListBucketMultipartUploads",
            ("GET", "versions"): "s3:ListBucketVersions",
            ("GET", ""): "s3:ListBucket",
            ("PUT", ""): "s3:CreateBucket",
            ("DELETE", ""): "s3:DeleteBucket",
            ("PUT", "lifecycle"): "s3:PutLifecycleConfiguration",
            ("PUT", "policy"): "s3:PutBucketPolicy",
            ("POST", "delete"): "s3:DeleteObject",
        }
        sub = next((k for k in q if (method, k) in table), "")
        if (method, sub) not in table:
            raise AssertionError(f"unmapped bucket request {method} {url}")
        return [(table[(method, sub)], arn)]
    arn = f"arn:aws:s3:::{bucket}/{key}"
    lock = []
    if "x-amz-object-lock-mode" in headers or "x-amz-object-lock-retain-until-date" in headers:
        lock.append(("s3:PutObjectRetention", arn))
    if "x-amz-object-lock-legal-hold" in headers:
        lock.append(("s3:PutObjectLegalHold", arn))
    if "x-amz-copy-source" in headers:
        raise AssertionError(f"copy request {url}: add the source's s3:GetObject to the mapping")
    if method in ("PUT", "POST") and "retention" in q:
        return [("s3:PutObjectRetention", arn)]
    if method == "PUT" and "legal-hold" in q:
        return [("s3:PutObjectLegalHold", arn)]
    if method in ("PUT", "POST"):  # PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload
        return [("s3:PutObject", arn), *lock]
    if method == "DELETE":
        if "uploadId" in q:
            return [("s3:AbortMultipartUpload", arn)]
        return [("s3:DeleteObjectVersion" if "versionId" in q else "s3:DeleteObject", arn)]
    if method in ("GET", "HEAD"):
        if "retention" in q:
            return [("s3:GetObjectRetention", arn)]
        if "legal-hold" in q:
            return [("s3:GetObjectLegalHold", arn)]
        if "uploadId" in q:
            return [("s3:ListMultipartUploadParts", arn)]
        return [("s3:GetObjectVersion" if "versionId" in q else "s3:GetObject", arn)]
    raise AssertionError(f"unmapped object request {method} {url}")


def allowed(policy: dict[str, Any], action: str, resource: str) -> bool:
    return any(
        st["Effect"] == "Allow"
        and any(fnmatchcase(action, a) for a in st["Action"])
        and any(fnmatchcase(resource, r) for r in st["Resource"])
        for st in policy["Statement"]
    )


def _archive_store(
    store: DevStore, tmp: Path, records: str, audit: str, days: int
) -> tuple[ObjectStore, RecordingPool]:
    settings = ArchiveSettings(
        state_dir=tmp,
        s3_endpoint=store.endpoint,
        s3_access_key=store.access_key,
        s3_secret_key=store.secret_key,
        bucket_records=records,
        bucket_audit=audit,
        bucket_default_retention_days=days,
    )
    archive = ObjectStore(settings)
    pool = RecordingPool(archive.client._http)
    archive.client._http = pool  # type: ignore[assignment]  # records, then delegates
    return archive, pool


def _provision_as_the_program_does(store: DevStore, specs: list[BucketSpec]) -> None:
    """What ArchiveStorage declares, done with the provisioner's credentials on a real store."""
    client = _client(store)
    provider = BucketRetentionProvider()
    for spec in specs:
        client.make_bucket(spec.name, object_lock=True)
        assert client.get_bucket_versioning(spec.name).status == "Enabled"
        provider.create(_props(store, spec.name, days=spec.default_retention_days))


def test_the_archive_needs_exactly_the_policy_on_provisioned_buckets(store: DevStore, tmp_path: Path) -> None:
    """Every request the archive's ObjectStore sends is allowed by the policy, and every grant is used."""
    specs = archive_buckets(load_catalog("lab"), "hdc-lab-archive-records", "hdc-lab-archive-audit")
    _provision_as_the_program_does(store, specs)
    records, audit = (s.name for s in specs)
    archive, pool = _archive_store(store, tmp_path, records, audit, specs[0].default_retention_days)
    used: set[str] = set()

    def call(name: str, *args: Any, **kw: Any) -> Any:
        used.add(name)
        return getattr(archive, name)(*args, **kw)

    call("ensure_buckets")
    call("ping")
    soon = datetime.now(UTC) + timedelta(seconds=3)
    later = datetime.now(UTC) + timedelta(days=1)
    w = call("put", audit, "chain/a/1-1.jsonl", b'{"seq": 1}', later, "application/x-ndjson")
    upload = call("create_upload", "objects/r1/v000001", soon)
    etag = call("upload_part", "objects/r1/v000001", upload, 1, b"sealed bytes" * 100)
    doc = call("complete_upload", "objects/r1/v000001", upload, [etag])
    pending = call("create_upload", "objects/r2/v000001", later)
    assert [u[1] for u in call("list_uploads", "objects/r2/")] == [pending]
    call("abort_upload", "objects/r2/v000001", pending)
    assert call("head", records, "objects/r1/v000001", doc.version_id)[1] == 1200
    assert call("head", records, "objects/r1/v000001")[0] == doc.version_id
    assert b"".join(call("read", records, "objects/r1/v000001", doc.version_id, 0, 12)) == b"sealed bytes"
    assert call("read_all", audit, "chain/a/1-1.jsonl") == b'{"seq": 1}'
    assert call("list_keys", audit, "chain/") == ["chain/a/1-1.jsonl"]
    assert [v[1] for v in call("list_versions", records, "objects/r1/")] == [doc.version_id]
    call("set_retention", audit, "chain/a/1-1.jsonl", w.version_id, later + timedelta(days=1))
    assert call("retention", audit, "chain/a/1-1.jsonl", w.version_id) is not None
    call("set_legal_hold", audit, "chain/a/1-1.jsonl", w.version_id, True)
    assert call("legal_hold", audit, "chain/a/1-1.jsonl", w.version_id) is True
    call("set_legal_hold", audit, "chain/a/1-1.jsonl", w.version_id, False)
    with pytest.raises(StoreRefused):  # still retained: the store refuses, whatever the policy says
        call("delete_version", records, "objects/r1/v000001", doc.version_id)
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 1.0)
    call("delete_version", records, "objects/r1/v000001", doc.version_id)  # disposition after retention
    assert archive.head(records, "objects/r1/v000001", doc.version_id) is None

    public = {n for n, f in vars(ObjectStore).items() if callable(f) and not n.startswith("_")}
    assert public - used == set(), "exercise every ObjectStore method here so its requests are checked"

    policy = json.loads(archive_policy_document([records, audit]))
    needed = [need for method, url, headers in pool.requests for need in required_actions(method, url, headers)]
    denied = sorted({f"{a} on {r}" for a, r in needed if not allowed(policy, a, r)})
    assert denied == [], "the archive sends requests its policy does not allow"
    granted = {a for st in policy["Statement"] for a in st["Action"]}
    assert granted == {a for a, _ in needed}, "the policy grants actions the archive never needs"
    # infra made the buckets and set the archive's default retention: the service changes neither
    assert not {a for a, _ in needed} & {"s3:CreateBucket", "s3:PutBucketObjectLockConfiguration"}


def test_a_default_retention_mismatch_is_denied_not_applied(store: DevStore, tmp_path: Path) -> None:
    """hdc:archiveDefaultRetentionDays ≠ HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS: the archive would
    rewrite the bucket default, which its policy does not allow (it stops at start with AccessDenied)."""
    specs = archive_buckets(load_catalog("lab"), "mismatch-records", "mismatch-audit", default_retention_days=3650)
    _provision_as_the_program_does(store, specs)
    archive, pool = _archive_store(store, tmp_path, "mismatch-records", "mismatch-audit", 3000)
    archive.ensure_buckets()  # root credentials on the test store: the request goes through
    policy = json.loads(archive_policy_document(["mismatch-records", "mismatch-audit"]))
    needed = {need for method, url, headers in pool.requests for need in required_actions(method, url, headers)}
    assert ("s3:PutBucketObjectLockConfiguration", "arn:aws:s3:::mismatch-records") in needed
    assert not allowed(policy, "s3:PutBucketObjectLockConfiguration", "arn:aws:s3:::mismatch-records")
