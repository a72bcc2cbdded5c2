"""The archive's object storage on MinIO: its two locked, versioned buckets and a least-privilege user."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pulumi
import pulumi_minio as minio
import pulumi_random as random

from .buckets import BucketSpec
from .retention import BucketRetention
from .settings import SettingsError


@dataclass(frozen=True)
class ArchiveCall:
    """One MinIO SDK call of `archive_service/store.py`, the S3 request it makes, the IAM actions it needs."""

    sdk: str  # method of minio.Minio ("" = made by the SDK itself)
    request: str  # S3 API operation, as the store sees it
    actions: tuple[str, ...]  # IAM actions granted for it; empty = deliberately not granted
    note: str = ""


# The call -> action table (docs/infra.md prints the same). The policy is derived from it, and
# tests/infra checks it against every `client.` call in archive_service/ and against the S3
# requests the archive's ObjectStore really sends to a store.
# archive_service/s3put.py sends PutObject and UploadPart itself (its fast path); they are the same
# S3 requests as the SDK's `_put_object` / `_upload_part` below, which stay as its fallback.
ARCHIVE_CALLS: tuple[ArchiveCall, ...] = (
    ArchiveCall("bucket_exists", "HeadBucket", ("s3:ListBucket",), "ensure_buckets, health check"),
    ArchiveCall(
        "_get_region", "GetBucketLocation", ("s3:GetBucketLocation",), "SDK, once per bucket when no region is set"
    ),
    ArchiveCall("get_object_lock_config", "GetObjectLockConfiguration", ("s3:GetBucketObjectLockConfiguration",)),
    ArchiveCall("get_bucket_versioning", "GetBucketVersioning", ("s3:GetBucketVersioning",)),
    ArchiveCall("set_bucket_encryption", "PutBucketEncryption", ("s3:PutEncryptionConfiguration",), "SSE-S3"),
    ArchiveCall(
        "_put_object", "PutObject + lock headers", ("s3:PutObject", "s3:PutObjectRetention"), "one request, no copy"
    ),
    ArchiveCall("_create_multipart_upload", "CreateMultipartUpload", ("s3:PutObject", "s3:PutObjectRetention")),
    ArchiveCall("_upload_part", "UploadPart", ("s3:PutObject",)),
    ArchiveCall("_complete_multipart_upload", "CompleteMultipartUpload", ("s3:PutObject",)),
    ArchiveCall("_abort_multipart_upload", "AbortMultipartUpload", ("s3:AbortMultipartUpload",)),
    ArchiveCall("_list_multipart_uploads", "ListMultipartUploads", ("s3:ListBucketMultipartUploads",)),
    ArchiveCall("stat_object", "HeadObject", ("s3:GetObject", "s3:GetObjectVersion"), "with a version id"),
    ArchiveCall("get_object", "GetObject (range)", ("s3:GetObject", "s3:GetObjectVersion"), "with a version id"),
    ArchiveCall("list_objects", "ListObjectsV2", ("s3:ListBucket",)),
    ArchiveCall("list_objects", "ListObjectVersions", ("s3:ListBucketVersions",), "include_version=True"),
    ArchiveCall("get_object_retention", "GetObjectRetention", ("s3:GetObjectRetention",)),
    ArchiveCall("set_object_retention", "PutObjectRetention", ("s3:PutObjectRetention",), "extend only"),
    ArchiveCall("enable_object_legal_hold", "PutObjectLegalHold", ("s3:PutObjectLegalHold",)),
    ArchiveCall("disable_object_legal_hold", "PutObjectLegalHold", ("s3:PutObjectLegalHold",)),
    ArchiveCall("is_object_legal_hold_enabled", "GetObjectLegalHold", ("s3:GetObjectLegalHold",)),
    ArchiveCall(
        "remove_object", "DeleteObject with versionId", ("s3:DeleteObjectVersion",), "disposition; store enforces lock"
    ),
    ArchiveCall(
        "make_bucket", "CreateBucket", (), "not granted: infra creates both buckets; called only if one is missing"
    ),
    ArchiveCall(
        "set_object_lock_config",
        "PutObjectLockConfiguration",
        (),
        "not granted: infra sets the default retention; called only when it differs from the service's days",
    ),
)
# Bucket-level actions apply to arn:aws:s3:::<bucket>, the others to arn:aws:s3:::<bucket>/*.
_BUCKET_LEVEL = frozenset(
    {
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:ListBucketMultipartUploads",
        "s3:GetBucketLocation",
        "s3:GetBucketVersioning",
        "s3:GetBucketObjectLockConfiguration",
        "s3:PutEncryptionConfiguration",
    }
)
_GRANTED = sorted({a for c in ARCHIVE_CALLS for a in c.actions})
BUCKET_ACTIONS = tuple(a for a in _GRANTED if a in _BUCKET_LEVEL)
OBJECT_ACTIONS = tuple(a for a in _GRANTED if a not in _BUCKET_LEVEL)
# Never granted to the archive's identity: wildcards, governance bypass, bucket deletion or
# reconfiguration (lock, versioning, policy, lifecycle), deletions that leave no version named.
FORBIDDEN_ACTIONS = frozenset(
    {
        "s3:*",
        "*",
        "s3:BypassGovernanceRetention",
        "s3:CreateBucket",
        "s3:DeleteBucket",
        "s3:DeleteObject",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
        "s3:PutBucketObjectLockConfiguration",
        "s3:PutBucketVersioning",
        "s3:PutLifecycleConfiguration",
        "s3:PutBucketLifecycle",
    }
)
if FORBIDDEN_ACTIONS & set(_GRANTED):  # pragma: no cover - a table edit that would widen the policy
    raise RuntimeError(f"archive policy would grant {sorted(FORBIDDEN_ACTIONS & set(_GRANTED))}")


def archive_policy_document(bucket_names: list[str]) -> str:
    """The IAM policy of the archive's service user, limited to its buckets."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ArchiveBuckets",
                    "Effect": "Allow",
                    "Action": list(BUCKET_ACTIONS),
                    "Resource": [f"arn:aws:s3:::{b}" for b in bucket_names],
                },
                {
                    "Sid": "ArchiveObjects",
                    "Effect": "Allow",
                    "Action": list(OBJECT_ACTIONS),
                    "Resource": [f"arn:aws:s3:::{b}/*" for b in bucket_names],
                },
            ],
        },
        indent=2,
        sort_keys=True,
    )


@dataclass(frozen=True)
class MinioConnection:
    """Where the retention resource reaches MinIO: the same settings the minio provider uses."""

    endpoint: str
    user: str
    password: pulumi.Output[str]
    secure: bool

    @classmethod
    def from_config(cls, default_secure: bool) -> MinioConnection:
        cfg = pulumi.Config("minio")
        endpoint = cfg.get("minioServer") or os.environ.get("MINIO_ENDPOINT")
        user = cfg.get("minioUser") or os.environ.get("MINIO_USER")
        password = cfg.get_secret("minioPassword")
        if password is None and os.environ.get("MINIO_PASSWORD"):
            password = pulumi.Output.secret(os.environ["MINIO_PASSWORD"])
        missing = [
            k
            for k, v in (("minio:minioServer", endpoint), ("minio:minioUser", user), ("minio:minioPassword", password))
            if not v
        ]
        if missing or endpoint is None or user is None or password is None:
            raise SettingsError(
                "MinIO connection not configured: set "
                + ", ".join(missing)
                + " (`pulumi config set minio:minioServer host:9000`, `pulumi config set --secret minio:minioPassword …`)"
            )
        ssl = cfg.get_bool("minioSsl")
        return cls(endpoint=endpoint, user=user, password=password, secure=default_secure if ssl is None else ssl)


@dataclass
class ArchiveStorageArgs:
    buckets: list[BucketSpec]
    user_name: str
    connection: MinioConnection
    protect: bool = True


class ArchiveStorage(pulumi.ComponentResource):
    """The records and audit buckets of the archive service and its MinIO identity."""

    buckets: pulumi.Output[dict[str, str]]
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]

    def __init__(self, name: str, args: ArchiveStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hdc:infra:ArchiveStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names: dict[str, pulumi.Output[str]] = {}
        for spec in args.buckets:
            bucket = minio.S3Bucket(
                spec.name,
                bucket=spec.name,
                acl="private",
                object_locking=True,
                force_destroy=False,
                # Protected against `up` replacing it; retained by `destroy`: records outlive stacks.
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=True),
            )
            minio.S3BucketVersioning(
                spec.name,
                bucket=bucket.bucket,
                versioning_configuration=minio.S3BucketVersioningVersioningConfigurationArgs(status="Enabled"),
                opts=child,
            )
            # The safety net under the per-version dates: equal to the archive's
            # HDC_ARCHIVE_BUCKET_DEFAULT_RETENTION_DAYS, so the service never tries to change it.
            BucketRetention(
                f"{spec.name}-retention",
                bucket=bucket.bucket,
                days=spec.default_retention_days,
                mode="COMPLIANCE",
                endpoint=args.connection.endpoint,
                access_key=args.connection.user,
                secret_key=args.connection.password,
                secure=args.connection.secure,
                opts=child,
            )
            minio.IlmPolicy(
                spec.name,
                bucket=bucket.bucket,
                rules=[
                    minio.IlmPolicyRuleArgs(
                        id="expire-noncurrent-after-retention",
                        status="Enabled",
                        noncurrent_version_expiration_days=spec.noncurrent_expiry_days,
                    )
                ],
                opts=child,
            )
            names[spec.role] = bucket.bucket
        secret = random.RandomPassword(f"{name}-secret", length=40, special=False, opts=child)
        user = minio.IamUser(
            args.user_name,
            name=args.user_name,
            secret=secret.result,
            force_destroy=False,
            tags={"hdc": "archive"},
            opts=child,
        )
        policy = minio.IamPolicy(
            args.user_name,
            name=args.user_name,
            policy=archive_policy_document([b.name for b in args.buckets]),
            opts=child,
        )
        minio.IamUserPolicyAttachment(args.user_name, user_name=user.name, policy_name=policy.name, opts=child)
        self.buckets = pulumi.Output.all(**names)
        self.access_key = user.name
        self.secret_key = pulumi.Output.secret(secret.result)
        self.register_outputs({"buckets": self.buckets, "access_key": self.access_key})
