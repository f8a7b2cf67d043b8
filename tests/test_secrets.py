"""Secrets and envs reach the job, and nothing stored by Temporal holds them in clear.

One job on the embedded default gets an env value and a secret (random strings); the program
checks them by hash, so its own output never holds them. Then the raw SQLite files, the raw
history (read without the codec) and spotctl's own logs must not contain either string, while
the history decoded with the codec must (so the absence is not vacuous).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import textwrap
import urllib.request
from pathlib import Path

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from spotctl.client import workflow_id
from spotctl.codec import ENCODING, data_converter

from conftest import Spot, launched_id

ENCRYPTED_B64 = base64.b64encode(ENCODING).decode()


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def has_secret_option(spot: Spot) -> bool:
    """`launch --secret K=V` is planned (launch/planning.py); until it lands the value goes in the YAML."""
    return "--secret" in spot.run("launch", "--help").output


def sqlite_bytes(home: Path) -> bytes:
    """The Temporal database as it lies on disk, with its WAL and shared-memory files."""
    db = home / "server" / "temporal.db"
    parts = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    return b"".join(p.read_bytes() for p in parts if p.exists())


async def raw_history(spot: Spot, wid: str) -> str:
    """The history as the server hands it to any client: no codec, no pydantic."""
    s = spot.settings
    client = await Client.connect(s.temporal_address, namespace=s.temporal.namespace)
    history = await client.get_workflow_handle(wid).fetch_history()
    return history.to_json()


async def decoded_start_input(spot: Spot, wid: str) -> bytes:
    """The workflow's input, decrypted with spotctl's codec: the spec with envs and secrets."""
    s = spot.settings
    client = await Client.connect(s.temporal_address, namespace=s.temporal.namespace)
    history = await client.get_workflow_handle(wid).fetch_history()
    payloads = history.events[0].workflow_execution_started_event_attributes.input.payloads
    assert all(p.metadata["encoding"] == ENCODING for p in payloads)
    codec = data_converter(s).payload_codec
    assert codec is not None
    return b"".join(p.data for p in await codec.decode(payloads))


def codec_call(spot: Spot, action: str, payloads: Payloads) -> Payloads:
    s = spot.settings
    req = urllib.request.Request(
        f"http://127.0.0.1:{s.embedded.codec_port}/{action}",
        data=json_format.MessageToJson(payloads).encode(),
        headers={"Content-Type": "application/json", "Origin": s.ui_url, "X-Namespace": "default"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == s.ui_url
        return json_format.Parse(resp.read(), Payloads())


def test_secret_and_env_reach_the_job_but_never_temporal(spot_clean: Spot, tmp_path: Path) -> None:
    env_value = "env-" + secrets.token_hex(16)
    secret_value = "hf_" + secrets.token_hex(16)
    cli_secret = has_secret_option(spot_clean)
    task = tmp_path / "secret.yaml"
    task.write_text(textwrap.dedent(f"""
        name: secretcheck
        envs:
          MY_ENV: {env_value}
        secrets:
          HF_TOKEN: {"null" if cli_secret else secret_value}
        run: |
          echo "env_sha=$(printf %s "$MY_ENV" | sha256sum | cut -d' ' -f1)"
          echo "secret_sha=$(printf %s "$HF_TOKEN" | sha256sum | cut -d' ' -f1)"
          echo "env_file_mode=$(stat -c %a "$(dirname "$0")/env.json")"
    """))
    extra = ["--secret", f"HF_TOKEN={secret_value}"] if cli_secret else []
    result = spot_clean.run("launch", "-y", *extra, str(task))
    assert result.exit_code == 0, result.output
    job_id = launched_id(result.stderr)
    assert spot_clean.job(job_id)["status"] == "SUCCEEDED"
    assert f"env_sha={sha(env_value)}" in result.stdout
    assert f"secret_sha={sha(secret_value)}" in result.stdout, "the job did not see the secret"
    assert "env_file_mode=600" in result.stdout

    wid = workflow_id(job_id)
    # Positive control: the values did travel through Temporal, encrypted.
    decoded = asyncio.run(decoded_start_input(spot_clean, wid))
    assert env_value.encode() in decoded and secret_value.encode() in decoded

    history = asyncio.run(raw_history(spot_clean, wid))
    assert ENCRYPTED_B64 in history
    disk = sqlite_bytes(spot_clean.home)
    assert wid.encode() in disk, "the job is not in the database files at all"
    logs = b"".join(p.read_bytes() for p in (spot_clean.home / "server").glob("*.log"))
    for value in (env_value, secret_value):
        assert value not in history, "a value is in clear in the Temporal history"
        assert value.encode() not in disk, "a value is in clear in the Temporal database file"
        assert value.encode() not in logs, "a value is in a server or worker log"
        assert value not in result.output, "spotctl printed a value"


def test_codec_endpoint_round_trips_for_the_ui(spot_clean: Spot) -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({"token": "abc"}).encode())
    encoded = codec_call(spot_clean, "encode", Payloads(payloads=[plain]))
    assert encoded.payloads[0].metadata["encoding"] == ENCODING
    assert b"abc" not in encoded.payloads[0].data
    decoded = codec_call(spot_clean, "decode", encoded)
    assert list(decoded.payloads) == [plain]
    # A payload that is not encrypted passes through (histories from before the codec).
    assert list(codec_call(spot_clean, "decode", Payloads(payloads=[plain])).payloads) == [plain]

    s = spot_clean.settings
    preflight = urllib.request.Request(
        f"http://127.0.0.1:{s.embedded.codec_port}/decode", method="OPTIONS",
        headers={"Origin": s.ui_url, "Access-Control-Request-Method": "POST"},
    )
    with urllib.request.urlopen(preflight, timeout=10) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == s.ui_url
        assert "content-type" in resp.headers["Access-Control-Allow-Headers"]
    other = urllib.request.Request(
        f"http://127.0.0.1:{s.embedded.codec_port}/decode", method="OPTIONS",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    with urllib.request.urlopen(other, timeout=10) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] is None
