"""The archive's object storage on MinIO: locked, versioned buckets per retention class and a least-privilege user."""

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

# What the archive service does: write records, read them back (any version), set and read
# retention and legal holds, list. No version deletion, no governance bypass, no bucket changes:
# destroying records after their retention is a separate, audited identity's job.
BUCKET_ACTIONS = (
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:GetBucketLocation",
    "s3:GetBucketVersioning",
    "s3:GetBucketObjectLockConfiguration",
)
OBJECT_ACTIONS = (
    "s3:PutObject",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:DeleteObject",
    "s3:PutObjectRetention",
    "s3:GetObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:GetObjectLegalHold",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
FORBIDDEN_ACTIONS = frozenset(
    {"s3:*", "*", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:DeleteBucket", "s3:PutBucketPolicy"}
)


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
    bucket_names: pulumi.Output[list[str]]
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]

    def __init__(self, name: str, args: ArchiveStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hdc:infra:ArchiveStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        names: list[pulumi.Output[str]] = []
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
            BucketRetention(
                f"{spec.name}-retention",
                bucket=bucket.bucket,
                years=spec.retention.years,
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
            names.append(bucket.bucket)
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
        self.bucket_names = pulumi.Output.all(*names).apply(list)
        self.access_key = user.name
        self.secret_key = pulumi.Output.secret(secret.result)
        self.register_outputs({"bucket_names": self.bucket_names, "access_key": self.access_key})
