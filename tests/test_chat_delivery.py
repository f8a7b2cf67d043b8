"""Slack and Discord targets, the delivery and launch sides (issue 26, item 4): SkyPilot's
`event_callback:` list form read and checked at launch, the messages each platform gets, and the
deliver_chat activity's real code against loopback fakes of Slack's incoming-webhook API and
Discord's webhook API (tests/chat_fakes.py): how each answer is sorted for the retry policy
(429's Retry-After honoured, a 404 named and never retried), and that a webhook URL never shows.
The end-to-end runs, with the embedded Temporal server and the local cloud, are in
tests/test_chat_notifications.py."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from chat_fakes import DISCORD_PATH, SLACK_PATH, ChatFake, Scripted, rate_limited, running_chat_fakes
from click.testing import CliRunner
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from test_notify_delivery import event

from spotctl.activities.deps import Deps
from spotctl.activities.notify import NotifyActivities
from spotctl.cli.main import cli
from spotctl.config import ConfigError, Settings, load_settings
from spotctl.models import CHAT_REJECTED_ERROR, ChatRequest, ChatTarget, JobStatus
from spotctl.models.chat import DISCORD_CONTENT_LIMIT, MAX_TEMPLATE_CHARS
from spotctl.notify.chat import chat_body, link_for, render
from spotctl.task import TaskError, parse_task_text

pytestmark = pytest.mark.quick


@pytest.fixture
def fakes() -> Iterator[ChatFake]:
    with running_chat_fakes() as state:
        yield state


@pytest.fixture
def notify(settings: Settings) -> NotifyActivities:
    return NotifyActivities(Deps(settings))


def no_token_in(text: str) -> None:
    for secret in ("sl4ckT0ken", "d1sc0rdT0ken", SLACK_PATH, DISCORD_PATH):
        assert secret not in text, text


# -- the task file ----------------------------------------------------------------------------


SKYPILOT_EXAMPLE = """\
name: train
run: echo
secrets:
  SLACK_WEBHOOK_URL: null
event_callback:
  - slack:
      webhook_url: ${SLACK_WEBHOOK_URL}
      username: "SkyPilot Bot"
      channel: "#ml-jobs"
      notify_on: ["FAILED", "SUCCEEDED"]
      message: "{EMOJI} Job {TASK_NAME} is {JOB_STATUS}"
  - discord:
      webhook_url: https://discord.example/api/webhooks/1/abc
"""


def test_skypilots_example_is_read_as_written() -> None:
    """SkyPilot's own example (examples/managed_job_with_notification) with the URL from a secret."""
    [task] = parse_task_text(SKYPILOT_EXAMPLE, secret_overrides={
        "SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T/B/X"}).tasks
    slack, discord = task.chat_targets()
    assert (slack.kind, slack.webhook_url, slack.channel, slack.username) == (
        "slack", "https://hooks.slack.example/services/T/B/X", "#ml-jobs", "SkyPilot Bot")
    assert slack.notify_on == [JobStatus.FAILED, JobStatus.SUCCEEDED]
    assert discord.kind == "discord" and discord.message is None
    assert JobStatus.PENDING not in discord.notify_on and JobStatus.SUCCEEDED in discord.notify_on
    assert task.callback_command is None  # the list form is no bash command


@pytest.mark.parametrize("change, expected", [
    (("{JOB_STATUS}", "{JOB_STAUTS}"), "task.yaml:11: event_callback[0].slack.message: unknown placeholder "
                                       "{JOB_STAUTS} (did you mean {JOB_STATUS}?)"),
    (("channel:", "chanel:"), "task.yaml:9: event_callback[0].slack.chanel: unknown field (did you mean 'channel'?)"),
    (('["FAILED", "SUCCEEDED"]', '["FAILD"]'), "task.yaml:10: event_callback[0].slack.notify_on: unknown job "
                                               "status 'FAILD'"),
    (("- discord:", "- teams:"), "task.yaml:12: event_callback[1].teams: unknown field"),
    (("https://discord.example", "ftp://discord.example"), "event_callback[1].discord.webhook_url: a discord "
                                                           "webhook_url must be an https:// (or http://) URL"),
    (('"SkyPilot Bot"', "x" * 81), "event_callback[0].slack.username: a username is one line of 1 to 80"),
    (("{EMOJI} Job", "{EMOJI} " + "x" * MAX_TEMPLATE_CHARS), f"more than the limit of {MAX_TEMPLATE_CHARS}"),
])
def test_a_bad_target_is_one_line_naming_its_key(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(TaskError) as err:
        parse_task_text(SKYPILOT_EXAMPLE.replace(*change), source="task.yaml",
                        secret_overrides={"SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T/B/X"})
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_an_unset_variable_in_the_url_is_named() -> None:
    with pytest.raises(TaskError) as err:
        parse_task_text("run: echo\nevent_callback:\n  - slack:\n      webhook_url: ${NOPE}\n", source="task.yaml")
    assert str(err.value) == ("task.yaml:4: event_callback[0].slack.webhook_url: $NOPE is not set: add it to the "
                              "task's secrets (or envs) and pass --secret NOPE")


def cli_env(tmp_path: Path) -> dict[str, str]:
    return {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local"}


class ReachedServer(Exception):
    """The launch got as far as the server: a check that should have refused it did not."""


def test_a_bad_template_is_exit_2_and_the_dry_run_hides_the_urls(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused before anything is created (the server is never reached, no state dir made);
    a dry run of a good file prints no webhook URL, not even one written in the file."""
    async def no_server(*args: object, **kwargs: object) -> None:
        raise ReachedServer

    from spotctl.cli import launch as launch_module
    monkeypatch.setattr(launch_module, "open_client", no_server)
    task = tmp_path / "task.yaml"
    task.write_text(SKYPILOT_EXAMPLE.replace("{JOB_STATUS}", "{STATUS}"))
    env = {**cli_env(tmp_path), "SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T/B/sl4ckT0ken"}
    result = CliRunner().invoke(cli, ["launch", "-y", "-d", str(task), "--secret", "SLACK_WEBHOOK_URL"], env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"Error: {task}:11: event_callback[0].slack.message: unknown placeholder {{STATUS}} (did you mean "
        "{JOB_STATUS}?); known: {JOB_STATUS} {JOB_ID} {TASK_ID} {TASK_NAME} {CLUSTER_NAME} {EMOJI} {JOB_NAME} "
        "{PREVIOUS_STATUS} {REASON} {COST} {RECOVERIES} {CLOUD} {REGION} {LINK}"]
    assert not (tmp_path / "home" / "server").exists()

    task.write_text(SKYPILOT_EXAMPLE.replace("1/abc", "1/d1sc0rdT0ken"))
    dry = CliRunner().invoke(cli, ["launch", "--dry-run", str(task), "--secret", "SLACK_WEBHOOK_URL"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "event_callback" in dry.output and "#ml-jobs" in dry.output
    no_token_in(dry.output)


# -- the messages -----------------------------------------------------------------------------


def test_the_default_slack_message_says_what_happened_with_a_link() -> None:
    target = ChatTarget(kind="slack", webhook_url="https://x/y")
    body = chat_body(target, event(status=JobStatus.FAILED, reason="exit 3 <!channel>", cost_usd=1.5),
                     "http://127.0.0.1:8233/namespaces/default/workflows/spotctl-job-12")
    assert body["username"] == "spotctl" and "channel" not in body
    assert body["text"] == "❌ spotctl job 12 'bert-qa' is FAILED: exit 3 &lt;!channel&gt; in aws/us-east-1 · cost $1.50"
    [attachment] = body["attachments"]
    assert attachment["color"] == "#ff0000"
    header, section, context = attachment["blocks"]
    assert header["text"]["text"] == "❌ spotctl job 12 'bert-qa' is FAILED"
    fields = [f["text"] for f in section["fields"]]
    assert "*Job ID:* 12" in fields and "*Status:* FAILED" in fields and "*Cost:* $1.50" in fields
    assert "*Reason:* exit 3 &lt;!channel&gt;" in fields
    assert context["elements"][0]["text"] == "<http://127.0.0.1:8233/namespaces/default/workflows/spotctl-job-12|Open job>"


def test_the_default_discord_message_is_an_embed_that_mentions_no_one() -> None:
    target = ChatTarget(kind="discord", webhook_url="https://x/y", username="ops")
    body = chat_body(target, event(reason="@everyone preempted"), "http://dash/jobs/12")
    assert body["username"] == "ops" and body["allowed_mentions"] == {"parse": []}
    [embed] = body["embeds"]
    assert embed["title"] == "🔄 spotctl job 12 'bert-qa' is RECOVERING" and embed["url"] == "http://dash/jobs/12"
    assert {f["name"]: f["value"] for f in embed["fields"]}["Cost"] == "$0.42 so far"
    assert body["content"].startswith("🔄 spotctl job 12 'bert-qa' is RECOVERING (recovery 1): @everyone preempted")


def test_a_template_takes_skypilots_and_spotctls_placeholders_escaped_and_cut() -> None:
    template = "$EMOJI {TASK_NAME} ({JOB_ID}/{TASK_ID}) is $JOB_STATUS on {CLUSTER_NAME}: {REASON} {COST} {LINK}"
    got = render(template, event(reason="<!here> @everyone"), "http://l", "slack")
    assert got == "🔄 bert-qa (12/0) is RECOVERING on spotctl-12-2: &lt;!here&gt; @everyone $0.42 http://l"
    got = render(template, event(reason="<!here> @everyone"), None, "discord")
    assert got == "🔄 bert-qa (12/0) is RECOVERING on spotctl-12-2: <!here> @\u200beveryone $0.42 "
    long = render("{REASON}" * 20, event(reason="y" * 300), None, "discord")
    assert len(long) == DISCORD_CONTENT_LIMIT and long.endswith("…")


def test_the_link_is_notify_link_or_the_temporal_ui() -> None:
    assert link_for(event(), "https://dash/jobs/{JOB_ID}?wf={WORKFLOW_ID}", "http://ui") == \
        "https://dash/jobs/12?wf=spotctl-job-12"
    assert link_for(event(), None, "http://ui/namespaces/default") == \
        "http://ui/namespaces/default/workflows/spotctl-job-12"


def test_notify_link_is_read_from_config_yaml_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("notify:\n  link: https://dash.example/jobs/{JOB_ID}\n")
    notify = load_settings(home).notify
    assert notify is not None and notify.link == "https://dash.example/jobs/{JOB_ID}" and notify.url is None
    (home / "config.yaml").write_text("notify:\n  link: dash/jobs/{JOB_ID}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(home)
    assert "notify.link: must be an http:// or https:// URL" in str(err.value) and "\n" not in str(err.value)


# -- the activity against the fakes ----------------------------------------------------------


async def test_each_platform_takes_its_message(fakes: ChatFake, notify: NotifyActivities) -> None:
    for kind in ("slack", "discord"):
        target = ChatTarget(kind=kind, webhook_url=fakes.url(kind), message="{JOB_NAME} {JOB_STATUS}")
        await ActivityEnvironment().run(notify.deliver_chat, ChatRequest(event=event(), target=target))
    assert fakes.got("slack") == [{"username": "spotctl", "text": "bert-qa RECOVERING"}]
    assert fakes.got("discord") == [{"username": "spotctl", "content": "bert-qa RECOVERING"}]


@pytest.mark.parametrize("kind", ["slack", "discord"])
async def test_a_429_asks_for_a_retry_after_its_wait(kind: str, fakes: ChatFake, notify: NotifyActivities) -> None:
    fakes.script[kind].append(rate_limited(kind, 7))
    target = ChatTarget(kind=kind, webhook_url=fakes.url(kind))
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(notify.deliver_chat, ChatRequest(event=event(), target=target))
    assert not err.value.non_retryable and err.value.next_retry_delay == timedelta(seconds=7)
    assert f"{kind} webhook http://127.0.0.1:{fakes.port}/… answered 429" in str(err.value)
    no_token_in(str(err.value) + "".join(traceback.format_exception(err.value)))


@pytest.mark.parametrize("kind, said", [("slack", "no_service"), ("discord", "Unknown Webhook (code 10015)")])
async def test_a_deleted_webhook_is_named_and_never_retried(kind: str, said: str, fakes: ChatFake,
                                                            notify: NotifyActivities) -> None:
    fakes.gone.add(kind)
    target = ChatTarget(kind=kind, webhook_url=fakes.url(kind))
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(notify.deliver_chat, ChatRequest(event=event(), target=target))
    assert err.value.non_retryable and err.value.type == CHAT_REJECTED_ERROR
    assert err.value.message == (f"{kind} webhook http://127.0.0.1:{fakes.port}/… answered 404: {said} "
                              "(this will never succeed: check the target's webhook_url)")
    no_token_in(str(err.value) + "".join(traceback.format_exception(err.value)))


async def test_a_5xx_is_retried_and_a_dead_port_too(fakes: ChatFake, notify: NotifyActivities) -> None:
    fakes.script["slack"].append(Scripted(500, b"rollup_error"))
    target = ChatTarget(kind="slack", webhook_url=fakes.url("slack"))
    with pytest.raises(Exception) as err:
        await ActivityEnvironment().run(notify.deliver_chat, ChatRequest(event=event(), target=target))
    assert type(err.value).__name__ == "ChatUnavailable" and "answered 500: rollup_error" in str(err.value)
    dead = ChatTarget(kind="discord", webhook_url="http://127.0.0.1:9/api/webhooks/1/d1sc0rdT0ken")
    with pytest.raises(Exception) as err:
        await ActivityEnvironment().run(notify.deliver_chat, ChatRequest(event=event(), target=dead, timeout_s=2))
    assert type(err.value).__name__ == "ChatUnavailable"
    no_token_in(str(err.value))
