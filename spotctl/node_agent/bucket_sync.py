"""MOUNT_CACHED on any VM: a local directory kept in step with `s3://bucket/prefix` or
`gs://bucket/prefix`.

Stdlib only (copied next to agent.py and imported by it; Python 3.8+). `CachedMount` pulls a
prefix into a directory once, then pushes what changed there, every few seconds and once more
at the end. It talks to the bucket through a client with three methods (the only difference
between clouds): `list_objects(bucket, prefix)` yielding (key, size), `get_object(bucket, key,
path)` and `put_object(bucket, key, path)`; `client_for(spec)` makes one from a sync.json entry.

- `S3Client`: AWS Signature V4 (ListObjectsV2, GetObject, PutObject, single part, so objects
  up to 5 GiB). Credentials: explicit arguments (short-lived ones scoped to the mount, which
  the worker renews in sync.json: `reload` re-reads them as they near expiry), else
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else the instance role
  through IMDSv2 (refreshed before it expires).
- `GcsClient`: the GCS JSON API (list, media download, single-request media upload). Token:
  none with an endpoint override (the lab's fake-gcs-server), else the access token given
  while it is valid (re-read through `reload` near expiry), else the GCE metadata server's
  service-account token (refreshed before it expires).

`python3 bucket_sync.py credentials SYNC_JSON TARGET` prints an entry's credentials as an AWS
`credential_process` does, so mount-s3 (whose environment cannot be renewed) re-reads them.

Every HTTP call has a time-out. Deleting a local file does not delete its object.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

TIMEOUT_S = 30.0
"""Per HTTP call: connect, and each read of the response (urllib's socket time-out)."""
IMDS_URL = "http://169.254.169.254"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
TEMP_SUFFIXES = (".tmp", ".temp", ".part", ".swp", "~")
"""Files still being written by their program (renamed into place when done) are not pushed."""


class SyncError(Exception):
    """A bucket request that failed (S3Error, GcsError): a periodic push reports and retries it."""


class S3Error(SyncError):
    """An S3 request that failed; `status` is the HTTP status (0 = no answer), `code` S3's."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"S3 {status} {code}: {message}")
        self.status, self.code = status, code


def _quote(s: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(s, safe=safe)


def sign_v4(method: str, url: str, headers: dict, payload_hash: str, access_key: str, secret_key: str,
            region: str, service: str = "s3", now: datetime.datetime | None = None) -> dict:
    """Return `headers` plus X-Amz-Date and Authorization (AWS Signature Version 4).

    `url`'s path and query must already be URI-encoded as they will be sent; `headers` must
    hold every header to sign (Host included; X-Amz-Date is added unless given)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (Python 3.8)
    headers = dict(headers)
    amz_date = headers.setdefault("X-Amz-Date", now.strftime("%Y%m%dT%H%M%SZ"))
    day = amz_date[:8]
    parts = urllib.parse.urlsplit(url)
    query = sorted((_quote(k), _quote(v)) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canon = {k.lower().strip(): " ".join(str(v).split()) for k, v in headers.items()}
    signed = ";".join(sorted(canon))
    request = "\n".join([method, parts.path or "/", "&".join(f"{k}={v}" for k, v in query),
                         "".join(f"{k}:{canon[k]}\n" for k in sorted(canon)), signed, payload_hash])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    return headers


def imds_credentials(base: str = IMDS_URL, timeout: float = 2.0) -> dict:
    """The instance role's credentials via IMDSv2: {"AccessKeyId", "SecretAccessKey", "Token",
    "Expiration"}. Raises OSError/ValueError when there is no metadata service or role."""
    put = urllib.request.Request(f"{base}/latest/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
    with urllib.request.urlopen(put, timeout=timeout) as r:
        token = r.read().decode()

    def get(path: str) -> str:
        req = urllib.request.Request(f"{base}{path}", headers={"X-aws-ec2-metadata-token": token})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read().decode()

    role = get("/latest/meta-data/iam/security-credentials/").split()[0]
    return json.loads(get(f"/latest/meta-data/iam/security-credentials/{role}"))


def _download(open_response, path: str) -> None:
    """Stream `open_response()` into `path` through a temporary name, so a reader (or a failed
    download) never leaves a half-written file there; never writes through a symlink."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.spotctl-get.{os.getpid()}"
    try:
        with open_response() as r, open(tmp, "wb") as f:
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
        if os.path.islink(path):
            os.unlink(path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


CREDENTIALS_MARGIN_S = 300.0
"""Given credentials are re-read (a role's re-fetched) this long before they expire."""
RELOAD_EVERY_S = 10.0
"""Near expiry, sync.json is re-read at most this often until the worker's renewal is there."""


class Renewals:
    """The worker's renewed credentials for one bucket (sync.json, through `reload`), read at
    most every RELOAD_EVERY_S: a client asks while its own near expiry, on every request."""

    def __init__(self, reload) -> None:
        self.reload, self.next_at = reload, 0.0

    def due(self) -> dict | None:
        """The entry as sync.json has it now; None when not due yet, or unreadable."""
        now = time.time()
        if self.reload is None or now < self.next_at:
            return None
        self.next_at = now + RELOAD_EVERY_S
        try:
            return self.reload() or {}
        except (OSError, ValueError) as exc:
            print(f"bucket_sync: cannot re-read the renewed credentials: {exc}", file=sys.stderr)
            return None


class S3Client:
    """Just enough S3 for CachedMount. Path-style URLs against `endpoint` (default
    https://s3.<region>.amazonaws.com, where DNS-safe bucket names use virtual hosts).

    `reload`, with given credentials: a function returning the entry's current ones (a dict
    with access_key, secret_key, session_token, expiration), called as they near expiry."""

    scheme = "s3"

    def __init__(self, region: str, endpoint: str | None = None, access_key: str | None = None,
                 secret_key: str | None = None, session_token: str | None = None,
                 timeout: float = TIMEOUT_S, imds_url: str = IMDS_URL, expiration: str | None = None,
                 reload=None) -> None:
        self.region, self.timeout, self.imds_url = region, timeout, imds_url
        self.endpoint = (endpoint or f"https://s3.{region}.amazonaws.com").rstrip("/")
        self.virtual_hosts = endpoint is None
        env = os.environ
        self._creds = (access_key or env.get("AWS_ACCESS_KEY_ID"), secret_key or env.get("AWS_SECRET_ACCESS_KEY"),
                       session_token if access_key else env.get("AWS_SESSION_TOKEN"))
        self._given = bool(access_key and secret_key)
        self.renewals = Renewals(reload if self._given else None)
        self._expires = ((_epoch(expiration) if expiration else float("inf")) if self._given
                         else float("inf") if self._creds[0] and self._creds[1] else 0.0)

    def _reloaded(self) -> bool:
        """Take the renewed credentials of sync.json, if the worker has written newer ones."""
        fresh = self.renewals.due()
        if not (fresh and fresh.get("access_key") and fresh.get("secret_key")):
            return False
        expires = _epoch(fresh.get("expiration")) if fresh.get("expiration") else float("inf")
        if expires <= self._expires:
            return False
        self._creds = (fresh["access_key"], fresh["secret_key"], fresh.get("session_token"))
        self._expires = expires
        return True

    def _credentials(self) -> tuple:
        if self._given:  # the worker's renewals; the given ones until refused if none came
            if time.time() > self._expires - CREDENTIALS_MARGIN_S:
                self._reloaded()
            return self._creds
        if time.time() > self._expires - CREDENTIALS_MARGIN_S:  # none yet, or a role's expiring soon
            try:
                c = imds_credentials(self.imds_url, timeout=min(self.timeout, 5.0))
            except (OSError, ValueError, IndexError) as exc:
                raise S3Error(0, "NoCredentials", f"no AWS credentials in the environment or from "
                                                  f"the instance metadata service ({exc})") from None
            exp = datetime.datetime.strptime(c["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
            self._creds = (c["AccessKeyId"], c["SecretAccessKey"], c.get("Token"))
            self._expires = exp.replace(tzinfo=datetime.timezone.utc).timestamp()  # noqa: UP017
        return self._creds

    def _url(self, bucket: str, key: str = "", query: dict | None = None) -> str:
        base = self.endpoint
        if self.virtual_hosts and "." not in bucket:
            scheme, host = base.split("://", 1)
            base, path = f"{scheme}://{bucket}.{host}", "/" + _quote(key, "/-_.~")
        else:
            path = f"/{bucket}/" + _quote(key, "/-_.~")
        qs = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted((query or {}).items()))
        return base + path + ("?" + qs if qs else "")

    def request(self, method: str, bucket: str, key: str = "", query: dict | None = None, body=None,
                length: int = 0, payload_hash: str = EMPTY_SHA256):
        """Send one signed request; returns the open response (the caller closes it)."""
        url = self._url(bucket, key, query)
        access, secret, token = self._credentials()
        headers = {"Host": urllib.parse.urlsplit(url).netloc, "X-Amz-Content-SHA256": payload_hash}
        if token:
            headers["X-Amz-Security-Token"] = token
        headers = sign_v4(method, url, headers, payload_hash, access, secret, self.region)
        if body is not None:
            headers.update({"Content-Length": str(length), "Content-Type": "application/octet-stream"})
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            code = text.split("<Code>", 1)[-1].split("</Code>", 1)[0] if "<Code>" in text else exc.reason
            msg = text.split("<Message>", 1)[-1].split("</Message>", 1)[0] if "<Message>" in text else ""
            raise S3Error(exc.code, str(code), f"{method} s3://{bucket}/{key}: {msg}") from None
        except OSError as exc:  # refused, reset, timed out
            raise S3Error(0, "NoAnswer", f"{method} s3://{bucket}/{key}: {exc}") from None

    def list_objects(self, bucket: str, prefix: str = "", page_size: int = 1000):
        """Yield (key, size) of every object under `prefix`, page by page."""
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix, "encoding-type": "url", "max-keys": str(page_size)}
            if token:
                query["continuation-token"] = token
            with self.request("GET", bucket, query=query) as r:
                root = ET.fromstring(r.read())
            for c in root.iter(_NS + "Contents"):
                yield urllib.parse.unquote_plus(c.findtext(_NS + "Key") or ""), int(c.findtext(_NS + "Size") or 0)
            token = root.findtext(_NS + "NextContinuationToken")
            if root.findtext(_NS + "IsTruncated") != "true" or not token:
                return

    def get_object(self, bucket: str, key: str, path: str) -> None:
        """Stream the object into `path` (written to a temporary name, then renamed)."""
        _download(lambda: self.request("GET", bucket, key), path)

    def put_object(self, bucket: str, key: str, path: str) -> None:
        """Upload a file in one PUT, streamed from disk (its SHA-256 is signed: one extra read)."""
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
        with open(path, "rb") as f:
            self.request("PUT", bucket, key, body=f, length=size, payload_hash=digest.hexdigest()).close()


GCS_ENDPOINT = "https://storage.googleapis.com"
GCE_METADATA_URL = "http://metadata.google.internal"
TOKEN_MARGIN_S = 300.0
"""A token is replaced this long before it expires (GCE's last an hour), so no call uses a
token that expires on the way."""


class GcsError(SyncError):
    """A GCS request that failed; `status` is the HTTP status (0 = no answer)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"GCS {status} {reason}: {message}")
        self.status, self.code = status, reason


def _epoch(iso: str | None) -> float:
    """An ISO time (Z, an offset, or naive UTC as google-auth keeps `expiry`) in epoch seconds;
    no time or one that cannot be read means 'unknown': the token is used until refused."""
    try:
        when = datetime.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)  # noqa: UP017 (Python 3.8)
    return when.timestamp()


def gce_token(base: str = GCE_METADATA_URL, timeout: float = 5.0) -> tuple:
    """(access token, expiry in epoch seconds) of the VM's default service account, from the
    GCE metadata server. Raises OSError/ValueError/KeyError when there is none."""
    req = urllib.request.Request(f"{base}/computeMetadata/v1/instance/service-accounts/default/token",
                                 headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        answer = json.loads(r.read().decode())
    return answer["access_token"], time.time() + float(answer.get("expires_in", 0))


class GcsClient:
    """Just enough of the GCS JSON API for CachedMount, against `endpoint` (default Google's).

    `anonymous` (default: an endpoint was given, i.e. the lab's fake-gcs-server) sends no
    Authorization header. Otherwise the token is `access_token` until `token_expiry` (ISO)
    comes near, then the metadata server's at `metadata_url`; a 401 drops the token at hand
    and asks the metadata server once more."""

    scheme = "gs"

    def __init__(self, endpoint: str | None = None, access_token: str | None = None,
                 token_expiry: str | None = None, metadata_url: str | None = None,
                 timeout: float = TIMEOUT_S, anonymous: bool | None = None, reload=None) -> None:
        self.endpoint = (endpoint or GCS_ENDPOINT).rstrip("/")
        self.anonymous = endpoint is not None if anonymous is None else anonymous
        self.metadata_url = (metadata_url or GCE_METADATA_URL).rstrip("/")
        self.timeout = timeout
        self._token = access_token
        self._expires = _epoch(token_expiry) if access_token and token_expiry else (
            float("inf") if access_token else 0.0)
        self.renewals = Renewals(reload if access_token else None)

    def _reloaded(self) -> bool:
        """Take the worker's renewed token from sync.json, if it is newer than the one at hand."""
        fresh = self.renewals.due()
        if not fresh:
            return False
        expires = _epoch(fresh.get("token_expiry")) if fresh.get("access_token") else 0.0
        if expires <= max(self._expires, time.time() + TOKEN_MARGIN_S):
            return False
        self._token, self._expires = fresh["access_token"], expires
        return True

    def _access_token(self) -> str:
        if time.time() > self._expires - TOKEN_MARGIN_S and not self._reloaded():
            try:
                self._token, self._expires = gce_token(self.metadata_url, timeout=min(self.timeout, 5.0))
            except (OSError, ValueError, KeyError) as exc:
                raise GcsError(0, "NoCredentials", "no valid access token given and none from the GCE "
                                                   f"metadata server at {self.metadata_url} ({exc})") from None
        return str(self._token)

    def request(self, method: str, path: str, query: dict, body=None, length: int = 0, what: str = ""):
        """Send one request (`path` already quoted); returns the open response (the caller
        closes it)."""
        url = f"{self.endpoint}{path}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"
        for attempt in (1, 2):
            headers = {} if self.anonymous else {"Authorization": f"Bearer {self._access_token()}"}
            if body is not None:
                body.seek(0)
                headers.update({"Content-Length": str(length), "Content-Type": "application/octet-stream"})
            try:
                return urllib.request.urlopen(urllib.request.Request(url, data=body, method=method, headers=headers),
                                              timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                text = exc.read().decode(errors="replace")
                if exc.code == 401 and attempt == 1 and not self.anonymous:
                    self._expires = 0.0  # a revoked or expired token: the metadata server's next
                    continue
                raise GcsError(exc.code, str(exc.reason), f"{method} {what}: {text[:300]}") from None
            except OSError as exc:  # refused, reset, timed out
                raise GcsError(0, "NoAnswer", f"{method} {what}: {exc}") from None
        raise AssertionError("unreachable")

    def list_objects(self, bucket: str, prefix: str = "", page_size: int = 1000):
        """Yield (name, size) of every object under `prefix`, page by page."""
        token = None
        while True:
            query = {"prefix": prefix, "maxResults": str(page_size), "fields": "items(name,size),nextPageToken"}
            if token:
                query["pageToken"] = token
            with self.request("GET", f"/storage/v1/b/{_quote(bucket)}/o", query, what=f"gs://{bucket}/{prefix}") as r:
                page = json.loads(r.read().decode())
            for item in page.get("items", []):
                yield item["name"], int(item.get("size", 0))
            token = page.get("nextPageToken")
            if not token:
                return

    def get_object(self, bucket: str, key: str, path: str) -> None:
        """Stream the object into `path` (written to a temporary name, then renamed)."""
        where = f"/storage/v1/b/{_quote(bucket)}/o/{_quote(key)}"
        _download(lambda: self.request("GET", where, {"alt": "media"}, what=f"gs://{bucket}/{key}"), path)

    def put_object(self, bucket: str, key: str, path: str) -> None:
        """Upload a file in one media upload, streamed from disk."""
        with open(path, "rb") as f:
            self.request("POST", f"/upload/storage/v1/b/{_quote(bucket)}/o", {"uploadType": "media", "name": key},
                         body=f, length=os.fstat(f.fileno()).st_size, what=f"gs://{bucket}/{key}").close()


def client_for(spec: dict, metadata_url: str | None = None, reload=None):
    """The client for one sync.json entry (storage's `node_sync()`): kind "s3" (the default)
    or "gcs". `metadata_url` is where a GCS client asks for the VM's token; `reload` returns
    the entry as the worker last renewed it (see `entry_of`)."""
    kind = spec.get("kind", "s3")
    if kind == "s3":
        return S3Client(spec["region"], endpoint=spec.get("endpoint"), access_key=spec.get("access_key"),
                        secret_key=spec.get("secret_key"), session_token=spec.get("session_token"),
                        expiration=spec.get("expiration"), reload=reload)
    if kind == "gcs":
        return GcsClient(endpoint=spec.get("endpoint"), access_token=spec.get("access_token"),
                         token_expiry=spec.get("token_expiry"), metadata_url=metadata_url, reload=reload)
    raise ValueError(f"unknown bucket kind {kind!r} in sync.json")


def entry_of(sync_json: str, target: str):
    """The entry of `target` in the sync.json at that path, as it is now; None when the file
    or the entry is gone (the attempt ended)."""
    try:
        with open(sync_json) as f:
            entries = json.load(f)
    except FileNotFoundError:
        return None
    return next((e for e in entries if isinstance(e, dict) and e.get("target") == target), None)


def credential_process(sync_json: str, target: str) -> int:
    """Print the entry's S3 credentials as an AWS `credential_process` must (Version 1); 1
    when there are none."""
    e = entry_of(sync_json, target) or {}
    if not (e.get("access_key") and e.get("secret_key")):
        print(f"bucket_sync: no credentials for {target} in {sync_json}", file=sys.stderr)
        return 1
    out = {"Version": 1, "AccessKeyId": e["access_key"], "SecretAccessKey": e["secret_key"]}
    if e.get("session_token"):
        out["SessionToken"] = e["session_token"]
    if e.get("expiration"):
        out["Expiration"] = e["expiration"]
    print(json.dumps(out))
    return 0


class CachedMount:
    """`local_dir` as a cache of s3://bucket/prefix (or gs://...): `pull()` once, then `push()`
    changes. `client` is an S3Client or a GcsClient (see the module docstring)."""

    def __init__(self, bucket: str, prefix: str, local_dir: str, client) -> None:
        self.bucket, self.local_dir, self.client = bucket, os.path.abspath(local_dir), client
        self.prefix = "/".join(p for p in prefix.split("/") if p)
        self.state: dict = {}
        """relpath -> [size, mtime_ns] of each file as it is in the bucket (after pull/push)."""

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _stat(self, path: str) -> list:
        st = os.stat(path)
        return [st.st_size, st.st_mtime_ns]

    def pull(self) -> int:
        """Download every object under the prefix; returns how many. Keys that would land
        outside local_dir ('..', absolute) are refused with ValueError before any download."""
        start = self.prefix + "/" if self.prefix else ""
        todo = []
        for key, _size in self.client.list_objects(self.bucket, start):
            rel = key[len(start):]
            parts = [p for p in rel.split("/") if p not in ("", ".")]
            if rel.startswith("/") or ".." in parts:
                raise ValueError(f"refusing {self.client.scheme}://{self.bucket}/{key}: it would land outside {self.local_dir}")
            if parts and not key.endswith("/"):
                todo.append((key, "/".join(parts)))
        os.makedirs(self.local_dir, exist_ok=True)
        for key, rel in todo:
            path = os.path.join(self.local_dir, *rel.split("/"))
            self.client.get_object(self.bucket, key, path)
            self.state[rel] = self._stat(path)
        return len(todo)

    def changed(self) -> list:
        """Relative paths of files new or changed (size or mtime) since the last pull/push."""
        out = []
        for dirpath, dirnames, filenames in os.walk(self.local_dir):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if name.endswith(TEMP_SUFFIXES) or name.startswith(".#") or not os.path.isfile(path):
                    continue
                rel = os.path.relpath(path, self.local_dir).replace(os.sep, "/")
                try:
                    if self.state.get(rel) != self._stat(path):
                        out.append(rel)
                except FileNotFoundError:
                    continue  # removed meanwhile
        return out

    def push(self) -> list:
        """Upload what changed; returns the uploaded relative paths. A file that changes while
        it is sent is not marked as pushed, so the next push sends it again. Idempotent."""
        done = []
        for rel in self.changed():
            path = os.path.join(self.local_dir, *rel.split("/"))
            try:
                before = self._stat(path)
                self.client.put_object(self.bucket, self._key(rel), path)
            except FileNotFoundError:
                continue
            try:
                if self._stat(path) == before:
                    self.state[rel] = before
            except FileNotFoundError:
                pass
            done.append(rel)
        return done

    def run_until(self, stop_event, interval_s: float = 5.0) -> None:
        """Push every `interval_s` seconds until `stop_event` (a threading.Event) is set, then
        once more. Errors of a periodic push are reported on stderr and retried next round;
        the final push raises its error."""
        while not stop_event.wait(interval_s):
            try:
                self.push()
            except (SyncError, OSError) as exc:
                print(f"bucket_sync: push to {self.client.scheme}://{self.bucket}/{self.prefix} failed: {exc}", file=sys.stderr)
        self.push()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "credentials":
        sys.exit(credential_process(sys.argv[2], sys.argv[3]))
    sys.stderr.write("usage: bucket_sync.py credentials SYNC_JSON TARGET\n")
    sys.exit(2)
