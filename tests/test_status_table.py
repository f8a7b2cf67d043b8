"""`spotctl status` at any width (issue 10, defects 1, 6 and 11): ID, NAME and the full STATUS
always show, other columns give way in GIVE_WAY_ORDER; the FAILURE cell is a short reason,
`status -v ID` the whole story; `--json` has ints for counts and a last_run_started_at."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from rich.console import Console

from spotctl.cli.main import cli
from spotctl.cli.render import GIVE_WAY_ORDER, NAME_WIDTH, as_json, clip, short_failure, status_table, table_reason
from spotctl.models import AttemptRecord, JobState, JobStatus, ResourceRequest

from conftest import Spot

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)

T0 = datetime.now(UTC) - timedelta(hours=3)
FAILURE_LIST = ("local/local-east/local-east-1a local.small: no capacity; "
                "local/local-east/local-east-1b local.small: no capacity; "
                "local/local-west/local-west-1a local.small: no capacity; "
                "local/local-eu/local-eu-1a local.small: quota exceeded")


def twenty_jobs() -> list[JobState]:
    statuses = list(JobStatus)
    jobs = []
    for i in range(1, 21):
        status = statuses[i % len(statuses)]
        record = AttemptRecord(attempt=1, cloud="local", region="local-east", zone="local-east-1a",
                               instance_type="local.small", launched_at=T0, started_at=T0 + timedelta(seconds=5),
                               ended_at=T0 + timedelta(hours=1) if status.is_terminal else None, price=0.01,
                               use_spot=True, nodes=1, outcome="preempted" if status.is_terminal else None)
        jobs.append(JobState(
            job_id=1000 + i, name=f"job-{i}-" + "n" * (i * 3), status=status, submitted_at=T0,
            resources="1x[V100:1, cpus=8+, mem=32+] spot in local/local-east", recoveries=i % 3,
            cloud="local", region="local-east", zone="local-east-1a", history=[record],
            failure_reason=f"no capacity for 120s: {FAILURE_LIST}" if status.is_failure else None,
            detail="no capacity in 3 region(s), retry in 16s" if not status.is_terminal else None,
        ))
    return jobs


def render(jobs: list[JobState], width: int | None, show_all: bool) -> str:
    out = Console(file=io.StringIO(), width=width or 100_000, color_system=None)
    out.print(status_table(jobs, show_all=show_all, width=width))
    return out.file.getvalue()


def rows_by_id(text: str) -> dict[int, str]:
    return {int(line.split()[0]): line for line in text.splitlines()[1:] if line.split() and line.split()[0].isdigit()}


@pytest.mark.parametrize("show_all", [False, True])
@pytest.mark.parametrize("width", [80, 100, 200, None])
def test_id_name_and_full_status_at_every_width(width: int | None, show_all: bool) -> None:
    jobs = twenty_jobs()
    text = render(jobs, width, show_all)
    lines = text.splitlines()
    header = lines[0].split()
    assert header[:2] == ["ID", "NAME"] and "STATUS" in header
    if width is not None:
        assert max(len(line) for line in lines) <= width, text
    rows = rows_by_id(text)
    assert set(rows) == {j.job_id for j in jobs}
    for job in jobs:
        assert f" {job.status.value}" in rows[job.job_id], text
        assert rows[job.job_id].split()[1].startswith(f"job-{job.job_id - 1000}-")
    if width is None or width >= 200:
        assert "RESOURCES" in header
    if width is None:  # a pipe: the whole table, every column, names up to 40 characters
        assert {"SUBMITTED", "COST"} <= set(header) and ("FAILURE" in header) == show_all


def test_columns_give_way_in_the_stated_order() -> None:
    """Narrowing the terminal only ever removes columns that come earlier in GIVE_WAY_ORDER
    than every column still shown."""
    jobs = twenty_jobs()
    previous: list[str] | None = None
    for width in range(260, 40, -5):
        header = render(jobs, width, show_all=True).splitlines()[0]
        shown = [h for h in GIVE_WAY_ORDER if h in header]
        if previous is not None:
            dropped = [h for h in previous if h not in shown]
            for h in dropped:
                assert all(GIVE_WAY_ORDER.index(h) < GIVE_WAY_ORDER.index(k) for k in shown), (width, h, shown)
        previous = shown
    assert previous == []  # at 45 columns only ID, NAME and STATUS are left


def test_names_are_clipped_with_an_ellipsis_at_80() -> None:
    text = render(twenty_jobs(), 80, show_all=False)
    assert "…" in rows_by_id(text)[1020]


def test_short_failure_reason_in_the_table() -> None:
    assert short_failure(f"no capacity for 120s: {FAILURE_LIST}") == \
        "no capacity for 120s in 3 region(s): no capacity (+1 more)"
    assert short_failure(FAILURE_LIST) == "4 candidate(s) failed in 3 region(s): no capacity (+1 more)"
    assert short_failure("run exited with code 3") == "run exited with code 3"
    assert short_failure("line one\nline two") == "line one …"
    assert short_failure("no candidate can ever be provisioned: aws/us-east-1/us-east-1a p3.2xlarge: no "
                         "credentials; a; b") == \
        "no candidate can ever be provisioned in 1 region(s): no credentials; a; b"
    waiting = JobState(job_id=1, name="w", submitted_at=T0, status=JobStatus.STARTING, failure_reason=FAILURE_LIST,
                       detail="no capacity in 3 region(s), retry in 16s")
    assert table_reason(waiting) == "no capacity in 3 region(s), retry in 16s"
    text = render([waiting], 200, show_all=True)
    assert len(text.splitlines()) == 2 and "retry in 16s" in text


def test_resources_never_glue_the_count_to_a_cloud() -> None:
    assert ResourceRequest().describe() == "[any] spot"
    assert ResourceRequest(cloud="local", use_spot=False).describe() == "[any] in local"
    assert ResourceRequest(cloud="aws", region="us-east-1", cpus=4, cpus_at_least=True).describe() == \
        "[cpus=4+] spot in aws/us-east-1"


def test_json_last_run_started_at_after_the_end() -> None:
    job = twenty_jobs()[5]  # SUCCEEDED
    data = as_json(job)
    assert data["run_started_at"] is None
    assert data["last_run_started_at"] == job.history[-1].started_at.isoformat().replace("+00:00", "Z")
    assert type(data["recoveries"]) is int and type(data["attempt"]) is int


def invoke(spot: Spot, *args: str, columns: int | None) -> str:
    env = {**spot.env, "COLUMNS": str(columns) if columns else None}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_status_cli_at_80_100_200_and_to_a_pipe(spot_clean: Spot) -> None:
    ok = spot_clean.launch_detached("-n", "a-name-long-enough-to-be-clipped-at-eighty-columns", "echo hi")
    bad = spot_clean.launch_detached("-n", "fails", "exit 3")
    spot_clean.wait_status(ok, "SUCCEEDED")
    spot_clean.wait_status(bad, "FAILED")
    for columns in (80, 100, 200, None):
        for args in (("status",), ("status", "-a")):
            out = invoke(spot_clean, *args, columns=columns)
            rows = rows_by_id(out)
            assert "SUCCEEDED" in rows[ok] and " FAILED" in rows[bad], out
            if columns:
                assert max(len(line) for line in out.splitlines()) <= columns, out
            if args == ("status", "-a") and (columns or 999) >= 100:
                assert "run exited with code 3" in rows[bad], out
    piped = invoke(spot_clean, "status", "-a", columns=None)
    assert clip("a-name-long-enough-to-be-clipped-at-eighty-columns", NAME_WIDTH) in piped and "ON-DEMAND" in piped

    data = {j["job_id"]: j for j in json.loads(invoke(spot_clean, "status", "--json", "--all", columns=None))}
    assert data[ok]["run_started_at"] is None and data[ok]["last_run_started_at"]
    assert type(data[ok]["recoveries"]) is int and data[ok]["cost_usd"] > 0

    detail = invoke(spot_clean, "status", "-v", str(bad), columns=None)
    assert "run exited with code 3" in detail and "local.small" in detail and "Exit code" in detail
    assert "INSTANCE TYPE" in detail and "OUTCOME" in detail
    missing = CliRunner().invoke(cli, ["status", "-v", "99999"], env=spot_clean.env)
    assert missing.exit_code == 102


def test_readme_states_the_order() -> None:
    """The CLI reference (docs/cli.md, `spotctl status`; once the README's status section) names
    the order in which columns give way."""
    from pathlib import Path

    readme = " ".join((Path(__file__).parent.parent / "docs" / "cli.md").read_text().split())
    assert ", ".join(GIVE_WAY_ORDER) in readme
