"""Slack and Discord notifications end to end (issue 26, item 4): real jobs on the local cloud,
the embedded Temporal server and worker, and loopback fakes of Slack's incoming-webhook API and
Discord's webhook API (tests/chat_fakes.py), the targets given as SkyPilot gives them (the
task's `event_callback:` list). What is checked is what a channel sees: each job's notices in
order with the right text, only the statuses asked for, a rate limit waited out as the platform
asked, and a deleted webhook named in the worker's log without holding up or changing the job;
and that a bad template is refused at launch with nothing created."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chat_fakes import ChatFake, rate_limited, running_chat_fakes
from test_notifications import closed_within

from conftest import Spot

TICKS = 'for i in $(seq 1 12); do echo "tick $i"; sleep 0.25; done'


@pytest.fixture
def fakes() -> Iterator[ChatFake]:
    with running_chat_fakes() as state:
        yield state


def task_file(tmp_path: Path, run: str, targets: str) -> str:
    """A task named `chatty` with `targets` as its event_callback list (YAML, indented by 2)."""
    path = tmp_path / "task.yaml"
    path.write_text(f"name: chatty\nresources:\n  cpus: 1+\nrun: |\n  {run}\nevent_callback:\n{targets}")
    return str(path)


def statuses(bodies: list[dict], kind: str) -> list[str]:
    """The status each message announces (the default one's header, or a template's last word)."""
    if kind == "slack":
        return [b["text"].split(" is ", 1)[1].split()[0].rstrip(":") for b in bodies]
    return [b["content"].split(" is ", 1)[1].split()[0] for b in bodies]


def wait_for(fakes: ChatFake, kind: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(got := fakes.got(kind)) >= count:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{kind} got {len(fakes.got(kind))} of {count}: {fakes.requests}")


def test_a_jobs_notices_arrive_in_order_through_the_status_filter(spot_clean: Spot, tmp_path: Path,
                                                                  fakes: ChatFake) -> None:
    targets = (f"  - slack:\n      webhook_url: {fakes.url('slack')}\n      channel: '#ml-jobs'\n"
               "      notify_on: [RUNNING, RECOVERING, SUCCEEDED]\n"
               f"  - discord:\n      webhook_url: {fakes.url('discord')}\n"
               "      message: '{EMOJI} {JOB_NAME} #{JOB_ID} is {JOB_STATUS} ({RECOVERIES}) {COST}'\n")
    job_id = spot_clean.launch_detached(task_file(tmp_path, TICKS, targets))
    spot_clean.wait_running(job_id, 1)
    assert spot_clean.run("debug", "preempt", str(job_id), "--notice", "0").exit_code == 0

    slack = wait_for(fakes, "slack", 4)
    discord = wait_for(fakes, "discord", 6)
    assert statuses(slack, "slack") == ["RUNNING", "RECOVERING", "RUNNING", "SUCCEEDED"]
    assert statuses(discord, "discord") == ["STARTING", "RUNNING", "RECOVERING", "STARTING", "RUNNING", "SUCCEEDED"]
    time.sleep(1)
    assert len(fakes.got("slack")) == 4 and len(fakes.got("discord")) == 6  # nothing else (PENDING filtered)

    recovering, done = slack[1], slack[3]
    assert recovering["text"].startswith(f"🔄 spotctl job {job_id} 'chatty' is RECOVERING (recovery 1): ")
    assert "preempted" in recovering["text"] and recovering["channel"] == "#ml-jobs"
    assert re.fullmatch(rf"✅ spotctl job {job_id} 'chatty' is SUCCEEDED.* in local/\S+ · cost \$\d+\.\d\d",
                        done["text"]), done["text"]
    fields = [f["text"] for f in done["attachments"][0]["blocks"][1]["fields"]]
    assert f"*Job ID:* {job_id}" in fields and "*Name:* chatty" in fields and "*Recoveries:* 1" in fields
    link = done["attachments"][0]["blocks"][2]["elements"][0]["text"]
    ui = spot_clean.settings.ui_url
    assert link == f"<{ui}/namespaces/default/workflows/spotctl-job-{job_id}|Open job>"
    assert re.fullmatch(rf"🚀 chatty #{job_id} is STARTING \(0\) \$0\.\d\d", discord[0]["content"])
    assert re.fullmatch(rf"✅ chatty #{job_id} is SUCCEEDED \(1\) \$\d+\.\d\d", discord[-1]["content"])


def test_a_rate_limit_is_waited_out_as_asked(spot_clean: Spot, tmp_path: Path, fakes: ChatFake) -> None:
    """Slack's 429 says Retry-After: 4: the retry comes no sooner (the retry policy alone would
    try again after 1 s), and the notices still arrive in order, Discord's after Slack's."""
    fakes.script["slack"].append(rate_limited("slack", 4))
    targets = (f"  - slack:\n      webhook_url: {fakes.url('slack')}\n      notify_on: [RUNNING, SUCCEEDED]\n"
               f"  - discord:\n      webhook_url: {fakes.url('discord')}\n      notify_on: [SUCCEEDED]\n"
               "      message: '{JOB_ID} is {JOB_STATUS}'\n")
    job_id = spot_clean.launch_detached(task_file(tmp_path, "echo quick", targets))
    slack = wait_for(fakes, "slack", 2, timeout=90)
    assert statuses(slack, "slack") == ["RUNNING", "SUCCEEDED"]
    posts = [r for r in fakes.requests if r["kind"] == "slack"]
    assert [r["status"] for r in posts] == [429, 200, 200]
    assert posts[1]["at"] - posts[0]["at"] >= 3.9, posts[1]["at"] - posts[0]["at"]
    [discord] = wait_for(fakes, "discord", 1)
    assert discord["content"] == f"{job_id} is SUCCEEDED"
    discord_at = next(r["at"] for r in fakes.requests if r["kind"] == "discord")
    assert discord_at >= posts[2]["at"]  # the SUCCEEDED notice: Slack first, then Discord


def test_a_deleted_webhook_is_named_in_the_log_and_the_job_goes_on(spot_clean: Spot, tmp_path: Path,
                                                                   fakes: ChatFake) -> None:
    fakes.gone.add("discord")
    targets = (f"  - discord:\n      webhook_url: {fakes.url('discord')}\n      notify_on: [RUNNING, SUCCEEDED]\n"
               f"  - slack:\n      webhook_url: {fakes.url('slack')}\n      notify_on: [RUNNING, SUCCEEDED]\n")
    job_id = spot_clean.launch_detached(task_file(tmp_path, "echo fine", targets))
    assert spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)["status"] == "SUCCEEDED"
    assert statuses(wait_for(fakes, "slack", 2), "slack") == ["RUNNING", "SUCCEEDED"]
    assert [r["status"] for r in fakes.requests if r["kind"] == "discord"] == [404, 404]  # once each: never retried
    assert closed_within(spot_clean, job_id, 30)
    log = (spot_clean.home / "server" / "worker.log").read_text(errors="replace")
    named = (f"job {job_id}: event {job_id}-3 not delivered to discord: ChatRejected: discord webhook "
             f"http://127.0.0.1:{fakes.port}/… answered 404: Unknown Webhook (code 10015)")
    assert named in log, log[-3000:]
    assert "d1sc0rdT0ken" not in log and "sl4ckT0ken" not in log


def test_a_bad_template_is_refused_at_launch_with_nothing_created(spot_clean: Spot, tmp_path: Path,
                                                                  fakes: ChatFake) -> None:
    before = {j["job_id"] for j in spot_clean.status()}
    targets = f"  - slack:\n      webhook_url: {fakes.url('slack')}\n      message: 'job {{JOB_ID}} is {{STATE}}'\n"
    path = task_file(tmp_path, "echo never", targets)
    result = spot_clean.run("launch", "-y", "-d", path)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {path}:9: event_callback[0].slack.message: unknown placeholder {{STATE}}")
    assert "Traceback" not in result.output and "sl4ckT0ken" not in result.output
    assert {j["job_id"] for j in spot_clean.status()} == before
    assert fakes.requests == []


def test_each_task_of_a_pipeline_posts_its_own_notices(spot_clean: Spot, tmp_path: Path, fakes: ChatFake) -> None:
    """A pipeline's tasks each carry their targets, as SkyPilot's do; TASK_ID is the task's index."""
    target = (f"event_callback:\n  - slack:\n      webhook_url: {fakes.url('slack')}\n      notify_on: [SUCCEEDED]\n"
              "      message: '{JOB_NAME} #{JOB_ID} task {TASK_ID} {TASK_NAME} is {JOB_STATUS}'\n")
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"name: duo\n---\nname: first\nrun: echo one\n{target}---\nname: second\nrun: echo two\n{target}")
    job_id = spot_clean.launch_detached(str(path))
    got = wait_for(fakes, "slack", 2, timeout=90)
    assert [b["text"] for b in got] == [f"duo #{job_id} task 0 first is SUCCEEDED",
                                        f"duo #{job_id} task 1 second is SUCCEEDED"]
    assert spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)["status"] == "SUCCEEDED"
