"""The default-retention dynamic provider against a real S3 store (SeaweedFS, standing in for MinIO)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from minio import Minio
from minio.error import S3Error

from archive_service.devstore import DevStore, start_devstore
from infra.retention import BucketRetentionProvider

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
