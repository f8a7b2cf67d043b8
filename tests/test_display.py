"""What `status`, `launch` and the job messages show of user-provided text (issue 7, item 8):
long names are clipped so every column shows, control characters never reach the terminal
raw, and stdout carries only what scripts read."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from spotctl.cli.follow import describe, print_result
from spotctl.cli.render import clip, safe
from spotctl.client import SpotClient
from spotctl.launch import Overrides, plan
from spotctl.models import JobState, JobStatus

from conftest import Spot, launched_id

LONG = "long" + "x" * 496
EVIL = "evil\x1b[31mRED\x1b[0m\nFAKE 999 ROW\u202e[bold]"


def test_long_and_hostile_names_in_status(spot_clean: Spot) -> None:
    """Jobs stored with such names (launch validates names now; older jobs were not) still
    show safely: one row each, STATUS visible, escapes visible instead of acted on."""
    p = plan("echo hi", Overrides(name="placeholder"), spot_clean.settings)

    async def start(names: list[str]) -> list[int]:
        client = await SpotClient.connect(spot_clean.settings)
        ids = []
        for name in names:
            job_id = await client.allocate_job_id()
            await client.start_job(p.to_spec(job_id).model_copy(update={"name": name}))
            ids.append(job_id)
        return ids

    ids = asyncio.run(start([LONG, EVIL, "plain"]))
    for job_id in ids:
        spot_clean.wait_status(job_id, "SUCCEEDED")
    for args in (("status",), ("status", "-a")):
        out = spot_clean.run(*args).stdout
        assert "\x1b" not in out and "\u202e" not in out and "\r" not in out
        lines = out.splitlines()
        assert not any(line.startswith("FAKE") for line in lines)
        rows = {int(line.split()[0]): line for line in lines[1:] if line.split() and line.split()[0].isdigit()}
        for job_id in ids:
            assert "SUCCEEDED" in rows[job_id], out
        assert clip(LONG, 40) in rows[ids[0]] and LONG not in out
        assert clip("evil\\x1b[31mRED\\x1b[0m\\nFAKE 999 ROW\\u202e[bold]", 40) in rows[ids[1]]
    raw = spot_clean.run("status", "--json", "--all").stdout
    assert "\x1b" not in raw and "\u202e" not in raw
    names = {j["job_id"]: j["name"] for j in json.loads(raw)}
    assert [names[i] for i in ids] == [LONG, EVIL, "plain"]  # JSON keeps the exact name


def test_job_messages_escape_user_text(capsys) -> None:
    state = JobState(job_id=7, name=EVIL, resources="1x local", submitted_at=datetime.now(UTC),
                     status=JobStatus.FAILED, failure_reason="boom\x1b]0;title\x07\nsecond line",
                     detail="waiting \x1b[2J")
    print_result(state)
    shown = describe(state)
    err = capsys.readouterr().err
    for text in (err, shown):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "boom\\x1b]0;title\\x07\\nsecond line" in err
    assert "[bold]" in err  # printed, not taken as markup
    assert safe("a\tb\x9bc") == "a\\tb\\x9bc"


def test_launch_detach_stdout_is_only_the_job_id(spot_clean: Spot, tmp_path: Path) -> None:
    """A spec above 512 KB makes Temporal's core warn; the warning goes to stderr, so
    `ID=$(spotctl launch -d ...)` still gets just the id."""
    # ~600 KB in the spec, each part under the parser's limits (run/setup 256 KiB, envs 128 KiB).
    comments = "".join(f"    # {'c' * 76}\n" for _ in range(3000))
    envs = "\n".join(f"  BIG_{i}: {'v' * 40_000}" for i in range(3))
    task = tmp_path / "big.yaml"
    task.write_text("name: big-payload\nsetup: |\n    true\n" + comments + "run: |\n    echo \"${#BIG_0}\"\n"
                    + comments + "envs:\n" + envs + "\n")
    proc = subprocess.run([sys.executable, "-m", "spotctl.cli.main", "launch", "-y", "-d", str(task)],
                          env={**os.environ, **spot_clean.env}, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    job_id = launched_id(proc.stderr.decode())
    assert proc.stdout == f"{job_id}\n".encode(), proc.stdout[:2000]
    spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)
