"""Status notifications, the delivery side (issue 12): a webhook POST and a task's event_callback,
run by the real activity code against a real loopback HTTP server and a real bash, plus the
`notify:` settings of config.yaml. What is checked is what a receiver or a user sees: the body,
the headers, how each answer is sorted for the retry policy, that a secret URL never shows, and
that a callback's processes never outlive it."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import os
import ssl
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from webhook_receiver import SECRET_PATH, SECRET_QUERY, Receiver

from spotctl.activities import http_post
from spotctl.activities.deps import Deps
from spotctl.activities.notify import WEBHOOK_REJECTED_ERROR, NotifyActivities
from spotctl.config import ConfigError, Settings, load_settings
from spotctl.models import CallbackRequest, JobEvent, JobStatus, WebhookRequest
from spotctl.notify import payload


def event(**changes: object) -> JobEvent:
    base = dict(event_id="12-3", job_id=12, name="bert-qa", status=JobStatus.RECOVERING,
                previous=JobStatus.RUNNING, reason="preempted", recoveries=1, cost_usd=0.4213,
                task_id="sky-managed-12_bert-qa_0", cluster_name="spotctl-12-2", cloud="aws",
                region="us-east-1", at=datetime(2025, 3, 1, 12, 30, tzinfo=UTC))
    return JobEvent(**{**base, **changes})


@pytest.fixture
def notify(settings: Settings) -> NotifyActivities:
    return NotifyActivities(Deps(settings))


def no_secret_in(exc: BaseException) -> None:
    """Neither the message nor the traceback Temporal would record shows the URL's secrets."""
    shown = str(exc) + "".join(traceback.format_exception(exc))
    for secret in ("s3cr3tT0ken", "qu3rys3cret", SECRET_PATH):
        assert secret not in shown, shown


# -- the body -------------------------------------------------------------------------------------


def test_payload_text_is_one_bounded_line_for_slack() -> None:
    assert payload(event())["text"] == ("spotctl job 12 'bert-qa' is RECOVERING (recovery 1): preempted "
                                        "in aws/us-east-1 · cost so far $0.42")
    long = payload(event(status=JobStatus.FAILED, task=1, task_name="eval", cost_usd=3.0,
                         reason="Traceback <!channel>\n" + "x" * 5000))["text"]
    assert long.startswith("spotctl job 12 'bert-qa' task 1 'eval' is FAILED (after 1 recovery): Traceback &lt;!channel&gt; x")
    assert "\n" not in long and len(long) < 500 and long.endswith("in aws/us-east-1 · cost $3.00")


# -- the webhook ----------------------------------------------------------------------------------


async def test_webhook_gets_the_event_as_json_with_an_idempotency_key(
        receiver: Receiver, notify: NotifyActivities) -> None:
    await ActivityEnvironment().run(notify.deliver_webhook, WebhookRequest(event=event(), url=receiver.url()))

    [got] = receiver.requests
    assert got["path"] == f"{SECRET_PATH}?{SECRET_QUERY}"
    headers = got["headers"]  # as sent: receivers that compare names exactly find them
    assert headers["Idempotency-Key"] == "12-3"
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "spotctl"
    body = json.loads(got["body"])
    assert body == {
        "event_id": "12-3", "job_id": 12, "name": "bert-qa", "status": "RECOVERING", "previous": "RUNNING",
        "reason": "preempted", "recoveries": 1, "cost_usd": 0.4213, "task": None, "task_name": None,
        "task_id": "sky-managed-12_bert-qa_0", "cluster_name": "spotctl-12-2", "cloud": "aws",
        "region": "us-east-1", "at": "2025-03-01T12:30:00+00:00",
        "text": "spotctl job 12 'bert-qa' is RECOVERING (recovery 1): preempted in aws/us-east-1 · cost so far $0.42",
    }


@pytest.mark.parametrize("answer", [500, 503, 408, 429])
async def test_a_webhook_that_says_later_is_retried(receiver: Receiver, notify: NotifyActivities,
                                                    answer: int) -> None:
    receiver.answer = answer
    with pytest.raises(Exception) as failure:
        await ActivityEnvironment().run(notify.deliver_webhook, WebhookRequest(event=event(), url=receiver.url()))
    assert not (isinstance(failure.value, ApplicationError) and failure.value.non_retryable)
    assert f"answered {answer}" in str(failure.value) and f"127.0.0.1:{receiver.port}" in str(failure.value)
    no_secret_in(failure.value)


async def test_retry_after_sets_the_next_retry(receiver: Receiver, notify: NotifyActivities) -> None:
    receiver.answer, receiver.retry_after = 429, "30"
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(notify.deliver_webhook, WebhookRequest(event=event(), url=receiver.url()))
    assert not failure.value.non_retryable and failure.value.next_retry_delay == timedelta(seconds=30)


@pytest.mark.parametrize("answer", [404, 400, 403, 301])
async def test_a_webhook_that_refuses_is_not_retried(receiver: Receiver, notify: NotifyActivities,
                                                     answer: int) -> None:
    receiver.answer = answer
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(notify.deliver_webhook, WebhookRequest(event=event(), url=receiver.url()))
    assert failure.value.type == WEBHOOK_REJECTED_ERROR and failure.value.non_retryable
    assert f"answered {answer}: no_service" in str(failure.value)
    no_secret_in(failure.value)


async def test_a_hanging_webhook_times_out_within_its_time_out(receiver: Receiver, notify: NotifyActivities) -> None:
    receiver.answer = "hang"
    start = time.monotonic()
    with pytest.raises(Exception) as failure:
        await ActivityEnvironment().run(notify.deliver_webhook,
                                        WebhookRequest(event=event(), url=receiver.url(), timeout_s=1))
    assert time.monotonic() - start < 2.5
    assert "no answer within 1 s" in str(failure.value)
    assert not (isinstance(failure.value, ApplicationError) and failure.value.non_retryable)
    no_secret_in(failure.value)


async def test_a_trickling_webhook_is_cut_off_at_its_total_deadline(receiver: Receiver,
                                                                    notify: NotifyActivities) -> None:
    """A server that sends one byte of an endless answer every 0.5 s beats any per-read
    time-out: the attempt must still end, and its connection be closed, at timeout_s."""
    receiver.answer, receiver.trickle_every_s = "trickle", 0.5
    start = time.monotonic()
    with pytest.raises(Exception) as failure:
        await ActivityEnvironment().run(notify.deliver_webhook,
                                        WebhookRequest(event=event(), url=receiver.url(), timeout_s=2))
    assert time.monotonic() - start < 3.0
    assert "no answer within 2 s" in str(failure.value)
    assert not (isinstance(failure.value, ApplicationError) and failure.value.non_retryable)
    no_secret_in(failure.value)
    deadline = time.monotonic() + 3  # the receiver notices the close at its next byte
    while receiver.trickling and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert receiver.trickling == 0, "the attempt left its connection open, still being fed"
    assert len(receiver.closed_after_s) == 1 and receiver.closed_after_s[0] < 3.5


async def test_credentials_in_the_url_are_sent_as_basic_auth(receiver: Receiver, notify: NotifyActivities) -> None:
    url = receiver.url().replace("http://", "http://hook%40ops:pa55word@")
    await ActivityEnvironment().run(notify.deliver_webhook, WebhookRequest(event=event(), url=url))
    [got] = receiver.requests
    assert got["headers"]["Authorization"] == "Basic " + base64.b64encode(b"hook@ops:pa55word").decode()
    assert got["path"] == f"{SECRET_PATH}?{SECRET_QUERY}" and got["headers"]["Host"] == f"127.0.0.1:{receiver.port}"


async def test_a_webhook_named_by_a_host_name_is_posted_to(
        receiver: Receiver, notify: NotifyActivities) -> None:
    """`localhost` may be ::1 first (nothing listens there): the next address is tried."""
    url = receiver.url().replace("127.0.0.1", "localhost")
    await ActivityEnvironment().run(notify.deliver_webhook, WebhookRequest(event=event(), url=url))
    [got] = receiver.requests
    assert got["headers"]["Host"] == f"localhost:{receiver.port}"


async def canned_answer(answer: bytes) -> tuple[asyncio.Server, str]:
    """A server on 127.0.0.1 that reads a request and writes `answer`, as is; and its URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{SECRET_PATH}?{SECRET_QUERY}"


@pytest.mark.parametrize("answer, expected", [
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", None),
    (b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nno_se\r\n5\r\nrvice\r\n0\r\n\r\n",
     "answered 404: no_service"),
    (b"HTTP/1.0 403 Forbidden\r\n\r\nno_service", "answered 403: no_service"),
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "the answer is not HTTP/1.x"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000, "an answer head of more than"),
    (b"", "the connection closed before an answer"),
])
async def test_answers_are_read_as_http(notify: NotifyActivities, answer: bytes, expected: str | None) -> None:
    """The POST speaks HTTP/1.x itself (http_post.py): interim answers, chunked bodies, answers
    without a length, and what is not HTTP at all (retried, like no answer)."""
    server, url = await canned_answer(answer)
    async with server:
        if expected is None:
            await ActivityEnvironment().run(notify.deliver_webhook, WebhookRequest(event=event(), url=url))
            return
        with pytest.raises(Exception) as failure:
            await ActivityEnvironment().run(notify.deliver_webhook, WebhookRequest(event=event(), url=url))
    assert expected in str(failure.value)
    rejected = isinstance(failure.value, ApplicationError) and failure.value.non_retryable
    assert rejected == expected.startswith("answered 4")
    no_secret_in(failure.value)


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own issuer) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.mark.parametrize("trusted", [True, False])
async def test_an_https_webhook_is_verified(tmp_path: Path, notify: NotifyActivities,
                                            monkeypatch: pytest.MonkeyPatch, trusted: bool) -> None:
    """TLS on the event loop, under the same deadline: a certificate the worker trusts is
    posted to; one it does not is an error, retried (it may be fixed), never posted to."""
    cert_file, key_file = self_signed_cert(tmp_path)
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the worker's trust store
    monkeypatch.setattr(http_post, "_tls", None)
    posted: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            posted.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client refused the certificate
        finally:
            writer.close()

    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_file, key_file)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}{SECRET_PATH}?{SECRET_QUERY}"
    async with server:
        request = WebhookRequest(event=event(), url=url, timeout_s=3)
        if trusted:
            await ActivityEnvironment().run(notify.deliver_webhook, request)
            assert len(posted) == 1 and posted[0].startswith(f"POST {SECRET_PATH}?{SECRET_QUERY} HTTP/1.1".encode())
            return
        with pytest.raises(Exception) as failure:
            await ActivityEnvironment().run(notify.deliver_webhook, request)
    assert "CERTIFICATE_VERIFY_FAILED" in str(failure.value) and posted == []
    assert not (isinstance(failure.value, ApplicationError) and failure.value.non_retryable)
    no_secret_in(failure.value)


async def test_an_unreachable_webhook_is_retried_without_showing_its_secret(
        receiver: Receiver, notify: NotifyActivities) -> None:
    url = f"http://user:pa55word@127.0.0.1:1{SECRET_PATH}?{SECRET_QUERY}"  # nothing listens on port 1
    with pytest.raises(Exception) as failure:
        await ActivityEnvironment().run(notify.deliver_webhook, WebhookRequest(event=event(), url=url))
    assert not (isinstance(failure.value, ApplicationError) and failure.value.non_retryable)
    assert "http://127.0.0.1:1/…" in str(failure.value) and "pa55word" not in str(failure.value)
    no_secret_in(failure.value)


async def test_only_http_urls_are_posted_to(tmp_path: Path, notify: NotifyActivities) -> None:
    """urllib would read a file: URL; the activity refuses anything but http(s)."""
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(notify.deliver_webhook,
                                        WebhookRequest(event=event(), url=f"file://{tmp_path}/s3cr3tT0ken"))
    assert failure.value.type == WEBHOOK_REJECTED_ERROR and failure.value.non_retryable
    no_secret_in(failure.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/s3cr3tT0ken\r\nX-Injected: 1", "http:///s3cr3tT0ken"])
async def test_a_url_that_cannot_be_sent_is_refused(notify: NotifyActivities, url: str) -> None:
    """config/notify.py refuses these; a spec from before it must not write its own headers."""
    with pytest.raises(ApplicationError) as failure:
        await ActivityEnvironment().run(notify.deliver_webhook, WebhookRequest(event=event(), url=url))
    assert failure.value.type == WEBHOOK_REJECTED_ERROR and failure.value.non_retryable
    no_secret_in(failure.value)


# -- the event callback ---------------------------------------------------------------------------


def group_alive(pgid: int) -> bool:
    """A process of the group still runs (zombies do not count: PID 1 may never reap them)."""
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


async def wait_for_file(path: Path, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.02)
    return path.read_text().strip()


async def test_the_callback_sees_skypilots_variables_and_the_workers_environment(
        tmp_path: Path, notify: NotifyActivities, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_ONLY_VAR", "from-the-worker")
    out = tmp_path / "env.txt"
    command = f"env > {out}; pwd >> {out}; pwd > {tmp_path}/cwd"
    outcome = await ActivityEnvironment().run(notify.run_event_callback,
                                              CallbackRequest(event=event(task=1, task_name="eval"), command=command))

    assert outcome.exit_code == 0 and not outcome.timed_out
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert {k: env.get(k) for k in ("JOB_ID", "TASK_ID", "JOB_STATUS", "CLUSTER_NAME", "TASK_NAME",
                                    "SKYPILOT_TASK_ID", "EVENT_TYPE", "SPOTCTL_EVENT_ID", "SPOTCTL_JOB_NAME",
                                    "SPOTCTL_PREVIOUS_STATUS", "WORKER_ONLY_VAR")} == {
        "JOB_ID": "12", "TASK_ID": "1", "JOB_STATUS": "RECOVERING", "CLUSTER_NAME": "spotctl-12-2",
        "TASK_NAME": "eval", "SKYPILOT_TASK_ID": "sky-managed-12_bert-qa_0", "EVENT_TYPE": "Spot",
        "SPOTCTL_EVENT_ID": "12-3", "SPOTCTL_JOB_NAME": "bert-qa", "SPOTCTL_PREVIOUS_STATUS": "RUNNING",
        "WORKER_ONLY_VAR": "from-the-worker"}
    cwd = Path((tmp_path / "cwd").read_text().strip())
    assert cwd.name.startswith("spotctl-callback-") and not cwd.exists()  # a fresh dir, removed after


async def test_a_single_tasks_callback_gets_the_job_name_and_no_cluster(tmp_path: Path,
                                                                       notify: NotifyActivities) -> None:
    out = tmp_path / "env.txt"
    command = f'echo "$TASK_ID|$TASK_NAME|$CLUSTER_NAME|$SPOTCTL_PREVIOUS_STATUS" > {out}'
    await ActivityEnvironment().run(notify.run_event_callback, CallbackRequest(
        event=event(status=JobStatus.PENDING, previous=None, cluster_name=None), command=command))
    assert out.read_text() == "0|bert-qa||\n"


async def test_a_failing_callback_is_reported_not_raised(notify: NotifyActivities,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    command = "head -c 100000 /dev/zero | tr '\\0' a; echo; echo the-last-words >&2; exit 3"
    outcome = await ActivityEnvironment().run(notify.run_event_callback,
                                              CallbackRequest(event=event(), command=command))
    assert outcome.exit_code == 3 and not outcome.timed_out
    [record] = [r for r in caplog.records if "event_callback for 12-3" in r.getMessage()]
    assert "exited 3" in record.getMessage() and "the-last-words" in record.getMessage()
    assert len(record.getMessage()) < 2600  # the tail only, not 100 kB


async def test_a_callback_is_killed_at_its_time_out_with_everything_it_started(
        tmp_path: Path, notify: NotifyActivities) -> None:
    """Even a callback that ignores SIGTERM: SIGKILL follows after the grace."""
    pid_file = tmp_path / "pid"
    command = f"trap '' TERM; echo $$ > {pid_file}; sleep 600 & sleep 600; wait"
    start = time.monotonic()
    outcome = await ActivityEnvironment().run(notify.run_event_callback,
                                              CallbackRequest(event=event(), command=command, timeout_s=1))
    assert outcome.exit_code is None and outcome.timed_out
    assert time.monotonic() - start < 4.5
    assert not group_alive(int(pid_file.read_text()))


async def test_what_a_callback_leaves_running_is_killed_when_it_ends(tmp_path: Path,
                                                                     notify: NotifyActivities) -> None:
    pid_file = tmp_path / "pid"
    outcome = await ActivityEnvironment().run(notify.run_event_callback, CallbackRequest(
        event=event(), command=f"echo $$ > {pid_file}; sleep 600 & exit 0"))
    assert outcome.exit_code == 0
    assert not group_alive(int(pid_file.read_text()))


async def test_a_cancelled_activity_kills_its_callback(tmp_path: Path, notify: NotifyActivities) -> None:
    pid_file = tmp_path / "pid"
    env = ActivityEnvironment()
    running = asyncio.create_task(env.run(notify.run_event_callback, CallbackRequest(
        event=event(), command=f"echo $$ > {pid_file}; sleep 600", timeout_s=300)))
    pgid = int(await wait_for_file(pid_file))
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 5)
    assert not group_alive(pgid)


# -- notify: in config.yaml -----------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SPOTCTL_NOTIFY_URL", raising=False)
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def write_config(home: Path, text: str) -> None:
    (home / "config.yaml").write_text(text)


def test_notify_settings_are_read_from_config_yaml(home: Path) -> None:
    assert load_settings(home).notify is None
    write_config(home, "notify:\n  url: https://hooks.example.com/services/x\n  on: [recovering, Failed]\n"
                       "  timeout_s: 5\n  give_up_after_s: 3600\n  callback_timeout_s: 30\n")
    notify = load_settings(home).notify
    assert notify is not None and notify.url == "https://hooks.example.com/services/x"
    assert notify.on == [JobStatus.RECOVERING, JobStatus.FAILED]
    assert (notify.timeout_s, notify.give_up_after_s, notify.callback_timeout_s) == (5, 3600, 30)


def test_the_environment_names_the_webhook(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(home, "notify:\n  url: https://a.example.com/x\n  callback_timeout_s: 9\n")
    monkeypatch.setenv("SPOTCTL_NOTIFY_URL", "http://b.example.com:8080/y")
    notify = load_settings(home).notify
    assert notify is not None and notify.url == "http://b.example.com:8080/y" and notify.callback_timeout_s == 9


@pytest.mark.parametrize("notify, expected", [
    (f"url: ftp://hooks.example.com{SECRET_PATH}", "notify.url: must be an http:// or https:// URL"),
    (f"url: https://{SECRET_PATH}", "notify.url: the URL has no host"),
    (f"url: https://example.com{SECRET_PATH}{'x' * 2100}", "characters is more than the limit of 2048"),
    ("url: 42", "notify.url: expected an http(s) URL"),
    ("on: [RUNING]", "notify.on: unknown job status 'RUNING' (known: PENDING,"),
    ("on: [" + ", ".join(["FAILED"] * 21) + "]", "notify.on: 21 statuses is more than the limit of 20"),
    ("timeout_s: 60", "notify.timeout_s: must be more than 0 and at most 10 seconds"),
    ("callback_timeout_s: 0", "notify.callback_timeout_s: must be more than 0"),
    ("give_up_after_s: 99999999", "notify.give_up_after_s: must be more than 0 and at most 2.592e+06"),
    ("timeout_s: soon", "notify.timeout_s: expected a number of seconds"),
    ("urls: https://example.com", "notify: unknown key 'urls'"),
])
def test_bad_notify_settings_are_one_clear_line(home: Path, notify: str, expected: str) -> None:
    write_config(home, f"notify:\n  {notify}\n")
    with pytest.raises(ConfigError) as failure:
        load_settings(home)
    message = str(failure.value)
    assert message.startswith(f"{home / 'config.yaml'}: ") and expected in message, message
    assert "\n" not in message and "s3cr3tT0ken" not in message


def test_a_bad_url_in_the_environment_is_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTCTL_NOTIFY_URL", f"hooks.example.com{SECRET_PATH}")
    with pytest.raises(ConfigError, match="^SPOTCTL_NOTIFY_URL: must be an http") as failure:
        load_settings(home)
    assert "s3cr3tT0ken" not in str(failure.value)
