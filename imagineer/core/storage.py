"""Where media files live: a local folder (the embedded default) or an S3-compatible bucket.

settings.py builds STORAGES["default"] from the environment with `media_storage`; the tests build
the same entry from the same variables, so the test process and the worker processes it starts
store files in one place. docs/DEPLOYMENT.md lists the variables, docs/deployment/MULTI_MACHINE.md
says when to use which.
"""

from __future__ import annotations

from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

STORAGE_KINDS = ("local", "s3")
LOCAL_BACKEND = "django.core.files.storage.FileSystemStorage"
S3_BACKEND = "storages.backends.s3.S3Storage"
# django-storages' own default (0) keeps every opened object in memory however large it is: a
# 1 GiB LoRA or checkpoint would sit in RAM while a worker copies it. Past this size it spills to disk.
DEFAULT_S3_MAX_MEMORY_BYTES = 16 * 1024 * 1024


def media_storage(env: environ.Env) -> dict[str, Any]:
    """STORAGES["default"] for IMAGINEER_STORAGE (`local`, the default, or `s3`).

    S3 credentials are not options here: boto3 finds them itself (AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, a profile, an instance or pod role), so a role
    needs no secret in the environment at all.
    """
    kind = env.str("IMAGINEER_STORAGE", default="local").strip().lower()
    if kind == "local":
        return {"BACKEND": LOCAL_BACKEND}
    if kind != "s3":
        raise ImproperlyConfigured(
            f"IMAGINEER_STORAGE={kind!r} is not a storage: use 'local' (files under MEDIA_ROOT) "
            "or 's3' (an S3-compatible bucket, AWS_STORAGE_BUCKET_NAME)."
        )
    if not env.str("AWS_STORAGE_BUCKET_NAME", default=""):
        raise ImproperlyConfigured("IMAGINEER_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME (the bucket media goes into).")
    return {
        "BACKEND": S3_BACKEND,
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
            # Anything but AWS itself (MinIO, Ceph RGW, R2, a local test server) is an endpoint URL.
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            # "path" for servers that cannot answer bucket-name subdomains (MinIO, an IP address).
            "addressing_style": env.str("AWS_S3_ADDRESSING_STYLE", default="") or None,
            # A key prefix: several deployments (or staging beside production) can share one bucket.
            "location": env.str("AWS_LOCATION", default=""),
            # Files are served by id through the API, never by bucket URL; should a URL ever be
            # made, it is signed and expires instead of relying on the bucket being public.
            "querystring_auth": env.bool("AWS_QUERYSTRING_AUTH", default=True),
            "default_acl": None,  # the bucket's own policy decides (keep it private)
            # As on a local folder: a name already taken gets a new one instead of being replaced,
            # so a row never loses its file to another writer (the legacy import relies on it).
            "file_overwrite": False,
            "max_memory_size": env.int("AWS_S3_MAX_MEMORY_SIZE", default=DEFAULT_S3_MAX_MEMORY_BYTES),
        },
    }
