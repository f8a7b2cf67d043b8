"""The user guide's preemption demo (docs/user-guide.md, linked from the README's quickstart),
run as a user pastes it: each `spotctl` line of the bash block, as written, twice in a row; each
run ends SUCCEEDED after two recoveries, the second from step 0."""

from __future__ import annotations

import re
import shlex
import shutil
import time
from pathlib import Path

import pytest

from conftest import REPO, Spot

ASSIGN = re.compile(r"^(\w+)=\$\((.*)\)$")


def demo_lines() -> list[str]:
    """The commands of the bash block under '## Surviving preemption', comments removed."""
    section = (REPO / "docs" / "user-guide.md").read_text().split("## Surviving preemption", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split(" #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def run_demo(spot: Spot) -> tuple[int, dict[str, str]]:
    """Run each command through the CLI: `VAR=$(cmd)` keeps cmd's stdout; $VAR is substituted;
    `sleep N` sleeps. Returns the job id and each command's output."""
    variables: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for line in (c.strip() for written in demo_lines() for c in written.split(";")):
        if line.startswith("sleep "):
            time.sleep(float(line.split()[1]))
            continue
        assign = ASSIGN.match(line)
        command = assign.group(2) if assign else line
        args = [re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], a) for a in shlex.split(command)]
        assert args[0] == "spotctl", line
        result = spot.run(*args[1:])
        assert result.exit_code == 0, f"{line}: exit {result.exit_code}\n{result.output}"
        outputs[args[1] if args[1] != "debug" else " ".join(args[1:3]) + str(len(outputs))] = result.stdout
        if assign:
            variables[assign.group(1)] = result.stdout.strip()
    return int(variables["ID"]), outputs


def test_demo_is_what_the_readme_says() -> None:
    lines = demo_lines()
    assert lines[0].startswith("ID=$(spotctl launch -y -d examples/checkpoint_resume.yaml")
    assert sum("spotctl debug preempt --wait $ID" in line for line in lines) == 2
    assert lines[-1] == "spotctl status -a"


def test_demo_pasted_twice(spot_clean: Spot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The example as shipped, only with shorter steps (60 x 0.2 s rather than 0.5 s) to keep
    # the test short; the commands are the user guide's, the bucket is the example's.
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    yaml_path = tmp_path / "examples" / "checkpoint_resume.yaml"
    text = yaml_path.read_text()
    assert text.count('STEP_SECONDS: "0.5"') == 1
    yaml_path.write_text(text.replace('STEP_SECONDS: "0.5"', 'STEP_SECONDS: "0.2"'))
    monkeypatch.chdir(tmp_path)
    bucket = spot_clean.home / "local_buckets" / "spotctl-ckpt-demo"
    placeholder = Path("/checkpoint")  # the bind-mount target the local cloud makes on the host
    had_placeholder = placeholder.exists()
    try:
        for run in (1, 2):
            job_id, outputs = run_demo(spot_clean)
            job = spot_clean.job(job_id)
            assert job["status"] == "SUCCEEDED", (run, job)
            assert job["recoveries"] == 2, (run, job)
            assert "SUCCEEDED" in outputs["status"]
            logs = outputs["logs"]
            assert logs.count("--- recovery ") == 2
            first_attempt, second_attempt = logs.split("--- recovery ")[:2]
            assert "resumed from step" not in first_attempt and "step 1\n" in first_attempt, (run, first_attempt)
            assert "resumed from step" in second_attempt, (run, second_attempt)
            if run == 2:  # the bucket kept run 1's last checkpoint; it is not resumed
                assert "checkpoint of another run" in first_attempt
            assert "result: " in logs
    finally:
        shutil.rmtree(bucket, ignore_errors=True)
        if not had_placeholder and placeholder.is_dir() and not any(placeholder.iterdir()):
            placeholder.rmdir()
