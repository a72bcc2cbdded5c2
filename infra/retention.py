"""Default object-lock retention of a bucket, as a Pulumi dynamic resource.

pulumi-minio 0.17 creates buckets with object locking but has no resource for the bucket's
default retention, so this provider sets it through the MinIO SDK (PutObjectLockConfiguration).
Deleting the resource leaves the configuration in place: a COMPLIANCE lock is meant to outlive it.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

MODES = ("COMPLIANCE", "GOVERNANCE")


def _client(props: dict[str, Any]) -> Any:
    from minio import Minio

    return Minio(
        props["endpoint"],
        access_key=props["access_key"],
        secret_key=props["secret_key"],
        secure=bool(props.get("secure", True)),
        region=props.get("region") or None,
    )


def apply_retention(props: dict[str, Any]) -> dict[str, Any]:
    """Set the bucket's default retention and return what the server reports back."""
    from minio.commonconfig import COMPLIANCE, GOVERNANCE
    from minio.objectlockconfig import DAYS, YEARS, ObjectLockConfig

    mode = props["mode"]
    if mode not in MODES:
        raise ValueError(f"retention mode must be one of {MODES}, not {mode!r}")
    client = _client(props)
    years = int(props.get("years") or 0)
    days = int(props.get("days") or 0)
    if (years > 0) == (days > 0):
        raise ValueError("set exactly one of years or days for a default retention")
    config = ObjectLockConfig(
        COMPLIANCE if mode == "COMPLIANCE" else GOVERNANCE, years or days, YEARS if years else DAYS
    )
    client.set_object_lock_config(props["bucket"], config)
    return read_retention(props)


def read_retention(props: dict[str, Any]) -> dict[str, Any]:
    client = _client(props)
    got = client.get_object_lock_config(props["bucket"])
    out = dict(props)
    out["applied_mode"] = got.mode or ""
    out["applied_duration"] = f"{got.duration} {got.duration_unit}" if got.duration else ""
    return out


class BucketRetentionProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["bucket"], outs=apply_retention(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("bucket", "mode", "years", "days", "endpoint")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        return DiffResult(
            changes=bool(changed), replaces=["bucket"] if "bucket" in changed else [], delete_before_replace=False
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=apply_retention(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_=id_, outs=read_retention(props))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # A bucket's object-lock default cannot be removed safely; keep it (see module docstring).
        return None


class BucketRetention(Resource):
    """Default retention (COMPLIANCE by default) for new objects of one object-locked bucket.

    Exactly one of `years` or `days` (the archive service speaks days).
    """

    applied_mode: pulumi.Output[str]
    applied_duration: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        bucket: pulumi.Input[str],
        endpoint: pulumi.Input[str],
        access_key: pulumi.Input[str],
        secret_key: pulumi.Input[str],
        secure: bool = True,
        mode: str = "COMPLIANCE",
        years: int = 0,
        days: int = 0,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if (years > 0) == (days > 0):
            raise ValueError(f"retention of {name}: set exactly one of years or days")
        super().__init__(
            BucketRetentionProvider(),
            name,
            {
                "bucket": bucket,
                "mode": mode,
                "years": years,
                "days": days,
                "endpoint": endpoint,
                "access_key": access_key,
                "secret_key": pulumi.Output.secret(secret_key),
                "secure": secure,
                "region": "",
                "applied_mode": None,
                "applied_duration": None,
            },
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["secret_key"])),
        )
