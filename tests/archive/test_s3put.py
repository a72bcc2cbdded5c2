"""The fast PUT path (s3put) against the real store: same requests as the SDK, errors through the SDK."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import google_crc32c
import pytest
from minio.credentials import Credentials
from minio.error import S3Error
from minio.signer import sign_v4_s3

from archive_service.devstore import DevStore, start_devstore
from archive_service.s3put import SigV4
from archive_service.settings import ArchiveSettings
from archive_service.store import ObjectStore, StoreUnavailable

from ..selfsigned import self_signed
from .conftest import make_settings


def test_signature_is_the_sdks() -> None:
    """Same request, same date: the Authorization header equals the minio SDK's own."""
    date = datetime(2026, 11, 22, 8, 30, 5, tzinfo=UTC)
    amz_date = date.strftime("%Y%m%dT%H%M%SZ")
    payload = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    headers = {
        "host": "127.0.0.1:8333",
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload,
        "content-type": "application/octet-stream",
        "x-amz-server-side-encryption": "AES256",
        "x-amz-object-lock-mode": "COMPLIANCE",
        "x-amz-object-lock-retain-until-date": "2046-01-01T00:00:00.000Z",
    }
    query = {"partNumber": "3", "uploadId": "abc/def+ghi=="}
    ours = SigV4("AKID", "secret/key+x").authorization(
        "PUT", "/rec-bucket/records/a b/v000001", query, headers, payload, amz_date, "us-east-1"
    )
    url = urlsplit("http://127.0.0.1:8333/rec-bucket/records/a%20b/v000001?partNumber=3&uploadId=abc%2Fdef%2Bghi%3D%3D")
    sdk = sign_v4_s3(
        method="PUT",
        url=url,
        region="us-east-1",
        headers=dict(headers),
        credentials=Credentials("AKID", "secret/key+x"),
        content_sha256=payload,
        date=date,
    )
    assert ours == sdk["Authorization"]


class SdkCalls:
    """Counts the PUTs that went through the SDK (the fallback)."""

    def __init__(self, store: ObjectStore) -> None:
        self.calls = 0
        original = store.client._put_object

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        store.client._put_object = counted  # type: ignore[method-assign]


def check_fast_path(settings: ArchiveSettings) -> None:
    store = ObjectStore(settings)
    store.ensure_buckets()
    sdk = SdkCalls(store)
    until = datetime.now(UTC) + timedelta(days=2)
    data = os.urandom(300_000)
    try:
        written = store.put(store.records, "records/odd key+name/v000001", data, until)
        assert sdk.calls == 0, "the fast path fell back to the SDK"
        assert store.read_all(store.records, "records/odd key+name/v000001", written.version_id) == data
        assert store.head(store.records, "records/odd key+name/v000001") == (
            written.version_id,
            len(data),
            written.etag,
        )
        got = store.retention(store.records, "records/odd key+name/v000001", written.version_id)
        assert got is not None and abs((got - until).total_seconds()) < 1

        upload = store.create_upload("records/multi/v000001", until)
        parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
        etags = [store.upload_part("records/multi/v000001", upload, i + 1, p) for i, p in enumerate(parts)]
        assert sdk.calls == 0
        done = store.complete_upload("records/multi/v000001", upload, etags)
        assert store.read_all(store.records, "records/multi/v000001", done.version_id) == b"".join(parts)

        # The store closed our kept-alive connection: the SDK repeats the PUT once, then the fast path resumes.
        conn = store.fast._local.conn
        assert conn is not None and conn.sock is not None
        conn.sock.close()
        store.put(store.records, "records/after-close/v000001", b"again", until)
        assert sdk.calls == 1
        store.put(store.records, "records/after-close/v000002", b"and again", until)
        assert sdk.calls == 1

        # Pieces go out in turn, with the CRC32C the caller computed while producing them.
        pieces = [os.urandom(1000), os.urandom(70_000), b"", os.urandom(3)]
        crc = 0
        for p in pieces:
            crc = google_crc32c.extend(crc, p)
        written = store.put(store.records, "records/pieces/v000001", pieces, until, crc32c=crc)
        assert store.read_all(store.records, "records/pieces/v000001", written.version_id) == b"".join(pieces)
        assert sdk.calls == 1

        # A body that no longer matches its checksum is refused by the store and not repeated.
        with pytest.raises(StoreUnavailable, match="corrupted on the way"):
            store.put(store.records, "records/corrupt/v000001", pieces, until, crc32c=crc ^ 1)
        assert sdk.calls == 1 and store.head(store.records, "records/corrupt/v000001") is None

        # Errors come from the SDK, as before: a missing bucket is its S3Error.
        with pytest.raises(S3Error) as err:
            store.put("no-such-bucket-here", "k", b"x", until)
        assert err.value.code == "NoSuchBucket"
    finally:
        store.fast.close()


def test_fast_path_over_http(devstore: DevStore, tmp_path: Path) -> None:
    check_fast_path(make_settings(devstore, tmp_path))


@pytest.fixture(scope="module")
def tls_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevStore, Path]]:
    work = tmp_path_factory.mktemp("seaweed-tls")
    cert, key = self_signed(work)
    store = start_devstore(work / "store", tls=(cert, key))
    try:
        yield store, cert
    finally:
        store.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_fast_path_over_tls(tls_store: tuple[DevStore, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over TLS the payload is signed too and carries x-amz-checksum-sha256 (object-locked PUTs need one)."""
    store, cert = tls_store
    assert store.tls_endpoint
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # how the hosts trust the internal CA (archive role)
    check_fast_path(make_settings(store, tmp_path, s3_endpoint=store.tls_endpoint, s3_secure=True))


def test_untrusted_certificate_is_store_unavailable(tls_store: tuple[DevStore, Path], tmp_path: Path) -> None:
    """Without the CA the fast path and the SDK both refuse the store's certificate: 503, nothing stored."""
    store, _cert = tls_store
    assert store.tls_endpoint
    settings = make_settings(store, tmp_path, s3_endpoint=store.tls_endpoint, s3_secure=True)
    objects = ObjectStore(settings)
    try:
        with pytest.raises(StoreUnavailable):
            objects.put(objects.records, "k", b"x", datetime.now(UTC) + timedelta(days=1))
    finally:
        objects.fast.close()
