"""node_agent/bucket_sync.py (the stdlib S3 client and MOUNT_CACHED) against moto over HTTP, with
moto checking SigV4 signatures where it matters, and against AWS's published test vectors."""

from __future__ import annotations

import ast
import datetime
import http.server
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3_lab as lab
from s3_lab import S3Lab
from sync_contract import check_pull_refuses_keys_escaping_local_dir, check_run_until_pushes_periodically_and_at_stop

from spotctl.node_agent import bucket_sync
from spotctl.node_agent.bucket_sync import EMPTY_SHA256, CachedMount, S3Client, S3Error, sign_v4

s3_lab = lab.s3_lab  # the fixtures, shared by module attribute
moto_s3_endpoint = lab.moto_s3_endpoint

BUCKET = "sync-bucket"


@pytest.fixture
def bucket(s3_lab: S3Lab) -> Iterator[str]:
    s3_lab.client().create_bucket(Bucket=BUCKET)
    yield BUCKET
    raw = s3_lab.client()
    for key in s3_lab.keys(BUCKET):
        raw.delete_object(Bucket=BUCKET, Key=key)
    raw.delete_bucket(Bucket=BUCKET)


class CountingClient(S3Client):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.puts: list[str] = []

    def put_object(self, bucket: str, key: str, path: str) -> None:
        self.puts.append(key)
        super().put_object(bucket, key, path)


def client_for(lab: S3Lab, cls=S3Client, **kw) -> S3Client:
    return cls("us-east-1", endpoint=lab.endpoint, timeout=10, **kw)


# -- the module itself ------------------------------------------------------------------


def test_module_is_stdlib_only_and_python38_syntax() -> None:
    src = Path(bucket_sync.__file__).read_text()
    tree = ast.parse(src, feature_version=(3, 8))  # no match statements, walrus ok, etc.
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported


# -- Signature V4 against AWS's published examples ---------------------------------------


def test_sigv4_aws_test_suite_get_vanilla() -> None:
    """aws-sig-v4-test-suite 'get-vanilla' (AWS General Reference)."""
    now = datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.UTC)
    h = sign_v4("GET", "https://example.amazonaws.com/", {"Host": "example.amazonaws.com"}, EMPTY_SHA256,
                "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service", now)
    assert h["X-Amz-Date"] == "20150830T123600Z"
    assert h["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


S3_DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize("url, extra, signature", [
    # Amazon S3 API Reference, "Signature Calculations for the Authorization Header": GET Object
    ("https://examplebucket.s3.amazonaws.com/test.txt", {"Range": "bytes=0-9"},
     "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
    # ... and GET Bucket (List Objects), a signed query string
    ("https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", {},
     "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
])
def test_sigv4_s3_documentation_examples(url: str, extra: dict, signature: str) -> None:
    headers = {"Host": "examplebucket.s3.amazonaws.com", "x-amz-content-sha256": EMPTY_SHA256,
               "X-Amz-Date": "20130524T000000Z", **extra}
    h = sign_v4("GET", url, headers, EMPTY_SHA256, "AKIAIOSFODNN7EXAMPLE", S3_DOC_SECRET, "us-east-1")
    assert h["Authorization"].endswith(f"Signature={signature}")


# -- against moto ---------------------------------------------------------------------------


def test_signed_requests_accepted_and_bad_ones_refused_by_moto(s3_lab: S3Lab, bucket: str, tmp_path: Path) -> None:
    """With IAM auth on, moto recomputes each request's signature: ours must match it, and a
    wrong secret must not."""
    key_id, secret = s3_lab.iam_user("syncer")
    s3_lab.enable_auth()
    good = client_for(s3_lab, access_key=key_id, secret_key=secret)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(70_000))
    odd_key = "dir/with space+plus=eq&amp;ü.bin"
    good.put_object(bucket, odd_key, str(src))
    assert list(good.list_objects(bucket, "dir/")) == [(odd_key, 70_000)]
    good.get_object(bucket, odd_key, str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()

    bad = client_for(s3_lab, access_key=key_id, secret_key=secret + "x")
    with pytest.raises(S3Error) as info:
        list(bad.list_objects(bucket))
    assert info.value.status == 403 and info.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        bad.put_object(bucket, "nope", str(src))
    s3_lab.disable_auth()
    assert s3_lab.keys(bucket) == [odd_key]


def test_errors_and_paging(s3_lab: S3Lab, bucket: str, tmp_path: Path) -> None:
    c = client_for(s3_lab)
    with pytest.raises(S3Error) as info:
        c.get_object(bucket, "missing", str(tmp_path / "m"))
    assert info.value.status == 404 and info.value.code == "NoSuchKey"
    assert not (tmp_path / "m").exists() and os.listdir(tmp_path) == []  # no temporary file left
    with pytest.raises(S3Error, match="NoSuchBucket"):
        list(c.list_objects("no-such-bucket"))
    raw = s3_lab.client()
    for i in range(7):
        raw.put_object(Bucket=bucket, Key=f"p/{i}", Body=b"x" * i)
    assert list(c.list_objects(bucket, "p/", page_size=2)) == [(f"p/{i}", i) for i in range(7)]


def test_pull_push_round_trip(s3_lab: S3Lab, bucket: str, tmp_path: Path) -> None:
    raw = s3_lab.client()
    seed = {"ckpt/step-1.pt": b"one", "ckpt/meta/info.json": b"{}", "ckpt/odd name+1.txt": b"odd"}
    for key, body in seed.items():
        raw.put_object(Bucket=bucket, Key=key, Body=body)
    raw.put_object(Bucket=bucket, Key="other/ignored", Body=b"not under the prefix")
    raw.put_object(Bucket=bucket, Key="ckptx/ignored", Body=b"not under the prefix either")

    client = client_for(s3_lab, CountingClient)
    local = tmp_path / "mnt"
    m = CachedMount(bucket, "/ckpt/", str(local), client)
    assert m.pull() == 3
    assert {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()} == {
        "step-1.pt": b"one", "meta/info.json": b"{}", "odd name+1.txt": b"odd"}
    assert m.push() == [] and client.puts == []  # what was pulled is not sent back

    (local / "step-2.pt").write_bytes(b"two")  # new
    (local / "meta" / "info.json").write_bytes(b'{"step": 2}')  # changed (size)
    (local / "step-3.pt.tmp").write_bytes(b"half-written")  # temporary: skipped
    assert sorted(m.push()) == ["meta/info.json", "step-2.pt"]
    assert s3_lab.body(bucket, "ckpt/step-2.pt") == b"two"
    assert s3_lab.body(bucket, "ckpt/meta/info.json") == b'{"step": 2}'
    assert "ckpt/step-3.pt.tmp" not in s3_lab.keys(bucket)

    # same size, new mtime: changed too; then nothing is re-uploaded
    st = os.stat(local / "step-1.pt")
    (local / "step-1.pt").write_bytes(b"ONE")
    os.utime(local / "step-1.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    client.puts.clear()
    assert m.push() == ["step-1.pt"] and client.puts == ["ckpt/step-1.pt"]
    assert s3_lab.body(bucket, "ckpt/step-1.pt") == b"ONE"
    client.puts.clear()
    assert m.push() == [] and m.push() == [] and client.puts == []

    # a fresh VM pulls what the last one pushed
    again = tmp_path / "mnt2"
    CachedMount(bucket, "ckpt", str(again), client_for(s3_lab)).pull()
    assert (again / "step-1.pt").read_bytes() == b"ONE" and (again / "meta" / "info.json").read_bytes() == b'{"step": 2}'
    assert not (again / "ignored").exists()


def test_pull_of_empty_prefix_and_whole_bucket(s3_lab: S3Lab, bucket: str, tmp_path: Path) -> None:
    m = CachedMount(bucket, "nothing/yet", str(tmp_path / "empty"), client_for(s3_lab))
    assert m.pull() == 0 and (tmp_path / "empty").is_dir()
    (tmp_path / "empty" / "first").write_bytes(b"1")
    assert m.push() == ["first"] and s3_lab.keys(bucket) == ["nothing/yet/first"]
    whole = CachedMount(bucket, "", str(tmp_path / "whole"), client_for(s3_lab))
    assert whole.pull() == 1 and (tmp_path / "whole" / "nothing" / "yet" / "first").read_bytes() == b"1"


def test_pull_refuses_keys_escaping_local_dir(s3_lab: S3Lab, bucket: str, tmp_path: Path) -> None:
    check_pull_refuses_keys_escaping_local_dir(s3_lab, bucket, client_for(s3_lab), tmp_path, match="outside")


def test_run_until_pushes_periodically_and_at_stop(s3_lab: S3Lab, bucket: str, tmp_path: Path) -> None:
    check_run_until_pushes_periodically_and_at_stop(s3_lab, bucket, client_for(s3_lab), tmp_path)


# -- credentials and time-outs -------------------------------------------------------------


class _FakeIMDS(http.server.BaseHTTPRequestHandler):
    creds: dict = {}

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, body: str) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_PUT(self) -> None:
        ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self._send(200 if ok else 400, "tok")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "tok":
            return self._send(401, "")
        if self.path == "/latest/meta-data/iam/security-credentials/":
            return self._send(200, "the-role\n")
        if self.path == "/latest/meta-data/iam/security-credentials/the-role":
            return self._send(200, json.dumps(self.creds))
        self._send(404, "")


def test_instance_role_credentials_via_imdsv2(s3_lab: S3Lab, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key_id, secret = s3_lab.iam_user("role-user")
    expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _FakeIMDS.creds = {"AccessKeyId": key_id, "SecretAccessKey": secret, "Token": None, "Expiration": expires}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeIMDS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        s3_lab.enable_auth()
        c = client_for(s3_lab, imds_url=f"http://127.0.0.1:{server.server_port}")
        assert list(c.list_objects(bucket)) == []
        nothing = client_for(s3_lab, imds_url="http://127.0.0.1:9")
        with pytest.raises(S3Error, match="no AWS credentials"):
            list(nothing.list_objects(bucket))
    finally:
        s3_lab.disable_auth()
        server.shutdown()
        server.server_close()


def test_every_call_has_a_time_out(tmp_path: Path) -> None:
    """A server that accepts the connection and never answers: the call gives up in time."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        c = S3Client("us-east-1", endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}",
                     access_key="k", secret_key="s", timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(S3Error) as info:
            list(c.list_objects("any-bucket"))
        assert info.value.status == 0 and time.monotonic() - t0 < 5
