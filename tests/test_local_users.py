"""Another local user cannot use the owner's codec endpoint to decrypt payloads.

Every user of the machine can connect to 127.0.0.1, and the UI's codec endpoint decrypts what
it is sent. Hostile testing found that uid 65534, with a history read from the server, got a
job's secret back from `/decode`. Now the endpoint answers only connections whose client
socket is the owner's (the kernel's word, spotctl/peer_uid.py): the other user gets 403 and
nothing decoded, while the owner (its CLI, its browser) still decodes. Needs root, to act as
uid 65534 (setpriv).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
from pathlib import Path

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from conftest import Spot, free_port
from test_codec_server_cmd import _codec_server, _post
from test_secrets import codec_call

NOBODY = 65534
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
"""


def decode_as(uid: int, port: int, origin: str, payloads: Payloads) -> tuple[int, str]:
    """POST payloads to /decode from a process of `uid` (the system python: no access to the
    owner's venv needed); its HTTP status and body."""
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
    assert status == 403, body
    assert value not in body and "owner" in body
    # The owner (this process) still decodes, and the refusal was logged for the owner to see.
    assert value.encode() in codec_call(spot, "decode", sealed).payloads[0].data
    assert f"refused a codec request from uid {NOBODY}" in (s.server_dir / "worker.log").read_text()


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

