#!/usr/bin/env python3
"""Create the archive's buckets with object lock if they do not exist; print what changed as JSON.

Usage: s3_buckets.py ENDPOINT CA_FILE BUCKETS_JSON (keys in S3_ACCESS_KEY / S3_SECRET_KEY).
Waits up to 120 s for the store to answer (a cluster elects its leader first).
"""

import json
import os
import sys
import time

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED
from minio.versioningconfig import VersioningConfig


def main() -> None:
    endpoint, ca_file, buckets = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=ca_file, timeout=10, retries=False)
    client = Minio(
        endpoint,
        access_key=os.environ["S3_ACCESS_KEY"],
        secret_key=os.environ["S3_SECRET_KEY"],
        secure=True,
        http_client=http,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            existing = {b.name for b in client.list_buckets()}
            break
        except Exception as exc:  # the store is still starting: connection refused, 503…
            if time.monotonic() > deadline:
                sys.exit(f"store {endpoint} not ready: {exc}")
            time.sleep(1)
    created = []
    for bucket in buckets:
        name = bucket["name"]
        if name in existing:
            continue
        client.make_bucket(name, object_lock=bool(bucket.get("object_lock", True)))
        if not bucket.get("object_lock", True):
            client.set_bucket_versioning(name, VersioningConfig(ENABLED))
        created.append(name)
    print(json.dumps({"created": created, "existing": sorted(existing)}))


if __name__ == "__main__":
    main()
