"""Another local user can neither decrypt payloads nor reach the embedded server.

Every user of the machine can connect to 127.0.0.1. Hostile testing found that uid 65534, with
a history read from the server, got a job's secret back from the codec endpoint's `/decode`,
and could cancel or terminate the owner's jobs through the dev server's gRPC port or web UI.
Now the codec endpoint answers only connections whose client socket is the owner's (the
kernel's word, spotctl/codec/peer_uid.py): anyone else gets 403; and when spotctl runs as root, an
nftables table (spotctl/embedded/port_guard.py) resets other users' connections to the gRPC, UI and
codec ports. The owner (its CLI, its browser) is not affected. Needs root, to act as uid 65534
(setpriv); the port test needs nft too.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
from datetime import UTC, datetime
from pathlib import Path

import pytest
import test_supervisor
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from test_codec_server_cmd import _codec_server, _post
from test_secrets import codec_call
from test_supervisor import Embedded, spotctl, wait_until

from spotctl.client import workflow_id
from spotctl.codec import peer_uid
from spotctl.config import load_settings
from spotctl.embedded import port_guard
from spotctl.models import TASK_QUEUE, Candidate, JobSpec
from spotctl.models.naming import job_of_cluster

from conftest import Spot, free_port

embedded = test_supervisor.embedded
"""A private home and ports; everything stopped and checked gone at the end (test_supervisor.py)."""

NOBODY = 65534
LOCAL_CANDIDATE = Candidate(cloud="local", region="local-east", zone="local-east-1a", instance_type="local.small",
                            use_spot=True, price=0.01)
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv to act as another user")

POST_AS_OTHER_USER = """
import sys, urllib.request, urllib.error
port, origin = sys.argv[1], sys.argv[2]
req = urllib.request.Request(f"http://127.0.0.1:{port}/decode", data=sys.stdin.buffer.read(), method="POST",
                             headers={"Content-Type": "application/json", "Origin": origin})
try:
    with urllib.request.urlopen(req, timeout=10) as resp:
        print(resp.status); print(resp.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code); print(exc.read().decode())
except (urllib.error.URLError, OSError) as exc:
    print(0); print(exc)
"""

CONNECT_AS_OTHER_USER = """
import socket, sys
for port in sys.argv[1:]:
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=5).close()
        print(port, "connected")
    except OSError as exc:
        print(port, "refused", exc)
"""


def decode_as(uid: int, port: int, origin: str, payloads: Payloads) -> tuple[int, str]:
    """POST payloads to /decode from a process of `uid` (the system python: no access to the
    owner's venv needed); its HTTP status (0: no connection) and body."""
    out = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "/usr/bin/python3", "-I", "-c",
         POST_AS_OTHER_USER, str(port), origin],
        input=json_format.MessageToJson(payloads).encode(), capture_output=True, timeout=30, cwd="/")
    assert out.returncode == 0, out.stderr.decode()
    status, _, body = out.stdout.decode().partition("\n")
    return int(status), body


def secret_payloads(value: str) -> Payloads:
    return Payloads(payloads=[Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({"HF_TOKEN": value}).encode())])


@needs_root
def test_other_user_cannot_decode_with_the_embedded_endpoint(spot: Spot) -> None:
    value = "hf_" + secrets.token_hex(16)
    sealed = codec_call(spot, "encode", secret_payloads(value))  # what a history holds
    assert value.encode() not in sealed.payloads[0].data
    s = spot.settings
    status, body = decode_as(NOBODY, s.embedded.codec_port, s.ui_url, sealed)
    # Refused by the port guard (root with nft), else by the endpoint itself.
    assert status in (0, 403), body
    assert value not in body
    if status == 403:
        assert "owner" in body
        assert f"refused a codec request from uid {NOBODY}" in (s.server_dir / "worker.log").read_text()
    assert value.encode() in codec_call(spot, "decode", sealed).payloads[0].data  # the owner still decodes


@needs_root
def test_other_user_cannot_decode_with_codec_server_command(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    proc = _codec_server(tmp_path, "--port", str(port), "--ui-port", str(ui_port))
    try:
        value = "s3cr3t-" + secrets.token_hex(8)
        deadline = time.monotonic() + 20
        while True:
            try:
                sealed, _ = _post(port, "encode", secret_payloads(value), ui_port)
                break
            except urllib.error.URLError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the codec endpoint never answered"
                time.sleep(0.1)
        status, body = decode_as(NOBODY, port, f"http://localhost:{ui_port}", sealed)
        assert status == 403 and value not in body, body
        decoded, _ = _post(port, "decode", sealed, ui_port)
        assert value.encode() in decoded.payloads[0].data
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0



@needs_root
@pytest.mark.skipif(port_guard._nft() is None, reason="needs nft (apt install nftables)")
def test_other_user_cannot_reach_the_embedded_server(embedded: Embedded, tmp_path: Path) -> None:
    started = spotctl(embedded.env, "server", "start")
    assert started.returncode == 0, started.stderr
    task = tmp_path / "wait.yaml"
    task.write_text("name: wait\nrun: sleep 600\n")
    launched = spotctl(embedded.env, "launch", "-y", "-d", str(task))
    assert launched.returncode == 0, launched.stderr
    s = load_settings(embedded.home)
    ports = [s.embedded.port, s.embedded.ui_port, s.embedded.codec_port]
    as_nobody = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3", "-I", "-c",
         CONNECT_AS_OTHER_USER, *map(str, ports)], capture_output=True, text=True, timeout=60, cwd="/")
    assert as_nobody.returncode == 0, as_nobody.stderr
    # No connection, so no listing, starting, signalling, cancelling or terminating a job.
    assert all(" refused " in line for line in as_nobody.stdout.splitlines()), as_nobody.stdout
    assert len(as_nobody.stdout.splitlines()) == 3, as_nobody.stdout
    # The owner is not affected: its CLI lists and cancels the job, and says who may connect.
    status = spotctl(embedded.env, "server", "status", "--json")
    assert json.loads(status.stdout)["other_users"].startswith("refused"), status.stdout
    assert spotctl(embedded.env, "cancel", "-y", "1").returncode == 0
    wait_until(lambda: embedded.jobs_directly().get(1) == "CANCELLED", 60, "job 1 to be cancelled")
    # `server stop` takes the rules away with the server.
    assert spotctl(embedded.env, "server", "stop").returncode == 0
    assert not port_guard.active(s)


@needs_root
def test_peer_uid_names_the_user_of_the_client_socket() -> None:
    """Both ways of asking the kernel (inet_diag, and /proc/net/tcp when that is missing) name
    the uid of the process at the other end of a loopback connection, ours or another user's."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        other = subprocess.Popen(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3", "-I", "-c",
             "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); s.recv(1)", str(port)],
            cwd="/")
        try:
            listener.settimeout(20)
            theirs, their_addr = listener.accept()
            with theirs, socket.create_connection(("127.0.0.1", port)) as mine_client:
                mine, my_addr = listener.accept()
                with mine:
                    for conn, addr, uid in ((theirs, their_addr, NOBODY), (mine, my_addr, os.getuid())):
                        ours = conn.getsockname()
                        assert peer_uid.peer_uid(addr, ours) == uid
                        assert peer_uid._proc_peer_uid(peer_uid._normal(*addr), peer_uid._normal(*ours)) == uid
                    assert mine_client.getsockname()[1] == my_addr[1]
                theirs.sendall(b"x")
        finally:
            other.wait(10)
    # A connection that is not there has no owner.
    assert peer_uid.peer_uid(("127.0.0.1", 1), ("127.0.0.1", port)) is None


def test_worker_refuses_a_job_started_without_the_codec_key(spot: Spot, tmp_path: Path) -> None:
    """Whoever reaches the server's port without the key (another local user where the ports
    are open) could start a job in clear for the owner's worker to run as the owner. The worker
    refuses payloads in clear: nothing runs, no instance starts, and the log says why."""
    marker = tmp_path / "pwned"
    job_id = 900_000_000 + secrets.randbelow(10**8)
    spec = JobSpec(job_id=job_id, name="intruder", run=f"touch {marker}", candidates=[LOCAL_CANDIDATE],
                   submitted_at=datetime.now(UTC))
    s = spot.settings

    async def start_in_clear() -> None:
        client = await Client.connect(s.temporal_address, namespace=s.temporal.namespace,
                                      data_converter=pydantic_data_converter)  # no codec: no key
        await client.start_workflow("SpotJobWorkflow", spec, id=workflow_id(job_id), task_queue=TASK_QUEUE)

    async def terminate() -> None:
        client = await Client.connect(s.temporal_address, namespace=s.temporal.namespace)
        await client.get_workflow_handle(workflow_id(job_id)).terminate("test over")

    asyncio.run(start_in_clear())
    try:
        log = s.server_dir / "worker.log"
        wait_until(lambda: "refused a payload that is not encrypted" in log.read_text(), 30, "the worker to refuse it")
        time.sleep(3)  # what would have run by now (a local job takes about a second) did not
        assert not marker.exists(), "the worker ran a job started without the codec key"
        assert [i for i in spot.cloud.list_instances(alive_only=False) if job_of_cluster(i.cluster_name) == job_id] == []
    finally:
        asyncio.run(terminate())
