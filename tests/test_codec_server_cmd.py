"""`spotctl codec-server`: the web UI's codec endpoint on its own, for a deployment's UI
(deploy/compose.yaml): it round-trips payloads with the codec key, answers only the UI's
origin, stops cleanly on SIGTERM, and a bad key costs one line and exit 2."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from conftest import free_port

KEY = base64.b64encode(bytes(range(32))).decode()


def _post(port: int, action: str, payloads: Payloads, ui_port: int) -> tuple[Payloads, str | None]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/{action}", data=json_format.MessageToJson(payloads).encode(), method="POST",
        headers={"Content-Type": "application/json", "Origin": f"http://localhost:{ui_port}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json_format.Parse(resp.read(), Payloads()), resp.headers["Access-Control-Allow-Origin"]


def _codec_server(tmp_path: Path, *args: str, key: str = KEY) -> subprocess.Popen:
    env = {**os.environ, "SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CODEC_KEY": key}
    return subprocess.Popen([sys.executable, "-m", "spotctl.cli.main", "codec-server", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_codec_server_round_trips_and_stops_on_sigterm(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    proc = _codec_server(tmp_path, "--port", str(port), "--ui-port", str(ui_port))
    try:
        plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"secret": "s3cr3t"}')
        deadline = time.monotonic() + 20
        while True:
            try:
                encoded, allowed = _post(port, "encode", Payloads(payloads=[plain]), ui_port)
                break
            except urllib.error.URLError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the codec endpoint never answered"
                time.sleep(0.1)
        assert allowed == f"http://localhost:{ui_port}"
        assert b"s3cr3t" not in encoded.payloads[0].data
        decoded, _ = _post(port, "decode", encoded, ui_port)
        assert list(decoded.payloads) == [plain]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_codec_server_bad_key_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = _codec_server(tmp_path, "--port", str(free_port()), key="not-a-key")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "SPOTCTL_CODEC_KEY" in err, err
