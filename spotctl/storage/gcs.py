"""GcsStore: the Store protocol on Google Cloud Storage (or the lab's fake-gcs-server).

Every call goes through `gcp_clients.storage_client` (credentials, project, endpoint) and
carries a time-out (`gcp_clients.CALL_TIMEOUT_S`) and a bounded retry (RETRY: transient faults
only, for at most RETRY_BUDGET_S in all), so a slow or failing GCS never holds a worker for
the library's default two minutes; spotctl's own policy retries beyond that.

Buckets are created in the store's location: the one it is made with, else the first of
`gcp.regions`, else US-CENTRAL1 (callers pass none today, as for S3); with uniform
bucket-level access and public access prevention, so no object ACL can ever publish a file.

Errors: what retrying cannot fix (no such bucket or object, access denied, a name taken by
someone else, a bad request, a key that would escape the target directory) raises
StorageError with one line that names the bucket and says why. Transient trouble (time-outs,
connection errors, 429, 5xx) is re-raised as the library's own exception, so the caller's
retry policy can retry it.

Trees map to objects as on S3 (see tree.py): regular files only, symlinks followed, dangling
ones skipped, empty directories lost.
"""

from __future__ import annotations

import datetime
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.storage.retry import DEFAULT_RETRY

from spotctl.clouds.gcp_clients import CALL_TIMEOUT_S, GcpCredentialsMissing, storage_client
from spotctl.config import Settings
from spotctl.storage.base import StorageError
from spotctl.storage.gcs_names import check_gcs_bucket_name as _check
from spotctl.storage.local import clean_key
from spotctl.storage.tree import download_plan, keys_under, replacing, run_parallel, upload_plan, upload_source

DEFAULT_LOCATION = "US-CENTRAL1"
RETRY_BUDGET_S = CALL_TIMEOUT_S
"""The library retries a transient fault (429, 5xx, connection errors) for at most this long."""
RETRY = DEFAULT_RETRY.with_timeout(RETRY_BUDGET_S)
UPLOAD_CHUNK = 16 * 1024 * 1024
"""Files above 8 MiB go up as resumable uploads in 16 MiB chunks, each retried on its own."""
TOKEN_MIN_LEFT = datetime.timedelta(minutes=50)
"""node_sync hands out the cached access token only while it has this long left."""

_token_lock = threading.Lock()


def _why(exc: gexc.GoogleAPICallError) -> str | None:
    """Why a call failed for good, or None when retrying may help."""
    if isinstance(exc, gexc.NotFound):
        return "no such bucket"
    if isinstance(exc, gexc.Forbidden):
        return "access denied: it exists but is not yours, or the credentials may not use it"
    if isinstance(exc, gexc.Unauthorized):
        return "the credentials were refused (401): renew them (`gcloud auth application-default login`)"
    if isinstance(exc, gexc.Conflict):
        return "the name is taken by someone else (bucket names are global)"
    if isinstance(exc, gexc.TooManyRequests) or not isinstance(exc, gexc.ClientError):
        return None
    return f"refused ({exc.code}): {_message(exc)}".rstrip(": ")


def _message(exc: gexc.GoogleAPICallError) -> str:
    """The server's own words, first line only (the exception's text starts with the URL)."""
    details = [e.get("message") for e in exc.errors or [] if isinstance(e, dict) and e.get("message")]
    text = str(details[0]) if details else re.sub(r"^[A-Z]+ \S+: ", "", exc.message or "")
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _fail(exc: gexc.GoogleAPICallError, bucket: str, doing: str) -> Exception:
    """StorageError for what retrying cannot fix; the library's exception otherwise."""
    why = _why(exc)
    return StorageError(f"GCS bucket {bucket!r}: cannot {doing}: {why}") if why else exc


class GcsStore:
    """Implements the Store protocol on Cloud Storage; see the module docstring."""

    name = "gcs"

    def __init__(self, settings: Settings, location: str | None = None) -> None:
        self.settings = settings
        self.location = (location or (settings.gcp.regions or [DEFAULT_LOCATION])[0]).upper()

    def __repr__(self) -> str:
        return f"GcsStore(location={self.location!r}, endpoint={self.settings.gcp.storage_endpoint!r})"

    def check_name(self, name: str) -> str:
        """GCS's own rules, laxer than S3's (gcs_names.py)."""
        return _check(name)

    def _client(self) -> Any:
        try:
            return storage_client(self.settings)
        except GcpCredentialsMissing as exc:  # not a fault of the moment: say it, once
            raise StorageError(f"GCS: {exc}") from None

    def _bucket(self, name: str) -> Any:
        return self._client().bucket(_check(name))

    # -- buckets ---------------------------------------------------------------------------

    def list_buckets(self) -> list[str]:
        """Every bucket of the project, sorted (for the orphan sweeper)."""
        try:
            return sorted(b.name for b in self._client().list_buckets(timeout=CALL_TIMEOUT_S, retry=RETRY))
        except gexc.GoogleAPICallError as exc:
            if _why(exc) is None:
                raise
            raise StorageError(f"GCS: cannot list the project's buckets ({exc.code}): {_message(exc)}") from None

    def last_changed(self, name: str) -> float:
        """Newest update of any object (or the bucket's creation), epoch seconds."""
        try:
            bucket = self._client().get_bucket(_check(name), timeout=CALL_TIMEOUT_S, retry=RETRY)
        except gexc.GoogleAPICallError as exc:
            raise _fail(exc, name, "read the bucket") from None
        newest = bucket.time_created.timestamp() if bucket.time_created else 0.0
        for blob in self._blobs(name, ""):
            if blob.updated:
                newest = max(newest, blob.updated.timestamp())
        return newest

    def create_bucket(self, name: str) -> None:
        bucket = self._bucket(name)
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        bucket.iam_configuration.public_access_prevention = "enforced"
        try:
            self._client().create_bucket(bucket, location=self.location, timeout=CALL_TIMEOUT_S, retry=RETRY)
        except gexc.Conflict:  # GCS says 409 both for a bucket of ours and for one of someone else
            try:
                if self.bucket_exists(name):
                    return
            except StorageError:
                pass
            raise StorageError(f"GCS bucket {name!r}: cannot create it: the name is taken by someone else "
                               "(bucket names are global)") from None
        except gexc.GoogleAPICallError as exc:
            raise _fail(exc, name, f"create the bucket in {self.location}") from None

    def bucket_exists(self, name: str) -> bool:
        bucket = self._bucket(name)
        try:
            return bool(bucket.exists(timeout=CALL_TIMEOUT_S, retry=RETRY))
        except gexc.Forbidden:
            raise StorageError(f"GCS bucket {name!r} exists but is not yours (access denied)") from None
        except gexc.GoogleAPICallError as exc:
            raise _fail(exc, name, "check the bucket") from None

    def delete_bucket(self, name: str) -> None:
        """Deletes every object (each generation, for a versioned bucket), then the bucket.
        A bucket that is (or becomes) gone is a no-op."""
        if not self.bucket_exists(name):
            return
        bucket = self._bucket(name)
        for _ in range(3):  # a writer racing with us can refill it; try a few rounds
            try:
                gone = [(b.name, b.generation) for b in self._blobs(name, "", versions=True)]
            except StorageError:
                if not self.bucket_exists(name):
                    return
                raise
            run_parallel(lambda blob: self._delete_blob(bucket, *blob), gone, "gcs")
            try:
                bucket.delete(timeout=CALL_TIMEOUT_S, retry=RETRY)
                return
            except gexc.NotFound:
                return
            except (gexc.Conflict, gexc.PreconditionFailed):  # "not empty" (409 on GCS, 412 on the fake)
                continue
            except gexc.GoogleAPICallError as exc:
                raise _fail(exc, name, "delete the bucket") from None
        raise StorageError(f"cannot delete GCS bucket {name!r}: something keeps writing to it")

    @staticmethod
    def _delete_blob(bucket: Any, key: str, generation: int | None) -> None:
        try:
            bucket.delete_blob(key, generation=generation, timeout=CALL_TIMEOUT_S, retry=RETRY)
        except gexc.NotFound:
            pass
        except gexc.GoogleAPICallError as exc:
            raise _fail(exc, bucket.name, f"delete {key!r}") from None

    # -- objects ---------------------------------------------------------------------------

    def _blobs(self, bucket: str, prefix: str, versions: bool = False) -> Iterator[Any]:
        """Every object whose name starts with `prefix` (raw string prefix), in pages."""
        client = self._client()
        try:
            yield from client.list_blobs(_check(bucket), prefix=prefix or None, versions=versions,
                                         timeout=CALL_TIMEOUT_S, retry=RETRY)
        except gexc.GoogleAPICallError as exc:
            raise _fail(exc, bucket, "list objects") from None

    def upload_dir(self, local_dir: str, bucket: str, prefix: str = "") -> None:
        jobs = upload_plan(local_dir, prefix, "GCS", bucket)
        gbucket = self._bucket(bucket)
        run_parallel(lambda job: self._put(gbucket, job[0], job[1]), jobs, "gcs")

    def upload_file(self, local_file: str, bucket: str, key: str) -> None:
        path, key = upload_source(local_file, key, "GCS", bucket)
        self._put(self._bucket(bucket), path, key)

    @staticmethod
    def _put(bucket: Any, path: str, key: str) -> None:
        """One multipart upload for a small file, a resumable one in UPLOAD_CHUNK pieces for a
        big one (the library chooses by size); CRC32C-checked either way."""
        blob = bucket.blob(key, chunk_size=UPLOAD_CHUNK)
        try:
            blob.upload_from_filename(path, timeout=CALL_TIMEOUT_S, retry=RETRY)
        except gexc.GoogleAPICallError as exc:
            raise _fail(exc, bucket.name, f"upload {key!r}") from None

    def download_dir(self, bucket: str, prefix: str, local_dir: str) -> None:
        """Every object under `prefix/` into local_dir (see tree.download_plan). StorageError
        when a non-empty prefix holds nothing."""
        base = clean_key(prefix)
        objects = ((b.name, b.size) for b in self._blobs(bucket, f"{base}/" if base else ""))
        jobs = download_plan(objects, base, local_dir, "GCS", bucket)
        run_parallel(lambda job: self._get(bucket, job[0], job[1]), jobs, "gcs")

    def download_file(self, bucket: str, key: str, local_file: str) -> None:
        key = clean_key(key)
        if not key:
            raise StorageError(f"cannot download from GCS bucket {bucket!r}: empty key")
        self._get(bucket, key, Path(local_file).expanduser())

    def _get(self, bucket: str, key: str, dest: Path) -> None:
        """A checksum-verified download into a temporary file, renamed over dest."""
        blob = self._bucket(bucket).blob(key)  # one streamed request: chunked downloads skip the checksum
        try:
            with replacing(dest, "gcs") as tmp:
                blob.download_to_filename(str(tmp), timeout=CALL_TIMEOUT_S, retry=RETRY)
        except gexc.NotFound:  # the same 404 for a missing object and a missing bucket
            if not self.bucket_exists(bucket):
                raise StorageError(f"GCS bucket {bucket!r}: cannot download {key!r}: no such bucket") from None
            raise StorageError(f"GCS bucket {bucket!r} has no object {key!r}") from None
        except gexc.GoogleAPICallError as exc:
            raise _fail(exc, bucket, f"download {key!r}") from None

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        return keys_under((b.name for b in self._blobs(bucket, clean_key(prefix))), prefix)

    def node_sync(self, bucket: str, prefix: str = "", *, credentials: bool = True) -> dict | None:
        """What the node agent's bucket_sync needs: the bucket, prefix and endpoint (the lab's
        fake-gcs-server; None = Google's), and on real GCP an OAuth access token downscoped
        to this prefix of this bucket (clouds/gcp_node_token.py), never the worker's own, with
        its expiry (ISO 8601, UTC). It lives about an hour; the worker renews it in sync.json
        while a phase runs (activities/node_credentials.py)."""
        sync: dict[str, Any] = {"kind": "gcs", "bucket": _check(bucket), "prefix": clean_key(prefix),
                                "endpoint": self.settings.gcp.storage_endpoint}
        if credentials and not self.settings.gcp.storage_endpoint:
            sync.update(self._access_token(sync["bucket"], sync["prefix"]))
        return sync

    def _access_token(self, bucket: str, prefix: str) -> dict[str, str | None]:
        """A downscoped token with at least TOKEN_MIN_LEFT to live (refreshed when needed)."""
        from google.auth.exceptions import GoogleAuthError, TransportError
        from google.auth.exceptions import TimeoutError as GoogleAuthTimeout

        from spotctl.clouds.gcp_clients import gcp_credentials  # the worker's ADC; cached there
        from spotctl.clouds.gcp_node_token import downscoped_token

        try:
            creds, _ = gcp_credentials(self.settings)
        except GcpCredentialsMissing as exc:
            raise StorageError(f"GCS: {exc}") from None
        with _token_lock:  # the source credentials are shared: one refresh at a time
            try:
                token, expiry = downscoped_token(creds, bucket, prefix, _timed_request(), TOKEN_MIN_LEFT)
            except (TransportError, GoogleAuthTimeout):
                raise  # transient: the caller's policy retries
            except GoogleAuthError as exc:
                raise StorageError(f"GCS bucket {bucket!r}: cannot get a downscoped token for the node "
                                   f"agent: {str(exc).splitlines()[0][:300]}") from None
        return {"access_token": token,
                "token_expiry": expiry.replace(tzinfo=datetime.UTC).isoformat() if expiry else None}

    def local_path(self, bucket: str, prefix: str = "") -> str | None:
        return None


def _timed_request() -> Any:
    """google-auth's HTTP transport with spotctl's time-out (its own default is 120 s)."""
    from google.auth.transport.requests import Request

    class TimedRequest(Request):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = min(kwargs.get("timeout") or CALL_TIMEOUT_S, CALL_TIMEOUT_S)
            return super().__call__(*args, **kwargs)

    return TimedRequest()
