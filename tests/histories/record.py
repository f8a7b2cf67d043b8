"""Record workflow histories for the replay test (tests/test_replay.py).

    python tests/histories/record.py                       # the whole v2 set
    python tests/histories/record.py preempted_with_notice=preempted_live_prices
                                                           # one scenario, under a new name
    python tests/histories/record.py waited_for_launch_slot=queues_waited_for_launch_slot

runs a set of representative jobs on a private embedded server and writes each history to
tests/histories/v2_<name>.json: histories of the current controller (workflows/spot_job.py,
the `controller-v2` patch), one for every path it can take, plus the job-id allocator's.

The other files here (succeeded.json, failed_setup.json, ... without the v2_ prefix) were
recorded by the first controller (workflows/legacy/controller_v1.py). They are frozen: they prove
that jobs started before controller-v2 still replay, and this script cannot re-record them
(every new job takes the v2 path). Never overwrite or delete them.

Re-record the v2 set only on purpose: a change to the workflow that makes a recorded history
fail to replay would break jobs running while a worker is upgraded (use `workflow.patched`
for such changes instead).
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import os
import shutil
import signal
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from click.testing import CliRunner  # noqa: E402
from temporalio.common import SearchAttributePair, TypedSearchAttributes  # noqa: E402

from spotctl.cli.main import cli  # noqa: E402
from spotctl.client import SpotClient, workflow_id  # noqa: E402
from spotctl.clouds.local import LocalCloud  # noqa: E402
from spotctl.config import load_settings  # noqa: E402
from spotctl.embedded import EmbeddedServer  # noqa: E402
from spotctl.launch import Overrides, plan  # noqa: E402
from spotctl.models import (  # noqa: E402
    TASK_QUEUE,
    AttemptRecord,
    CarriedState,
    JobState,
    JobStatus,
    cluster_name,
)
from spotctl.models import search_attributes as sa  # noqa: E402
from spotctl.models.array import array_workflow_id  # noqa: E402
from spotctl.models.pool import POOL_WORKFLOW, pool_workflow_id  # noqa: E402
from spotctl.workflows import ALLOCATOR_WORKFLOW_ID, JobIdAllocator  # noqa: E402
from spotctl.workflows.allocator_state import AllocatorState  # noqa: E402

from conftest import spotctl_env  # noqa: E402

PREFIX = "v2_"
"""Every file this script writes starts with it; the unprefixed (controller v1) ones are frozen."""

FOREIGN_PATHS = ("/tmp/", "/work/", "/root/", "/home/")
"""Machine paths that must not appear in a recorded history, not even inside a payload."""


def scrub(text: str, extra_prefixes: tuple[str, ...] = ()) -> str:
    """No machine paths in the repo: stack traces in failures name files relative to the repo
    and to site-packages."""
    import site
    import sysconfig

    prefixes = [str(HERE.parents[1]) + "/", sysconfig.get_path("purelib") + "/", *[p + "/" for p in site.getsitepackages()]]
    for prefix in [*prefixes, *extra_prefixes]:
        text = text.replace(prefix, "")
    return text


def compact(text: str) -> str:
    """The history JSON with one event a line (indented, the files would be a third larger);
    WorkflowHistory.from_json reads it as it is."""
    events = json.loads(text)["events"]
    lines = ",\n".join(json.dumps(e, separators=(",", ":")) for e in events)
    return f'{{"events":[\n{lines}\n]}}\n'


def machine_paths(text: str) -> list[str]:
    """Machine paths in a history's JSON, payloads (base64) included."""
    found = [p for p in FOREIGN_PATHS if p in text]
    for event in json.loads(text)["events"]:
        for data in _payload_data(event):
            decoded = base64.b64decode(data).decode("utf-8", "replace")
            found += [f"{p} (in a payload)" for p in FOREIGN_PATHS if p in decoded]
    return sorted(set(found))


def _payload_data(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, str):
                yield value
            else:
                yield from _payload_data(value)
    elif isinstance(node, list):
        for value in node:
            yield from _payload_data(value)


def main() -> None:
    # `scenario=new_name` arguments: record only those, saved under the new names (a new
    # workflow path gets its own history; the recorded ones stay as they are).
    only = dict(arg.split("=", 1) for arg in sys.argv[1:])

    def want(scenario: str) -> bool:
        return not only or scenario in only

    home = Path(tempfile.mkdtemp(prefix="spotctl-record-"))
    env = spotctl_env(home)
    if want("waited_for_launch_slot") or want("priority_raised"):
        env["SPOTCTL_MAX_LAUNCHES"] = "1"  # one create at a time: the second launch must wait
    # Recorded histories are replayed with the all-zero codec key (tests/test_replay.py).
    env["SPOTCTL_CODEC_KEY"] = base64.b64encode(bytes(32)).decode()
    os.environ.update(env)
    settings = load_settings(home)
    server = EmbeddedServer(settings)
    server.ensure_running()
    runner = CliRunner()
    cloud = LocalCloud(settings)
    cloud.config()  # writes the default config.yaml
    default_config = cloud.config_path.read_text()
    tasks = {
        "setup_task": "name: setup-fails\nsetup: exit 7\nrun: echo never\n",
        "retry_task": "name: retry\nresources:\n  job_recovery:\n    max_restarts_on_errors: 1\nrun: exit 1\n",
        "long_task": "name: long\nrun: |\n  for i in $(seq 1 16); do echo tick $i; sleep 0.25; done\n",
        "noisy_task": "name: noisy\nevent_callback: echo \"$JOB_STATUS\"\n"
                      "run: |\n  for i in $(seq 1 16); do echo tick $i; sleep 0.25; done\n",
        "pipeline": "name: duo\n---\nname: first\nrun: echo one\n---\nname: second\nrun: echo two\n",
        "slow_pipeline": "name: halted\n---\nname: first\nrun: sleep 1000\n---\nname: second\nrun: echo two\n",
        "deadline_task": "name: due\nresources:\n  region: local-east\ndeadline:\n  compute: 6s\n  by: 16s\n"
                         "  changeover: 3s\nrun: sleep 6\n",
        "returning_task": "name: back\nresources:\n  cloud: local\n  any_of:\n    - region: local-east\n"
                          "    - region: local-west\n      use_spot: false\ndeadline:\n  compute: 8s\n  by: 60s\n"
                          "  changeover: 2s\n  checkpoint_every: 1s\n  policy: uniform-progress\nrun: sleep 8\n",
    }
    paths = {}
    for key, text in tasks.items():
        paths[key] = home / f"{key}.yaml"
        paths[key].write_text(textwrap.dedent(text))

    def cli_ok(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == 0, (args, result.output)
        return result.stdout

    def launch(*args: str) -> int:
        result = runner.invoke(cli, [a.format(**{k: str(v) for k, v in paths.items()}) for a in args], env=env)
        line = next(line for line in result.stderr.splitlines() if line.startswith("Managed job"))
        return int(line.split()[2])

    def job(job_id: int) -> dict:
        return next((j for j in json.loads(cli_ok("status", "--json", "--all")) if j["job_id"] == job_id), {})

    def wait_for(what: str, ok: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waiting for {what}")
            time.sleep(0.1)

    def wait_status(job_id: int, status: str, timeout: float = 60) -> None:
        wait_for(f"job {job_id} {status}", lambda: job(job_id).get("status") == status, timeout)

    def apply_pool(name: str, workers: int = 1, setup: str | None = None, *extra: str) -> None:
        """A pool `name` of `workers` workers (a SkyPilot pool file), applied."""
        pool_yaml = home / f"pool-{name}.yaml"
        pool_yaml.write_text(f"pool:\n  workers: {workers}\nresources:\n  cpus: 1+\n"
                             + (f"setup: {setup}\n" if setup else ""))
        cli_ok("pool", "apply", "-p", name, str(pool_yaml), "-y", *extra)

    def set_regions(**fields) -> None:
        """Set fields on every region of the local cloud (read on each API call: live)."""
        data = yaml.safe_load(default_config)
        for region in data["regions"].values():
            region.update(fields)
        cloud.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        cloud.config()  # still valid

    def restore_config() -> None:
        cloud.config_path.write_text(default_config)

    async def history_events(job_id: int) -> list:
        client = await SpotClient.connect(settings)
        return (await client.temporal.get_workflow_handle(workflow_id(job_id)).fetch_history()).events

    def fired_timers(job_id: int) -> int:
        return sum(1 for e in asyncio.run(history_events(job_id)) if e.HasField("timer_fired_event_attributes"))

    ids: dict[str, int] = {}
    children: dict[str, int] = {}
    """Scenario -> how many pipeline tasks (child workflows) to save besides the job's."""
    others: dict[str, str] = {}
    """Scenario -> a workflow other than a job's to save (a job array's submitter, a pool's)."""
    prefetched: dict[str, str] = {}
    """Histories a scenario fetched itself (a run of a workflow that continued as new)."""
    events_workflows: set[str] = set()
    """Scenarios whose job handed its last events to a JobEventsWorkflow: saved too (`_events`)."""
    try:
        # Jobs that run to their end in the foreground.
        if want("succeeded"):
            ids["succeeded"] = launch("launch", "-y", "-n", "ok", "echo hello")
        if want("failed_setup"):
            ids["failed_setup"] = launch("launch", "-y", "{setup_task}")
        if want("restarted_then_failed"):
            ids["restarted_then_failed"] = launch("launch", "-y", "{retry_task}")

        # Cancelled while RUNNING.
        if want("cancelled_running"):
            ids["cancelled_running"] = launch("launch", "-y", "-d", "-n", "cancel-me", "sleep 1000")
            wait_status(ids["cancelled_running"], "RUNNING")
            cli_ok("cancel", "-y", str(ids["cancelled_running"]))
            wait_status(ids["cancelled_running"], "CANCELLED")

        # Preempted with a notice (SIGTERM, then the kill), then recovered.
        if want("preempted_with_notice"):
            ids["preempted_with_notice"] = launch("launch", "-y", "-d", "{long_task}")
            wait_status(ids["preempted_with_notice"], "RUNNING")
            cli_ok("debug", "preempt", str(ids["preempted_with_notice"]), "--notice", "2")
            wait_status(ids["preempted_with_notice"], "SUCCEEDED")

        # Ranked by expected cost (the fleet's memory, the `fleet-memory` patch): the memory is
        # read before the first provisioning and again before the recovery from a preemption.
        if want("fleet_preempted"):
            env["SPOTCTL_PLACEMENT"] = "expected-cost"
            try:
                job_id = ids["fleet_preempted"] = launch("launch", "-y", "-d", "-n", "learns", "{long_task}")
            finally:
                del env["SPOTCTL_PLACEMENT"]
            wait_status(job_id, "RUNNING")
            cli_ok("debug", "preempt", str(job_id), "--notice", "0")
            wait_status(job_id, "SUCCEEDED")

        # Cancelled while its cluster is being provisioned (slow instances).
        if want("cancelled_provisioning"):
            set_regions(provision_delay_s=30)
            try:
                job_id = ids["cancelled_provisioning"] = launch("launch", "-y", "-d", "-n", "slow", "echo never")
                try:
                    wait_for("waiting for instances", lambda: "waiting for" in (job(job_id).get("detail") or ""), 10)
                except TimeoutError:
                    print("warning: never saw 'waiting for'; cancelling anyway")
                cli_ok("cancel", "-y", str(job_id))
                wait_status(job_id, "CANCELLED")
            finally:
                restore_config()

        # No capacity anywhere: backoff timers, then capacity comes back.
        if want("backoff_then_succeeded"):
            set_regions(capacity=0)
            try:
                job_id = ids["backoff_then_succeeded"] = launch("launch", "-y", "-d", "-n", "backoff", "echo hello")
                wait_for("no capacity", lambda: "no capacity" in (job(job_id).get("detail") or ""), 20)
                wait_for("two backoff rounds", lambda: fired_timers(job_id) >= 2, 30)
            finally:
                restore_config()
            wait_status(job_id, "SUCCEEDED")

        # A launch that waits for a launch slot (PENDING) while another job's create is slow.
        if want("waited_for_launch_slot"):
            set_regions(api_latency_s=5)  # each create holds the only slot longer than the 3 s probe
            try:
                first = launch("launch", "-y", "-d", "-n", "slot-holder", "echo first")
                job_id = ids["waited_for_launch_slot"] = launch("launch", "-y", "-d", "-n", "slot-waiter", "echo second")
                wait_for("waiting for a launch slot", lambda: "launch slot" in (job(job_id).get("detail") or ""), 30)
            finally:
                restore_config()
            wait_status(first, "SUCCEEDED")
            wait_status(job_id, "SUCCEEDED")

        # A job raised (`set-priority`) while it waits for a launch slot: its create is asked
        # again under the new priority (the `launch-priority` patch).
        if want("priority_raised"):
            set_regions(api_latency_s=5)
            try:
                first = launch("launch", "-y", "-d", "-n", "slot-holder", "echo first")
                job_id = ids["priority_raised"] = launch("launch", "-y", "-d", "--priority", "-10", "-n", "raised",
                                                         "echo raised")
                wait_for("waiting for a launch slot", lambda: "launch slot" in (job(job_id).get("detail") or ""), 30)
                cli_ok("set-priority", str(job_id), "500")
                wait_for("the new priority", lambda: job(job_id).get("priority") == 500, 30)
            finally:
                restore_config()
            wait_status(first, "SUCCEEDED")
            wait_status(job_id, "SUCCEEDED")

        # A job array of two (`launch --num-jobs 2`): its submitter's history, and the allocator's
        # with the block allocation.
        if want("job_array"):
            result = runner.invoke(cli, ["launch", "-y", "--num-jobs", "2", "-n", "duo-array",
                                         "echo rank $SKYPILOT_JOB_RANK"], env=env)
            assert result.exit_code == 0, result.output
            first = int(result.stderr.split("Job array ", 1)[1].split()[0])
            for array_job in (first, first + 1):
                wait_status(array_job, "SUCCEEDED")
            others["job_array"] = array_workflow_id(first)

        # A managed pipeline of two tasks: the parent's history and each task's (child workflows).
        if want("pipeline"):
            ids["pipeline"] = launch("launch", "-y", "{pipeline}")
            children["pipeline"] = 2

        # Webhook and event_callback on every status change, through a preemption.
        if want("notified_preempted"):
            hook = _Webhook()
            (home / "config.yaml").write_text(yaml.safe_dump({"notify": {"url": hook.url, "on": ["RECOVERING",
                                                                                                   "SUCCEEDED"]}}))
            try:
                job_id = ids["notified_preempted"] = launch("launch", "-y", "-d", "{noisy_task}")
            finally:
                (home / "config.yaml").unlink()
            wait_status(job_id, "RUNNING")
            cli_ok("debug", "preempt", str(job_id), "--notice", "0")
            wait_status(job_id, "SUCCEEDED")
            wait_for("the webhook's SUCCEEDED", lambda: any(b"SUCCEEDED" in body for body in hook.bodies), 30)
            hook.close()

        # Slack and Discord targets (the event_callback list form: the `chat-notifications` patch).
        if want("chat_notified"):
            hook = _Webhook()
            chat_task = home / "chat_task.yaml"
            chat_task.write_text(f"name: chatty\nevent_callback:\n  - slack:\n      webhook_url: {hook.url}\n"
                                 "      notify_on: [RUNNING, SUCCEEDED]\n  - discord:\n"
                                 f"      webhook_url: {hook.url}\n"
                                 "      message: \"{EMOJI} {JOB_NAME} is {JOB_STATUS}\"\nrun: echo hi\n")
            job_id = ids["chat_notified"] = launch("launch", "-y", "-d", str(chat_task))
            wait_status(job_id, "SUCCEEDED")
            wait_for("both targets' SUCCEEDED", lambda: sum(b"SUCCEEDED" in body for body in hook.bodies) >= 2, 30)
            hook.close()

        def attempt_dir(job_id: int, attempt: int = 1) -> Path:
            pattern = f"*/home/.spotctl/job-{job_id}/attempt-{attempt}"
            wait_for(f"job {job_id}'s attempt dir", lambda: any(cloud.root.glob(f"instances/{pattern}")))
            return next(cloud.root.glob(f"instances/{pattern}"))

        # Every spotctl process on a live node dies with the program: recovered as a node failure.
        if want("node_failure"):
            job_id = ids["node_failure"] = launch("launch", "-y", "-d", "-n", "lost",
                                                  'if [ "$SPOTCTL_ATTEMPT" = 1 ]; then sleep 1000; fi')
            wait_status(job_id, "RUNNING")
            d = attempt_dir(job_id)
            wait_for("the program's pid", lambda: (d / "run.pid").exists())
            for name in ("run.spid", "run.kpid"):
                os.kill(int((d / name).read_text()), signal.SIGKILL)
            os.killpg(int((d / "run.pid").read_text()), signal.SIGKILL)
            wait_status(job_id, "SUCCEEDED", timeout=90)

        # A running job told of a problem it waits out (a full disk), then that it is over.
        async def note(job_id: int, text: str | None) -> None:
            client = await SpotClient.connect(settings)
            await client.temporal.get_workflow_handle(workflow_id(job_id)).signal("note", text)

        if want("noted"):
            job_id = ids["noted"] = launch("launch", "-y", "-d", "-n", "noted", "sleep 1000")
            wait_status(job_id, "RUNNING")
            asyncio.run(note(job_id, "no space left on device (node 0 disk)"))
            wait_for("the note", lambda: "no space" in (job(job_id).get("detail") or ""), 10)
            asyncio.run(note(job_id, None))
            wait_for("the note's end", lambda: not job(job_id).get("detail"), 10)
            cli_ok("cancel", "-y", str(job_id))
            wait_status(job_id, "CANCELLED")

        # Continues as new after two attempts (the CLI cannot ask for that).
        async def launch_continuing() -> int:
            client = await SpotClient.connect(settings)
            job_id = await client.allocate_job_id()
            spec = plan("exit 1", Overrides(name="can"), settings).to_spec(job_id)
            spec = spec.model_copy(update={
                "continue_as_new_after_attempts": 2,
                "recovery": spec.recovery.model_copy(update={"max_restarts_on_errors": 3}),
            })
            await client.start_job(spec)
            return job_id

        if want("continued_as_new"):
            ids["continued_as_new"] = asyncio.run(launch_continuing())
            wait_status(ids["continued_as_new"], "FAILED")

        # A pipeline whose running task's workflow is terminated outside spotctl: the final
        # teardown finds the task's cluster by the job's tag (the `pipeline-teardown-by-tag` patch).
        async def terminate_task(job_id: int) -> None:
            client = await SpotClient.connect(settings)
            await client.temporal.get_workflow_handle(f"{workflow_id(job_id)}-task-0").terminate("recording")

        if want("pipeline_task_terminated"):
            job_id = ids["pipeline_task_terminated"] = launch("launch", "-y", "-d", "{slow_pipeline}")
            wait_for("the first task running", lambda: job(job_id).get("status") == "RUNNING")
            asyncio.run(terminate_task(job_id))
            wait_status(job_id, "FAILED_CONTROLLER")
            wait_for("no instance of the job", lambda: not [
                i for i in cloud.list_instances() if i.cluster_name.startswith(f"spotctl-{job_id}-")], 10)

        # A pipeline whose task runs (it tells the pipeline its status: the pipeline shows
        # RUNNING), then is cancelled: the parent passes the cancel on (`pipeline-cancels`).
        if want("pipeline_cancelled"):
            duo = home / "pipeline_cancelled.yaml"
            duo.write_text("name: duo\n---\nname: first\nrun: sleep 1000\n---\nname: second\nrun: echo never\n")
            job_id = ids["pipeline_cancelled"] = launch("launch", "-y", "-d", str(duo))
            wait_status(job_id, "RUNNING")
            cli_ok("cancel", "-y", str(job_id))
            wait_status(job_id, "CANCELLED")
            children["pipeline_cancelled"] = 1  # the second task never started

        # An allocator started before internal workflows left the web UI's list (no namespace
        # division): the client's `hide` update gives it the division, and it counts on.
        if want("allocator_hidden"):
            async def allocator_from_before() -> str:
                client = await SpotClient.connect(settings)
                handle = await client.temporal.start_workflow(
                    JobIdAllocator.run, AllocatorState(next_id=7), id=f"{ALLOCATOR_WORKFLOW_ID}-from-before",
                    task_queue=TASK_QUEUE)
                await handle.execute_update(JobIdAllocator.allocate, args=["before", 0])
                assert await handle.execute_update(JobIdAllocator.hide) is True
                assert await handle.execute_update(JobIdAllocator.hide) is False
                await handle.execute_update(JobIdAllocator.allocate, args=["after", 0])
                await handle.terminate("recorded")
                return handle.id
            others["allocator_hidden"] = asyncio.run(allocator_from_before())

        # A cluster preempted before it ran (GCE's spot stock-out): a backoff round, then it runs.
        if want("died_before_ready_backoff"):
            set_regions(provision_delay_s=30)
            try:
                job_id = ids["died_before_ready_backoff"] = launch("launch", "-y", "-d", "-n", "died", "echo hello")
                wait_for("waiting for instances", lambda: "waiting for" in (job(job_id).get("detail") or ""), 20)
            finally:
                restore_config()  # the next cluster boots at once
            wait_for("the preemption", lambda: bool(cloud.preempt_cluster(cluster_name(job_id, 1), 0)), 10)
            wait_for("the backoff", lambda: "failed before it ran" in (job(job_id).get("detail") or ""), 20)
            wait_status(job_id, "SUCCEEDED")

        # A first-controller job that continued as new: its next run is the current controller's,
        # from a carried state as ControllerV1._continue_as_new made it (no task, no events,
        # no waiting_since, records without prices).
        async def launch_v1_continued() -> int:
            client = await SpotClient.connect(settings)
            job_id = await client.allocate_job_id()
            spec = plan("echo hello", Overrides(name="v1-continued"), settings).to_spec(job_id)
            c = spec.candidates[0]
            now = datetime.now(UTC)
            record = AttemptRecord(attempt=1, cloud=c.cloud, region=c.region, zone=c.zone,
                                   instance_type=c.instance_type, started_at=now - timedelta(minutes=5), ended_at=now - timedelta(minutes=1),
                                   outcome="preempted")
            state = JobState(job_id=job_id, name=spec.name, resources=spec.resources, submitted_at=spec.submitted_at,
                             status=JobStatus.RECOVERING, started_at=now - timedelta(minutes=5), attempt=1,
                             recoveries=1, cloud=c.cloud, region=c.region, zone=c.zone, job_duration_s=240.0,
                             detail=f"preempted in {c.cloud}/{c.region}/{c.zone}: preempted", history=[record])
            carried = CarriedState(state=state, attempt=1, restarts_used=0, blocked_regions={},
                                   last_location=(c.cloud, c.region, c.zone))
            await client.start_job(spec.model_copy(update={"carried": carried}))
            return job_id

        if want("v1_continued"):
            ids["v1_continued"] = asyncio.run(launch_v1_continued())
            wait_status(ids["v1_continued"], "SUCCEEDED")

        # The webhook is down when the job ends: its workflow ends at once and hands the events
        # it could not deliver to a JobEventsWorkflow, which delivers them once it is back.
        if want("events_handed_off"):
            hook = _Webhook(answer=503)
            (home / "config.yaml").write_text(yaml.safe_dump({"notify": {"url": hook.url, "on": ["PENDING", "SUCCEEDED"]}}))
            try:
                job_id = ids["events_handed_off"] = launch("launch", "-y", "-d", "-n", "hooked", "echo hi")
            finally:
                (home / "config.yaml").unlink()
            wait_status(job_id, "SUCCEEDED")
            wait_for("the job's workflow to end", lambda: asyncio.run(_closed(settings, workflow_id(job_id))), 30)
            hook.answer = 200
            wait_for("the webhook's SUCCEEDED", lambda: any(b"SUCCEEDED" in body for body in hook.bodies), 90)
            events_workflows.add("events_handed_off")
            hook.close()

        # A deadline job (the `deadlines` patch) whose spot VMs are taken back until its slack no
        # longer covers a restart: it moves to on-demand and succeeds there.
        if want("deadline_ondemand"):
            job_id = ids["deadline_ondemand"] = launch("launch", "-y", "-d", "{deadline_task}")
            for _ in range(10):
                wait_for("the job to run", lambda: job(job_id).get("status") in ("RUNNING", "SUCCEEDED"), 30)
                if job(job_id).get("market") != "spot":
                    break
                attempt = job(job_id)["attempt"]
                time.sleep(0.5)
                cli_ok("debug", "preempt", str(job_id), "--notice", "0")
                wait_for("the next attempt", lambda a=attempt: job(job_id).get("attempt") != a
                         or job(job_id).get("status") == "SUCCEEDED", 30)
            wait_status(job_id, "SUCCEEDED")
            assert job(job_id)["switches"], "the job never moved to on-demand"

        # A deadline job (Uniform Progress) on on-demand while spot has no capacity, which returns
        # to spot once ahead of its pace and spot is back (the `deadline-returns` patch).
        if want("deadline_returned"):
            data = yaml.safe_load(default_config)
            data["regions"]["local-east"]["capacity"] = 0
            cloud.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
            try:
                job_id = ids["deadline_returned"] = launch("launch", "-y", "-d", "{returning_task}")
                wait_status(job_id, "RUNNING")
            finally:
                restore_config()
            wait_status(job_id, "SUCCEEDED")
            assert job(job_id)["switches"][0]["to_market"] == "spot", job(job_id)

        # Jobs on a pool (the `pools` patch): one whose worker is preempted under it (back to
        # PENDING, then run on the replacement), one cancelled while it runs (its program
        # stopped, the worker kept); and the pool's own workflow, from apply to down.
        if want("pool_jobs"):
            held = home / "held.yaml"
            held.write_text('name: held\nrun: |\n  if [ "$SPOTCTL_RECOVERY_COUNT" = 0 ]; then '
                            'while true; do sleep 0.1; done; fi\n  echo again\n')
            forever = home / "forever.yaml"
            forever.write_text("name: forever\nrun: while true; do sleep 0.1; done\n")
            apply_pool("rec", 1, "echo set up")
            job_id = ids["pool_preempted"] = launch("launch", "-y", "-d", "-p", "rec", str(held))
            wait_status(job_id, "RUNNING", 90)
            cli_ok("debug", "preempt", str(job_id), "--notice", "0")
            wait_status(job_id, "SUCCEEDED", 90)
            job_id = ids["pool_cancelled"] = launch("launch", "-y", "-d", "-p", "rec", str(forever))
            wait_status(job_id, "RUNNING", 90)
            cli_ok("cancel", "-y", str(job_id))
            wait_status(job_id, "CANCELLED", 60)
            cli_ok("pool", "down", "rec", "--cancel", "-y")
            others["pool_workflow"] = "spotctl-pool-rec"

        # A pool started before pools carried the internal namespace division (as `pool apply`
        # started one then): the client's first look at it (`pool status`) signals `pool-hide`.
        if want("pool_hidden"):
            import spotctl.cli.pool as pool_cli

            async def start_as_before(client, spec) -> None:
                await client.start_workflow(
                    POOL_WORKFLOW, spec, id=pool_workflow_id(spec.name), task_queue=TASK_QUEUE,
                    search_attributes=TypedSearchAttributes([SearchAttributePair(sa.JOB_ID, spec.job.job_id),
                                                             SearchAttributePair(sa.JOB_NAME, spec.name)]))

            async def hidden() -> bool:
                client = await SpotClient.connect(settings)
                desc = await client.temporal.get_workflow_handle(pool_workflow_id("before")).describe()
                return desc.typed_search_attributes.get(sa.DIVISION) == sa.INTERNAL_DIVISION

            pool_cli.start_pool, start_pool = start_as_before, pool_cli.start_pool
            try:
                apply_pool("before")
            finally:
                pool_cli.start_pool = start_pool
            assert not asyncio.run(hidden())
            cli_ok("pool", "status", "before")
            wait_for("the pool hidden", lambda: asyncio.run(hidden()), 30)
            cli_ok("pool", "down", "before", "--cancel", "-y")
            others["pool_hidden"] = pool_workflow_id("before")

        # A job waiting for a pool's worker whose priority is raised (the `pool-priority` patch):
        # it asks the pool again, same attempt, and is served first.
        if want("pool_priority"):
            busy_yaml = home / "busy.yaml"
            busy_yaml.write_text("name: busy\nrun: sleep 15\n")
            quick_yaml = home / "quick.yaml"
            quick_yaml.write_text("name: quick\nrun: echo quick\n")
            apply_pool("prio")
            busy = launch("launch", "-y", "-d", "-p", "prio", str(busy_yaml))
            wait_status(busy, "RUNNING", 90)
            job_id = ids["pool_priority"] = launch("launch", "-y", "-d", "-p", "prio", str(quick_yaml))
            wait_for("the request to reach the pool", lambda: "1 job(s) waiting" in cli_ok("pool", "status", "prio"), 60)
            cli_ok("set-priority", str(job_id), "100")
            wait_for("the pool to move it", lambda: job(job_id).get("priority") == 100, 30)
            assert job(busy).get("status") == "RUNNING", "the busy job ended before the priority was raised"
            wait_status(job_id, "SUCCEEDED", 90)
            wait_status(busy, "SUCCEEDED", 90)
            cli_ok("pool", "down", "prio", "--cancel", "-y")

        # A job started on its worker with one activity (the `pool-quick-start` patch: start_run
        # writes its envs itself, no setup activity), run to its end.
        if want("pool_quick_start"):
            quick_yaml = home / "quick.yaml"
            quick_yaml.write_text("name: quick\nrun: echo rank $SKYPILOT_JOB_RANK; sleep 1\n")
            apply_pool("quick")
            job_id = ids["pool_quick_start"] = launch("launch", "-y", "-d", "-p", "quick", str(quick_yaml))
            wait_status(job_id, "SUCCEEDED", 90)
            cli_ok("pool", "down", "quick", "--cancel", "-y")

        # A job whose monitor gives its worker back itself as the program ends (the
        # `pool-early-release` patch: the workflow sends no release of its own), run to its end.
        if want("pool_early_release"):
            early_yaml = home / "early.yaml"
            early_yaml.write_text("name: early\nrun: echo rank $SKYPILOT_JOB_RANK; sleep 1\n")
            apply_pool("early")
            job_id = ids["pool_early_release"] = launch("launch", "-y", "-d", "-p", "early", str(early_yaml))
            wait_status(job_id, "SUCCEEDED", 90)
            cli_ok("pool", "down", "early", "--cancel", "-y")

        # A pool that continues as new while its jobs flow (the `pool-handover-grants` patch: it
        # keeps handing freed workers to waiting jobs while the run waits for a worker being made).
        if want("pool_handover"):
            short_yaml = home / "short.yaml"
            short_yaml.write_text("name: short\nrun: sleep 1\n")
            apply_pool("ho", 2, "sleep 4", "--continue-as-new-after", "40")
            first = int(cli_ok("launch", "-y", "--async", "--num-jobs", "12", "-p", "ho", str(short_yaml)).split()[-1])
            wait_for("a job running", lambda: job(first).get("status") in ("RUNNING", "SUCCEEDED"), 90)
            cli_ok("debug", "preempt", str(first), "--notice", "0")  # a replacement worker is made meanwhile
            for jid in range(first, first + 12):
                wait_status(jid, "SUCCEEDED", 180)
            cli_ok("pool", "down", "ho", "--cancel", "-y")

            async def pool_runs() -> None:
                client = await SpotClient.connect(settings)
                runs = [e async for e in client.temporal.list_workflows("WorkflowId = 'spotctl-pool-ho'")]
                best: tuple[int, str] | None = None
                for run in runs:
                    history = await client.temporal.get_workflow_handle("spotctl-pool-ho", run_id=run.run_id).fetch_history()
                    at = next((i for i, e in enumerate(history.events) if e.HasField("marker_recorded_event_attributes")
                               and b"pool-handover-grants" in
                               e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data), None)
                    if at is None:
                        continue
                    # Best: a run that granted a worker (signalled a job) after the marker.
                    granted = sum(e.HasField("signal_external_workflow_execution_initiated_event_attributes")
                                  for e in history.events[at:])
                    if best is None or granted > best[0]:
                        best = (granted, history.to_json())
                assert best is not None, f"no run of the pool handed over with grants ({len(runs)} runs)"
                print(f"pool_handover: {best[0]} signals after the marker")
                prefetched[only.get("pool_handover", "pool_handover")] = best[1]
            asyncio.run(pool_runs())

        async def save() -> dict[str, str]:
            client = await SpotClient.connect(settings)
            histories: dict[str, str] = {}
            for name, job_id in ids.items():
                await client.result(job_id)
                runs = [e async for e in client.temporal.list_workflows(f"WorkflowId = '{workflow_id(job_id)}'")]
                runs.sort(key=lambda e: e.start_time)
                for n, run in enumerate(runs, 1):
                    saved_as = only.get(name, name)
                    key = saved_as if len(runs) == 1 else f"{saved_as}_run{n}"
                    handle = client.temporal.get_workflow_handle(workflow_id(job_id), run_id=run.run_id)
                    histories[key] = (await handle.fetch_history()).to_json()
                for i in range(children.get(name, 0)):
                    handle = client.temporal.get_workflow_handle(f"{workflow_id(job_id)}-task-{i}")
                    histories[f"{only.get(name, name)}_task{i}"] = (await handle.fetch_history()).to_json()
                if name in events_workflows:
                    handle = client.temporal.get_workflow_handle(f"{workflow_id(job_id)}-events")
                    await handle.result()
                    histories[f"{only.get(name, name)}_events"] = (await handle.fetch_history()).to_json()
            for name, wid in others.items():
                handle = client.temporal.get_workflow_handle(wid)
                if name == "job_array":
                    await handle.result()
                histories[only.get(name, name)] = (await handle.fetch_history()).to_json()
                if name == "job_array":  # the allocator's history with a block allocation in it
                    histories["job_id_allocator_block"] = (
                        await client.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID).fetch_history()).to_json()
            histories.update(prefetched)
            if only:  # the allocator's recorded history stays as it is
                return histories
            # The allocator runs for ever: its history so far, after every launch above.
            histories["job_id_allocator"] = (
                await client.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID).fetch_history()
            ).to_json()
            return histories

        histories = asyncio.run(save())
        for key, text in histories.items():
            text = compact(scrub(text, extra_prefixes=(str(home) + "/", str(home))))
            leaks = machine_paths(text)
            assert not leaks, f"{key}: machine paths {leaks}"
            path = HERE / f"{PREFIX}{key}.json"
            path.write_text(text)
            print(f"recorded {path.name}: {len(json.loads(text)['events'])} events, {len(text)} bytes")
    finally:
        restore_config()
        server.stop()
        shutil.rmtree(home, ignore_errors=True)  # its Temporal database and local cloud: nothing is kept


async def _closed(settings, wid: str) -> bool:
    """Whether the workflow `wid` has ended."""
    from temporalio.client import WorkflowExecutionStatus

    client = await SpotClient.connect(settings)
    return (await client.temporal.get_workflow_handle(wid).describe()).status != WorkflowExecutionStatus.RUNNING


class _Webhook:
    """A webhook on 127.0.0.1 that answers `answer` (200: taken) and keeps the bodies it took."""

    def __init__(self, answer: int = 200) -> None:
        self.bodies: list[bytes] = []
        self.answer = answer
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if hook.answer == 200:
                    hook.bodies.append(body)
                self.send_response(hook.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    main()
