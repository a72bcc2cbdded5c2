"""The S3 store, through the `minio` SDK, kept to the S3 API both SeaweedFS and MinIO speak.

Buckets are created with object lock (hence versioning) and a default COMPLIANCE retention;
every object also carries its own retain-until date. Ingest uses S3 multipart upload directly
(create / upload part / complete / abort) so that nothing becomes an object until the service
has verified the digest. Connection failures surface as `StoreUnavailable` (HTTP 503).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE, ENABLED
from minio.datatypes import Part
from minio.error import MinioException, S3Error
from minio.helpers import genheaders
from minio.objectlockconfig import DAYS, ObjectLockConfig
from minio.retention import Retention
from minio.sse import SseS3
from minio.sseconfig import Rule, SSEConfig

from .s3put import BodyCorrupted, FastPut, PutFailed
from .settings import ArchiveSettings


class StoreUnavailable(Exception):
    """The store cannot be reached (HTTP 503 to the client)."""


class StoreRefused(Exception):
    """The store refused an operation (e.g. deleting a retained version, shortening retention)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class ObjectMissing(StoreRefused):
    """The store has no such object version: the catalog points at nothing (an integrity incident
    for a committed version; HTTP 500 naming it, never a bare traceback)."""


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    try:
        yield
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchVersion"):
            raise ObjectMissing(f"the store has no object for {what} ({exc.code})", exc.code) from exc
        if exc.code in ("AccessDenied", "InvalidRequest", "ObjectLocked", "InvalidArgument"):
            raise StoreRefused(f"store refused {what}: {exc.code}: {exc.message}", exc.code) from exc
        raise
    except (urllib3.exceptions.HTTPError, MinioException, OSError) as exc:
        if isinstance(exc, S3Error):
            raise
        raise StoreUnavailable(f"store unreachable during {what}: {type(exc).__name__}") from exc


Body = bytes | bytearray | list[bytes]  # a payload, or its pieces in order


def _joined(data: Body) -> bytes | bytearray:
    """One buffer for the SDK (the fast path sends pieces as they are)."""
    return b"".join(data) if isinstance(data, list) else data


@dataclass(frozen=True)
class Written:
    version_id: str
    etag: str


class ObjectStore:
    """Thin typed layer over the SDK calls the archive needs."""

    def __init__(self, settings: ArchiveSettings) -> None:
        self.settings = settings
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=3.0, read=120.0),
            maxsize=max(16, settings.upload_concurrency * 4),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
            http_client=http,
        )
        self.records = settings.bucket_records
        self.audit = settings.bucket_audit
        self.sse = SseS3() if settings.s3_sse else None
        self.fast = FastPut(settings.s3_endpoint, settings.s3_secure, settings.s3_access_key, settings.s3_secret_key)

    def _fast_put(
        self,
        bucket: str,
        key: str,
        data: Body,
        headers: dict[str, str],
        query: dict[str, str] | None = None,
        crc32c: int | None = None,
    ) -> Written | None:
        """The PUT on the fast path (s3put); None when it did not succeed and the SDK must repeat it."""
        try:
            region = self.client._get_region(bucket)  # cached by the SDK after the first call per bucket
            res = self.fast.put(bucket, key, data, headers, region, query, crc32c)
        except BodyCorrupted as exc:
            raise StoreUnavailable(f"{exc}: corrupted on the way, nothing stored; retry") from exc
        except (PutFailed, S3Error, MinioException, urllib3.exceptions.HTTPError, OSError):
            return None
        return Written(res.version_id, res.etag)

    # --- setup and health
    def ensure_buckets(self) -> list[str]:
        """Create both buckets with object lock, default COMPLIANCE retention and SSE-S3; returns notes."""
        notes = []
        with _mapped("bucket setup"):
            for bucket in (self.records, self.audit):
                if not self.client.bucket_exists(bucket):
                    self.client.make_bucket(bucket, object_lock=True)
                    notes.append(f"created bucket {bucket} with object lock")
                cfg = self.client.get_object_lock_config(bucket)
                if (cfg.mode, cfg.duration, (cfg.duration_unit or "").upper()) != (
                    COMPLIANCE,
                    self.settings.bucket_default_retention_days,
                    DAYS.upper(),
                ):
                    self.client.set_object_lock_config(
                        bucket, ObjectLockConfig(COMPLIANCE, self.settings.bucket_default_retention_days, DAYS)
                    )
                versioning = self.client.get_bucket_versioning(bucket)
                if versioning.status != ENABLED:
                    raise StoreRefused(f"bucket {bucket} has versioning {versioning.status}: object lock needs it on")
                if self.settings.s3_sse:
                    try:
                        self.client.set_bucket_encryption(bucket, SSEConfig(Rule.new_sse_s3_rule()))
                    except S3Error as exc:
                        notes.append(f"bucket {bucket}: store does not offer SSE-S3 ({exc.code}); envelope only")
        return notes

    def ping(self) -> None:
        with _mapped("health check"):
            self.client.bucket_exists(self.records)

    # --- writes
    def _headers(self, retain_until: datetime, legal_hold: bool = False) -> dict[str, str | list[str] | tuple[str]]:
        return genheaders(None, self.sse, None, Retention(COMPLIANCE, retain_until), legal_hold)

    def put(
        self,
        bucket: str,
        key: str,
        data: Body,
        retain_until: datetime,
        content_type: str = "application/octet-stream",
        crc32c: int | None = None,
        legal_hold: bool = False,
    ) -> Written:
        """PutObject with retention (and a legal hold when asked); `data` may come in pieces,
        `crc32c` of it all when the caller has it (see s3put)."""
        headers = {k: str(v) for k, v in self._headers(retain_until, legal_hold).items()}
        headers["Content-Type"] = content_type
        fast = self._fast_put(bucket, key, data, headers, crc32c=crc32c)
        if fast is not None:
            return fast
        with _mapped(f"PUT {key}"):
            # One PutObject with the bytes as they are: put_object would copy them through a
            # stream first (data is at most one part here, never split).
            res = self.client._put_object(bucket, key, _joined(data), headers)  # type: ignore[arg-type]  # bytes-like is fine
        return Written(res.version_id or "", res.etag or "")

    def create_upload(self, key: str, retain_until: datetime, legal_hold: bool = False) -> str:
        with _mapped(f"create multipart upload {key}"):
            return self.client._create_multipart_upload(
                self.records, key, dict(self._headers(retain_until, legal_hold))
            )

    def upload_part(self, key: str, upload_id: str, number: int, data: Body) -> str:
        fast = self._fast_put(self.records, key, data, {}, {"partNumber": str(number), "uploadId": upload_id})
        if fast is not None:
            return fast.etag
        with _mapped(f"upload part {number} of {key}"):
            return self.client._upload_part(self.records, key, _joined(data), None, upload_id, number)  # type: ignore[arg-type]  # bytes-like is fine

    def complete_upload(self, key: str, upload_id: str, etags: list[str]) -> Written:
        with _mapped(f"complete upload {key}"):
            res = self.client._complete_multipart_upload(
                self.records, key, upload_id, [Part(i + 1, etag) for i, etag in enumerate(etags)]
            )
        return Written(res.version_id or "", res.etag or "")

    def abort_upload(self, key: str, upload_id: str) -> None:
        with _mapped(f"abort upload {key}"):
            try:
                self.client._abort_multipart_upload(self.records, key, upload_id)
            except S3Error as exc:
                if exc.code != "NoSuchUpload":
                    raise

    def list_uploads(self, prefix: str) -> list[tuple[str, str, datetime | None]]:
        """Incomplete multipart uploads under `prefix`: (key, upload id, initiated)."""
        out: list[tuple[str, str, datetime | None]] = []
        key_marker: str | None = None
        upload_marker: str | None = None
        with _mapped("list multipart uploads"):
            while True:
                res = self.client._list_multipart_uploads(
                    self.records, prefix=prefix, key_marker=key_marker, upload_id_marker=upload_marker
                )
                out.extend((u.object_name, u.upload_id or "", u.initiated_time) for u in res.uploads)
                if not res.is_truncated or not res.uploads:
                    return out
                key_marker, upload_marker = res.uploads[-1].object_name, res.uploads[-1].upload_id

    # --- reads
    def head(self, bucket: str, key: str, version_id: str | None = None) -> tuple[str, int, str] | None:
        """(version id, size, etag) of an object, None if absent."""
        with _mapped(f"HEAD {key}"):
            try:
                st = self.client.stat_object(bucket, key, version_id=version_id)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchVersion", "ResourceNotFound", "NoSuchObject"):
                    return None
                raise
        return st.version_id or "", int(st.size or 0), (st.etag or "").strip('"')

    def read(self, bucket: str, key: str, version_id: str | None, offset: int = 0, length: int = 0) -> Iterator[bytes]:
        """Stream a byte range of one object version in 256 KiB pieces."""
        with _mapped(f"GET {key}"):
            resp = self.client.get_object(bucket, key, offset=offset, length=length, version_id=version_id)
        try:
            with _mapped(f"GET {key}"):
                yield from resp.stream(256 * 1024)
        finally:
            resp.close()
            resp.release_conn()

    def read_all(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        return b"".join(self.read(bucket, key, version_id))

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        with _mapped(f"list {bucket}/{prefix}"):
            return [
                o.object_name for o in self.client.list_objects(bucket, prefix=prefix, recursive=True) if o.object_name
            ]

    def list_versions(self, bucket: str, prefix: str) -> list[tuple[str, str, bool, bool]]:
        """(key, version id, is latest, is delete marker) for every version under prefix."""
        with _mapped(f"list versions {bucket}/{prefix}"):
            return [
                (
                    o.object_name or "",
                    o.version_id or "",
                    bool(o.is_latest == "true" or o.is_latest is True),
                    bool(o.is_delete_marker),
                )
                for o in self.client.list_objects(bucket, prefix=prefix, recursive=True, include_version=True)
            ]

    # --- retention, holds, deletion
    def retention(self, bucket: str, key: str, version_id: str | None) -> datetime | None:
        """The version's retain-until date; None when it has no lock of its own."""
        with _mapped(f"get retention {key}"):
            try:
                ret = self.client.get_object_retention(bucket, key, version_id=version_id)
            except S3Error as exc:
                if exc.code in ("NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError"):
                    return None
                raise
        return ret.retain_until_date if ret else None

    def set_retention(self, bucket: str, key: str, version_id: str | None, until: datetime) -> None:
        with _mapped(f"set retention {key}"):
            self.client.set_object_retention(bucket, key, Retention(COMPLIANCE, until), version_id=version_id)

    def set_legal_hold(self, bucket: str, key: str, version_id: str | None, on: bool) -> None:
        with _mapped(f"legal hold {key}"):
            if on:
                self.client.enable_object_legal_hold(bucket, key, version_id=version_id)
            else:
                self.client.disable_object_legal_hold(bucket, key, version_id=version_id)

    def legal_hold(self, bucket: str, key: str, version_id: str | None) -> bool:
        with _mapped(f"legal hold {key}"):
            return bool(self.client.is_object_legal_hold_enabled(bucket, key, version_id=version_id))

    def delete_version(self, bucket: str, key: str, version_id: str) -> None:
        with _mapped(f"delete {key}"):
            self.client.remove_object(bucket, key, version_id=version_id)
