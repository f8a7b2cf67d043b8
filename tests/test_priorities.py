"""Priorities (SkyPilot's resources.priority, `--priority`, `spotctl set-priority`): launch slots
go to the highest priority first, on the real embedded Temporal server's task-queue priority;
a waiting high-priority job holds no slot; a bad priority is one line and exit 2.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

import yaml

from spotctl.activities import all_activities
from spotctl.activities.deps import Deps
from spotctl.client import SpotClient
from spotctl.client.arrays import allocate_block
from spotctl.config import WorkerConfig
from spotctl.launch import Overrides, plan
from spotctl.models import JobStatus
from spotctl.models.naming import job_workflow_id, parse_cluster_name
from spotctl.worker.pool import job_workers, running
from spotctl.workflows import SpotJobWorkflow

from conftest import Spot, launched_id

PRIORITIES = [0, 300, -5, 900, 100]


def test_launch_slots_go_by_priority_and_a_waiting_job_can_be_raised(spot_clean: Spot) -> None:
    """Five jobs wait for the one launch slot (their worker's launch queue has no poller yet);
    the lowest is raised to 1000 while it waits; then the slot opens: the clusters are made
    highest priority first."""
    queue = f"prio-{time.time_ns()}"

    async def scenario() -> list[int]:
        client = await SpotClient.connect(spot_clean.settings)
        main, monitor, launch, notify = job_workers(
            client.temporal, queue, [SpotJobWorkflow], all_activities(Deps(spot_clean.settings)),
            WorkerConfig(max_concurrent_launches=1))
        first = await allocate_block(client, len(PRIORITIES))
        ids = list(range(first, first + len(PRIORITIES)))
        async with running([main, monitor, notify]):
            for jid, priority in zip(ids, PRIORITIES, strict=True):
                p = plan("echo hi", Overrides(name=f"prio{priority}"), spot_clean.settings)
                p.priority = priority
                await client.temporal.start_workflow(SpotJobWorkflow.run, p.to_spec(jid), id=job_workflow_id(jid),
                                                     task_queue=queue)
            for jid in ids:  # every one waits for a slot: its first ask timed out in the queue
                while "launch slot" not in ((await client.get_job(jid)).detail or ""):
                    await asyncio.sleep(0.2)
            lowest = ids[PRIORITIES.index(-5)]
            raised = await asyncio.to_thread(spot_clean.run, "set-priority", str(lowest), "1000")
            assert raised.exit_code == 0, raised.output
            assert f"Job {lowest}: priority -5 -> 1000" in raised.stdout
            while (await client.get_job(lowest)).priority != 1000:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # the re-ask under the new priority is in the queue
            async with running([launch]):
                for jid in ids:
                    while (await client.get_job(jid)).status != JobStatus.SUCCEEDED:
                        await asyncio.sleep(0.2)
        made = sorted((i for i in spot_clean.cloud.list_instances(alive_only=False)
                       if (parse_cluster_name(i.cluster_name) or (0, 0))[0] in ids), key=lambda i: i.created_at)
        return [ids.index(parse_cluster_name(i.cluster_name)[0]) for i in made]  # type: ignore[index]

    order = asyncio.run(scenario())
    assert [([*PRIORITIES[:2], 1000, *PRIORITIES[3:]])[i] for i in order] == [1000, 900, 300, 100, 0]


def test_a_waiting_high_priority_job_blocks_no_one(spot_clean: Spot, tmp_path: Path) -> None:
    """A priority-900 job whose only region has no capacity waits on a durable timer (no
    slot held); priority -100 jobs elsewhere launch and finish meanwhile."""
    spot_clean.cloud.config()
    config = spot_clean.cloud.config_path
    original = config.read_text()
    data = yaml.safe_load(original)
    data["regions"]["local-west"]["capacity"] = 0
    config.write_text(yaml.safe_dump(data))
    try:
        high = launched_id(spot_clean.run("launch", "-y", "-d", "--priority", "900", "--region", "local-west",
                                          "-n", "urgent", "echo urgent").stderr)
        deadline = time.monotonic() + 30
        while "retry in" not in (spot_clean.job(high).get("detail") or "") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "retry in" in spot_clean.job(high)["detail"]
        lows = [launched_id(spot_clean.run("launch", "-y", "-d", "--priority", "-100", "--region", "local-east",
                                           "-n", "background", f"echo low {i}").stderr) for i in range(2)]
        for low in lows:
            job = spot_clean.wait_status(low, "SUCCEEDED", timeout=60)
            assert job["priority"] == -100
        assert spot_clean.job(high)["status"] in ("PENDING", "STARTING")
        status = spot_clean.run("status")
        assert "PRIORITY" in status.stdout.splitlines()[0]
        full = spot_clean.run("status", "-v", str(high))
        assert "Priority" in full.stdout and "900" in full.stdout
        assert spot_clean.run("cancel", "-y", str(high)).exit_code == 0
        spot_clean.wait_status(high, "CANCELLED", timeout=30)
    finally:
        config.write_text(original)


def test_bad_priorities_are_one_line_and_exit_2(spot_clean: Spot, tmp_path: Path) -> None:
    flag = spot_clean.run("launch", "-y", "--priority", "1001", "echo x")
    assert flag.exit_code == 2
    assert flag.output.strip() == "Error: --priority must be between -1000 and 1000 (got 1001); higher runs first"
    task = tmp_path / "task.yaml"
    task.write_text(textwrap.dedent("""
        resources:
          priority: -1001
        run: echo x
    """))
    yaml_given = spot_clean.run("launch", "-y", str(task))
    assert yaml_given.exit_code == 2 and "priority" in yaml_given.output
    assert len(yaml_given.output.strip().splitlines()) <= 2, yaml_given.output
    changed = spot_clean.run("set-priority", "1", "5000")
    assert changed.exit_code == 2
    assert changed.output.strip() == "Error: PRIORITY must be between -1000 and 1000 (got 5000); higher runs first"
    missing = spot_clean.run("set-priority", "987654", "10")
    assert missing.exit_code == 102 and "no job with id 987654" in missing.output
