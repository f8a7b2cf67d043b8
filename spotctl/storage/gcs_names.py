"""Cloud Storage's bucket-name rules, checked before any call so a bad name fails at once
with a clear message instead of a 400 from GCS (or, worse, a request for someone else's bucket).

GCS is laxer than S3 (local.check_bucket_name): underscores are allowed, and dotted names
may be up to 222 characters. An existing `gs://my_bucket` must stay usable, so GCS checks its
own rules rather than S3's.
"""

from __future__ import annotations

import re

from spotctl.storage.base import StorageError

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_GOOGLE = re.compile(r"g[o0]{2}g[l1]e")


def check_gcs_bucket_name(name: str) -> str:
    """`name` when GCS would accept it; StorageError saying which rule it breaks otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise StorageError(f"invalid bucket name {name!r}: use 3-63 characters, lowercase letters, digits, "
                           "'-', '_' and '.', starting and ending with a letter or digit")
    if max(len(part) for part in name.split(".")) > 63 or ("." not in name and len(name) > 63):
        raise StorageError(f"invalid bucket name {name!r}: at most 63 characters between dots")
    if ".." in name or _IP_ADDRESS.match(name):
        raise StorageError(f"invalid bucket name {name!r}: GCS forbids '..' and names that look like an IP address")
    if name.startswith("goog") or _GOOGLE.search(name):
        raise StorageError(f"invalid bucket name {name!r}: GCS forbids names starting with 'goog' or "
                           "containing 'google'")
    return name
