# ruff: noqa: F811  (pytest fixtures imported from test_aws_jobs and moto_lab)
"""What goes wrong on AWS, end to end, in the lab (moto + fake VMs, see test_aws_jobs.py):
no capacity in a zone, throttling, a preempted node of a 2-node cluster, a frozen VM, and no
credentials at all. Each test checks what a user would: `spotctl status --json`, `spotctl
logs`, and what is left running in (moto's) EC2.

After every test: no instance alive in moto, no bucket left, no VM process or sshd left.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_vm import lab_missing
from moto_lab import failing, failing_run_instances, moto_instances, moto_server  # noqa: F401
from test_aws_jobs import aws_spot, counter_task, fleet, launch, logs, wait_for_log  # noqa: F401
from vm_lab import VmFleet

from spotctl.cli.main import cli
from spotctl.clouds import aws_clients

from conftest import Spot

pytestmark = pytest.mark.skipif(lab_missing() is not None, reason=f"the lab cannot run here: {lab_missing()}")

CANDIDATE = re.compile(r"^\s+\d+\. (\S+)/(\S+)/(\S+)\s+(\S+)\s+(spot|on-demand)\b", re.M)


def candidates(spot: Spot, task: Path) -> list[tuple[str, str, str]]:
    """(cloud, region, zone) of `launch --dry-run`'s placement candidates, in their order."""
    result = spot.run("launch", "--dry-run", str(task))
    assert result.exit_code == 0, result.output
    found = [m.group(1, 2, 3) for m in CANDIDATE.finditer(result.output)]
    assert found, result.output
    return found


def ticker_task(tmp: Path, name: str, run: str, num_nodes: int = 1) -> Path:
    """A task without workdir or buckets: only the run script."""
    task = tmp / f"{name}.yaml"
    indented = "".join(f"  {line}\n" for line in run.strip().splitlines())
    task.write_text(f"""
name: {name}
num_nodes: {num_nodes}
resources:
  cloud: aws
  instance_type: m6i.large
  use_spot: true
run: |
{indented}""")
    return task


def ec2(spot: Spot, region: str):
    return aws_clients.aws_client(spot.settings, "ec2", region)


def cluster_nodes(spot: Spot, region: str, job_id: int, attempt: int) -> list[str]:
    """The attempt's instance ids by node rank, as EC2 describes them (tags)."""
    out = {}
    pages = ec2(spot, region).get_paginator("describe_instances").paginate(Filters=[
        {"Name": "tag:spotctl-job", "Values": [str(job_id)]}, {"Name": "tag:spotctl-attempt", "Values": [str(attempt)]}])
    for page in pages:
        for res in page["Reservations"]:
            for inst in res["Instances"]:
                tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                out[int(tags["spotctl-node"])] = inst["InstanceId"]
    return [out[r] for r in sorted(out)]


# -- placement failures ------------------------------------------------------------------------

def test_no_capacity_in_a_zone_fails_over_to_the_next_candidate(aws_spot: Spot, fleet: VmFleet,
                                                                tmp_path: Path) -> None:
    task = counter_task(tmp_path, f"lab-ckpt-{os.getpid()}-f1", steps=4)
    order = candidates(aws_spot, task)
    (_, region, full_zone), nxt = order[0], order[1]
    assert nxt[2] != full_zone, order[:3]  # today: us-east-1a is full, us-east-1b is next
    with failing_run_instances(region, full_zone) as hits:
        job_id = launch(aws_spot, task)
        job = aws_spot.wait_status(job_id, "SUCCEEDED", timeout=90)
    assert hits[0] >= 1, "the full zone was never asked"
    assert (job["cloud"], job["region"], job["zone"]) == nxt
    assert (job["attempt"], job["recoveries"]) == (1, 0)
    assert "done 4" in logs(aws_spot, job_id)
    ever = [(i.id, i.placement.zone) for i in moto_instances(alive_only=False)]
    assert [i for i, zone in ever if zone == full_zone] == [], ever
    assert [zone for _, zone in ever] == [nxt[2]], ever


def test_throttled_launch_backs_off_and_starts_in_place(aws_spot: Spot, fleet: VmFleet, tmp_path: Path) -> None:
    task = counter_task(tmp_path, f"lab-ckpt-{os.getpid()}-f2", steps=4)
    (_, region, zone) = candidates(aws_spot, task)[0]
    calls = [0]
    # More than botocore's own tries per call (3: aws_clients' max_attempts=2 counts retries),
    # fewer than it makes in spotctl's IN_PLACE_TRIES: spotctl asks the same zone again.
    throttled = 5

    def first_calls(*args: object, **kwargs: object) -> bool:
        calls[0] += 1
        return calls[0] <= throttled

    started = time.monotonic()
    with failing(region, "run_instances", "RequestLimitExceeded", when=first_calls,
                 message="Request limit exceeded.") as hits:
        job_id = launch(aws_spot, task)
        aws_spot.wait_running(job_id, timeout=90)
    assert hits[0] == throttled and calls[0] == throttled + 1, (hits, calls)
    job = aws_spot.wait_status(job_id, "SUCCEEDED", timeout=60)
    assert (job["region"], job["zone"]) == (region, zone), "a throttled region was left instead of waited for"
    assert (job["attempt"], job["recoveries"]) == (1, 0)
    assert "done 4" in logs(aws_spot, job_id)
    assert len(moto_instances(alive_only=False)) == 1
    assert time.monotonic() - started < 90


# -- nodes lost ---------------------------------------------------------------------------------

MULTI = """\
echo "rank=$SKYPILOT_NODE_RANK ips=$(printf '%s' "$SKYPILOT_NODE_IPS" | tr '\\n' ',')"
for i in $(seq 1 24); do echo "rank $SKYPILOT_NODE_RANK tick $i"; sleep 0.5; done
echo "rank $SKYPILOT_NODE_RANK done"
"""


def _ranks_and_ips(text: str) -> dict[int, list[str]]:
    return {int(r): ips.strip(",").split(",") for r, ips in re.findall(r"^(?:\(node-\d+\) )?rank=(\d+) ips=(\S*)$",
                                                                        text, re.M)}


def test_one_preempted_node_recovers_the_whole_cluster(aws_spot: Spot, fleet: VmFleet, tmp_path: Path) -> None:
    job_id = launch(aws_spot, ticker_task(tmp_path, "pair", MULTI, num_nodes=2))
    wait_for_log(aws_spot, job_id, r"^\(node-1\) rank 1 tick 2$")
    wait_for_log(aws_spot, job_id, r"^rank 0 tick 2$")
    first = aws_spot.job(job_id)
    assert (first["status"], first["attempt"]) == ("RUNNING", 1)
    old = cluster_nodes(aws_spot, first["region"], job_id, 1)
    assert len(old) == 2 and sorted(old) == sorted(fleet.running())
    printed = _ranks_and_ips(aws_spot.run("logs", "--no-follow", "--attempt", "1", str(job_id)).output)
    assert printed == {0: [fleet.vms[i].address for i in old], 1: [fleet.vms[i].address for i in old]}

    fleet.preempt(old[1])
    aws_spot.wait_running(job_id, attempt=2, timeout=90)
    job = aws_spot.wait_status(job_id, "SUCCEEDED", timeout=90)
    assert (job["attempt"], job["recoveries"]) == (2, 1)
    new = cluster_nodes(aws_spot, job["region"], job_id, 2)
    assert len(new) == 2 and not set(new) & set(old), (old, new)
    text = aws_spot.run("logs", "--no-follow", "--attempt", "2", str(job_id)).output
    addresses = [fleet.vms[i].address for i in new]
    assert _ranks_and_ips(text) == {0: addresses, 1: addresses}, text
    assert re.search(r"^rank 0 done$", text, re.M) and re.search(r"^\(node-1\) rank 1 done$", text, re.M), text
    for iid in old:
        assert fleet.instance(iid).state == "terminated", iid
    # the survivor of attempt 1 was torn down, not left to finish on its own
    assert fleet.instance(old[0]).state_reason.code != "Server.SpotInstanceTermination"


FROZEN = """\
for i in $(seq 1 20); do echo "tick $i"; sleep 0.5; done
echo "ticker done"
"""


def test_frozen_vm_is_waited_for_not_relaunched(aws_spot: Spot, fleet: VmFleet, tmp_path: Path) -> None:
    job_id = launch(aws_spot, ticker_task(tmp_path, "frozen", FROZEN))
    wait_for_log(aws_spot, job_id, r"^tick 3$")
    [iid] = fleet.running()
    vm = fleet.vms[iid]
    vm.freeze()
    try:
        frozen_at = time.monotonic()
        while time.monotonic() - frozen_at < 32:  # longer than the SSH silence timeout (20 s)
            job = aws_spot.job(job_id)
            assert (job["status"], job["attempt"], job["recoveries"]) == ("RUNNING", 1, 0), job
            assert [i.id for i in moto_instances()] == [iid]
            time.sleep(2)
        assert "ticker done" not in logs(aws_spot, job_id)
    finally:
        vm.thaw()
    job = aws_spot.wait_status(job_id, "SUCCEEDED", "FAILED", "FAILED_CONTROLLER", timeout=60)
    assert (job["status"], job["attempt"], job["recoveries"]) == ("SUCCEEDED", 1, 0), job
    text = logs(aws_spot, job_id)
    assert re.findall(r"^tick (\d+)$", text, re.M) == [str(i) for i in range(1, 21)], text
    assert "ticker done" in text


# -- no credentials -----------------------------------------------------------------------------

def test_aws_without_credentials_is_left_out_with_a_note(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("")
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local,aws",
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "empty"), "AWS_CONFIG_FILE": str(tmp_path / "empty"),
           "AWS_EC2_METADATA_DISABLED": "true", "SPOTCTL_AWS_ENDPOINT": None}
    env |= {k: None for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")}
    aws_clients.forget_clients()
    try:
        result = CliRunner().invoke(cli, ["launch", "--dry-run", "--cpus", "2", "echo hi"], env=env,
                                    catch_exceptions=False)
    finally:
        aws_clients.forget_clients()
    assert result.exit_code == 0, result.output
    where = [m.group(1) for m in CANDIDATE.finditer(result.output)]
    assert where and set(where) == {"local"}, result.output
    assert re.search(r"Note:.*aws: left out of placement: no AWS credentials found", " ".join(result.output.split())), \
        result.output
