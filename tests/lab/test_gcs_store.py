"""GcsStore against fake-gcs-server over HTTP: outcomes are checked in the bucket (with a plain
google-cloud-storage client) and on disk, never on GcsStore's own word. What every bucket store
does (life cycle, missing buckets and objects, keys escaping the download dir) is
test_store_contract.py's."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

import gcs_lab as lab
import pytest
import requests
from gcs_lab import GcsLab, answering
from google.api_core import exceptions as gexc
from trees import read_tree

import spotctl.clouds.gcp_clients as gcp_clients
import spotctl.storage.gcs as gcs_module
from spotctl.launch import delete_buckets, stage
from spotctl.storage.base import StorageError
from spotctl.storage.gcs import GcsStore
from spotctl.storage.registry import bucket_url, parse_bucket_url
from spotctl.task import load_task_file

gcs_lab = lab.gcs_lab  # the fixtures, shared by module attribute
fake_gcs_endpoint = lab.fake_gcs_endpoint


def test_gs_bucket_urls() -> None:
    assert parse_bucket_url("gs://my-bucket/a/b/") == ("gcs", "my-bucket", "a/b")
    assert bucket_url("gcs", "my-bucket") == "gs://my-bucket" and bucket_url("s3", "b", "/p/") == "s3://b/p"


def test_many_objects_and_folder_markers(gcs_lab: GcsLab, tmp_path: Path) -> None:
    """Many files moved in parallel both ways and deleted with the bucket, and a folder marker
    ('d/', as the console makes): it only makes a directory. (fake-gcs-server answers every
    listing in one page, so paging is left to the library's iterator, untested here.)"""
    src = tmp_path / "many"
    for i in range(300):
        d = src / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:04d}").write_bytes(str(i).encode())
    store = GcsStore(gcs_lab.settings)
    store.create_bucket("many-bucket")
    store.upload_dir(str(src), "many-bucket", "p")
    gcs_lab.put("many-bucket", "p/empty-folder/", b"")
    keys = store.list("many-bucket", "p")
    assert len(keys) == 300 and keys == [k for k in gcs_lab.keys("many-bucket") if not k.endswith("/")]

    out = tmp_path / "out"
    store.download_dir("many-bucket", "p", str(out))
    assert read_tree(out) == read_tree(src) and (out / "empty-folder").is_dir()
    store.delete_bucket("many-bucket")
    assert gcs_lab.buckets() == []


def test_location_of_new_buckets(gcs_lab: GcsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """fake-gcs-server files every bucket under US-CENTRAL1, so the request itself is checked."""
    asked: list[dict[str, Any]] = []
    client = gcp_clients.storage_client(gcs_lab.settings)
    real = client.create_bucket
    monkeypatch.setattr(client, "create_bucket", lambda bucket, **kw: asked.append(kw) or real(bucket, **kw))
    GcsStore(gcs_lab.settings).create_bucket("default-place")
    gcs_lab.settings.gcp.regions = ["europe-west4", "us-east1"]
    GcsStore(gcs_lab.settings).create_bucket("eu-place")
    GcsStore(gcs_lab.settings, location="asia-east1").create_bucket("asia-place")
    assert [kw["location"] for kw in asked] == ["US-CENTRAL1", "EUROPE-WEST4", "ASIA-EAST1"]
    assert all(kw["timeout"] == gcp_clients.CALL_TIMEOUT_S and kw["retry"] is gcs_module.RETRY for kw in asked)
    for name in ("default-place", "eu-place", "asia-place"):
        GcsStore(gcs_lab.settings).delete_bucket(name)


@pytest.mark.parametrize("name", ["Bad_Name", "ab", "a..b", "192.168.1.10", "goog-bucket", "my-google-data",
                                  "-start", "end-", "a" * 64, "has space"])
def test_invalid_bucket_names_refused_before_any_call(gcs_lab: GcsLab, name: str) -> None:
    store = GcsStore(gcs_lab.settings)
    for call in (store.create_bucket, store.bucket_exists, store.delete_bucket, store.list, store.node_sync):
        with pytest.raises(StorageError, match=f"invalid bucket name '{name}'"):
            call(name)
    assert gcs_lab.buckets() == []


def test_gcs_names_laxer_than_s3_are_accepted(gcs_lab: GcsLab) -> None:
    store = GcsStore(gcs_lab.settings)
    for name in ("under_score-bucket", "xn--punycode-ok", "dotted.name." + "a" * 60):
        assert not store.bucket_exists(name)


def test_refusals_are_one_clear_storage_error(gcs_lab: GcsLab) -> None:
    """What fake-gcs-server cannot answer (it has no permissions): an endpoint answering 403,
    409 or 400 to everything."""
    store = GcsStore(gcs_lab.settings)
    with answering(403, "nobody@x.iam.gserviceaccount.com does not have storage.buckets.get access") as url:
        gcs_lab.settings.gcp.storage_endpoint = url
        gcp_clients.forget_clients()
        with pytest.raises(StorageError, match=r"^GCS bucket 'someone-elses' exists but is not yours"):
            store.bucket_exists("someone-elses")
        with pytest.raises(StorageError, match=r"^GCS bucket 'someone-elses': cannot list objects: access denied"):
            store.list("someone-elses")
    with answering(409, "The requested bucket name is not available.") as url:
        gcs_lab.settings.gcp.storage_endpoint = url
        gcp_clients.forget_clients()
        with pytest.raises(StorageError, match=r"^GCS bucket 'popular': cannot create it: the name is taken by "
                                               r"someone else \(bucket names are global\)$"):
            store.create_bucket("popular")
    with answering(400, "Invalid argument.\nsecond line") as url:
        gcs_lab.settings.gcp.storage_endpoint = url
        gcp_clients.forget_clients()
        with pytest.raises(StorageError) as info:
            store.create_bucket("any-bucket")
        assert str(info.value) == "GCS bucket 'any-bucket': cannot create the bucket in US-CENTRAL1: " \
                                  "refused (400): Invalid argument."
    gcs_lab.settings.gcp.storage_endpoint = gcs_lab.endpoint


def test_transient_trouble_is_not_a_storage_error(gcs_lab: GcsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Connection refused and 5xx must reach the caller's retry policy, not look like a bad
    bucket (the library's own retry is turned off here to keep the test short)."""
    monkeypatch.setattr(gcs_module, "RETRY", None)
    store = GcsStore(gcs_lab.settings)
    gcs_lab.settings.gcp.storage_endpoint = "http://127.0.0.1:9"  # discard port: connection refused
    gcp_clients.forget_clients()
    with pytest.raises(requests.exceptions.ConnectionError):
        store.bucket_exists("any-bucket")
    with answering(503, "Backend Error") as url:
        gcs_lab.settings.gcp.storage_endpoint = url
        gcp_clients.forget_clients()
        with pytest.raises(gexc.ServiceUnavailable):
            store.list("any-bucket")
    gcs_lab.settings.gcp.storage_endpoint = gcs_lab.endpoint


def test_bounded_library_retry_gives_up(gcs_lab: GcsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The library retries a 503, but only for RETRY_BUDGET_S in all."""
    monkeypatch.setattr(gcs_module, "RETRY", gcs_module.RETRY.with_timeout(1.0))
    with answering(503, "Backend Error") as url:
        gcs_lab.settings.gcp.storage_endpoint = url
        gcp_clients.forget_clients()
        with pytest.raises(gexc.RetryError):
            GcsStore(gcs_lab.settings).bucket_exists("any-bucket")
    gcs_lab.settings.gcp.storage_endpoint = gcs_lab.endpoint


def test_big_file_goes_resumable_in_chunks(gcs_lab: GcsLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 8 MiB uploads are resumable, in UPLOAD_CHUNK pieces (1 MiB here); downloads are
    one checksum-verified stream."""
    monkeypatch.setattr(gcs_module, "UPLOAD_CHUNK", 1024 * 1024)
    data = os.urandom(9 * 1024 * 1024 + 123)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(data)
    store = GcsStore(gcs_lab.settings)
    store.create_bucket("big-bucket")
    store.upload_dir(str(tmp_path / "src"), "big-bucket", "b")
    assert gcs_lab.body("big-bucket", "b/big.bin") == data
    store.download_dir("big-bucket", "b", str(tmp_path / "out"))
    store.download_file("big-bucket", "b/big.bin", str(tmp_path / "one.bin"))
    assert (tmp_path / "out" / "big.bin").read_bytes() == data == (tmp_path / "one.bin").read_bytes()
    store.delete_bucket("big-bucket")


def test_node_sync_in_the_lab(gcs_lab: GcsLab) -> None:
    sync = GcsStore(gcs_lab.settings).node_sync("data-bucket", "/ckpt/./run-1/")
    assert sync == {"kind": "gcs", "bucket": "data-bucket", "prefix": "ckpt/run-1", "endpoint": gcs_lab.endpoint}


class FakeCredentials:
    """Stands in for the worker's ADC credentials (google.auth's Credentials interface)."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.expiry: datetime.datetime | None = None
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"ya29.token-{self.refreshes}"
        self.expiry = datetime.datetime(2030, 1, 2, 3, 4, 5)  # naive UTC, as google-auth keeps it


class TokenExchange:
    """A local stand-in for Google's STS token exchange (fake-gcs-server has none): records
    each form it is posted and answers a new token, as sts.googleapis.com/v1/token does."""

    def __init__(self) -> None:
        import http.server
        import threading
        import urllib.parse

        self.forms: list[dict[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                outer.forms.append(dict(urllib.parse.parse_qsl(body)))
                answer = json.dumps({"access_token": f"downscoped-{len(outer.forms)}", "token_type": "Bearer",
                                     "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                                     "expires_in": 3600}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def test_node_sync_on_real_gcp_carries_a_downscoped_token(gcs_lab: GcsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """On real GCP the node gets a token exchanged for the worker's with a Credential Access
    Boundary naming only the mount's bucket and prefix, never the worker's own token; it is
    reused while it has TOKEN_MIN_LEFT to live, then exchanged anew."""
    from spotctl.clouds import gcp_node_token

    creds = FakeCredentials()
    sts = TokenExchange()
    monkeypatch.setattr(gcp_clients, "gcp_credentials", lambda settings: (creds, "my-project"))
    monkeypatch.setattr(gcp_node_token, "TOKEN_EXCHANGE_URL", sts.url)
    gcp_node_token.forget()
    settings = gcs_lab.settings.model_copy(deep=True)
    settings.gcp.storage_endpoint = None
    store = GcsStore(settings)
    try:
        first = store.node_sync("data-bucket", "ckpt/run-1")
        assert first["access_token"] == "downscoped-1" and "ya29" not in json.dumps(first)
        left = datetime.datetime.fromisoformat(first["token_expiry"]) - datetime.datetime.now(datetime.UTC)
        assert datetime.timedelta(minutes=59) < left <= datetime.timedelta(hours=1)
        [form] = sts.forms
        assert form["subject_token"] == "ya29.token-1"  # the worker's token stays with the worker
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
        [rule] = json.loads(urllib.parse.unquote(form["options"]))["accessBoundary"]["accessBoundaryRules"]
        assert rule["availableResource"] == "//storage.googleapis.com/projects/_/buckets/data-bucket"
        assert rule["availablePermissions"] == ["inRole:roles/storage.objectAdmin"]
        assert rule["availabilityCondition"]["expression"] == (
            "resource.name.startsWith('projects/_/buckets/data-bucket/objects/ckpt/run-1/') || "
            "api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('ckpt/run-1')")
        assert store.node_sync("data-bucket", "ckpt/run-1") == first and len(sts.forms) == 1  # reused
        other = store.node_sync("other-bucket", "")  # another mount: its own token, the whole bucket
        rule = json.loads(urllib.parse.unquote(sts.forms[-1]["options"]))["accessBoundary"]["accessBoundaryRules"][0]
        assert other["access_token"] == "downscoped-2" and "availabilityCondition" not in rule
        assert rule["availableResource"].endswith("/buckets/other-bucket")
        # No token at all for a VM with its own identity.
        assert "access_token" not in store.node_sync("data-bucket", "p", credentials=False)
    finally:
        sts.close()
        gcp_node_token.forget()


def test_a_gcp_vm_with_its_own_service_account_gets_no_token(gcs_lab: GcsLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """gcp.service_account: a GCP VM reaches its GCS buckets as that account (the agent asks
    the metadata server), so its sync.json carries no token; a VM without one (the default,
    or an AWS VM reading the bucket) gets the downscoped token."""
    from types import SimpleNamespace

    from spotctl.activities.mounts import sync_entries
    from spotctl.clouds import gcp_node_token
    from spotctl.models import FileMount

    sts = TokenExchange()
    monkeypatch.setattr(gcp_clients, "gcp_credentials", lambda settings: (FakeCredentials(), "my-project"))
    monkeypatch.setattr(gcp_node_token, "TOKEN_EXCHANGE_URL", sts.url)
    gcp_node_token.forget()
    settings = gcs_lab.settings.model_copy(deep=True)
    settings.gcp.storage_endpoint = None
    vm = SimpleNamespace(shares_host_files=False, home="/home/spotctl")  # where a VM's files go
    mounts = [FileMount(target="~/ckpt", bucket="data-bucket", bucket_path="ckpt", store="gcs", mode="MOUNT")]
    try:
        [entry] = sync_entries(settings, vm, mounts, "gcp")
        assert entry["access_token"] == "downscoped-1" and entry["target"] == "/home/spotctl/ckpt"
        settings.gcp.service_account = "spotctl-nodes@my-project.iam.gserviceaccount.com"
        [entry] = sync_entries(settings, vm, mounts, "gcp")
        assert not {"access_token", "token_expiry"} & set(entry) and entry["bucket"] == "data-bucket"
        [entry] = sync_entries(settings, vm, mounts, "aws")  # not the GCP account's VM
        assert entry["access_token"].startswith("downscoped-")
    finally:
        sts.close()
        gcp_node_token.forget()


def test_staged_gs_buckets_are_ephemeral_by_url(gcs_lab: GcsLab, tmp_path: Path) -> None:
    """A `store: gcs` bucket made for a job with persistent: false is recorded as gs://name
    (the job's own store is local) and deleted by the teardown; a gs:// source is used as is."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("X")
    store = GcsStore(gcs_lab.settings)
    store.create_bucket("shared-input")
    gcs_lab.put("shared-input", "part/one.txt", b"1")
    (tmp_path / "task.yaml").write_text("""
file_mounts:
  ~/scratch: {name: scratch-gcs, store: gcs, source: ./data, persistent: false}
  /ckpt: {name: ckpt-gcs, store: GCS}
  /input: gs://shared-input/part
  /one.txt: gs://shared-input/part/one.txt
run: echo
""")
    with contextlib.chdir(tmp_path):  # `source: ./data` is taken from the cwd, as in SkyPilot
        task = load_task_file(tmp_path / "task.yaml").tasks[0]
    staged = stage(task, 11, gcs_lab.settings)
    assert staged.ephemeral_buckets == ["gs://scratch-gcs"]
    scratch, ckpt, inp, one = staged.file_mounts
    assert (scratch.bucket, scratch.store) == ("scratch-gcs", "gcs") and gcs_lab.keys("scratch-gcs") == ["x.txt"]
    assert (ckpt.bucket, ckpt.store) == ("ckpt-gcs", "gcs")
    assert (inp.bucket, inp.bucket_path, inp.store, inp.is_file) == ("shared-input", "part", "gcs", False)
    assert (one.bucket_path, one.is_file) == ("part/one.txt", True)

    delete_buckets(staged.ephemeral_buckets, gcs_lab.settings)
    delete_buckets(staged.ephemeral_buckets, gcs_lab.settings)  # idempotent (a retried teardown)
    assert gcs_lab.buckets() == ["ckpt-gcs", "shared-input"]
    for name in ("ckpt-gcs", "shared-input"):
        store.delete_bucket(name)
