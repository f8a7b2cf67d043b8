"""deliver_webhook and run_event_callback: status events leave spotctl here.

The job's workflow keeps an ordered queue of events and calls these one at a time, so each
must be safe to repeat (Temporal retries) and must end: a webhook POST is capped at
MAX_POST_TIMEOUT_S (well under the 15 s heartbeat time-out), and an event_callback is killed,
with its whole process group, at its time-out or when the activity is cancelled.

deliver_webhook sorts answers for the workflow's retry policy: 2xx is done; no answer, 408,
429 and 5xx raise an ordinary exception (retried with backoff, until the workflow's
`give_up_after_s`); any other answer (other 4xx, and 3xx: redirects are not followed, since a
redirected POST silently becomes a GET) raises WEBHOOK_REJECTED_ERROR, non-retryable, since
asking again gets the same refusal. Webhook URLs carry secrets in their path or query (Slack's
do), so no message, log line or chained exception here ever holds more than scheme://host/….

run_event_callback runs the task's `event_callback` as SkyPilot does on its jobs controller
(sky/jobs/utils.py): `bash -c COMMAND` with the worker's environment plus
notifications.callback_env. It runs in a fresh temporary directory, removed afterwards: a
worker's own working directory is arbitrary (/ in a container, a service's dir), and a callback
must not leave files in it; use absolute paths or ~ (the worker user's home). It gets its own
session (so one signal reaches everything it started), stdin /dev/null, and its output is kept
only as a bounded tail for the worker's log. Like SkyPilot, whatever the callback started is
killed when it ends. Its exit code is returned, never raised: a callback's failure never
changes the job.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spotctl.activities.deps import Deps
from spotctl.activities.heartbeat import heartbeating
from spotctl.models import Activities, CallbackOutcome, CallbackRequest, WebhookRequest
from spotctl.notifications import callback_env, one_line, payload

WEBHOOK_REJECTED_ERROR = "WebhookRejected"
"""ApplicationError type (non-retryable) of deliver_webhook when the receiver refuses the event
for good (a 4xx other than 408/429, a redirect, a URL that is not http(s))."""
BAD_EVENT_CALLBACK_ERROR = "BadEventCallback"
"""ApplicationError type (non-retryable) of run_event_callback for a command bash cannot be
given (a NUL byte; task parsing refuses those, this guards older specs)."""

MAX_POST_TIMEOUT_S = 10.0
"""One POST's time-out is capped here, below the heartbeat time-out (models.HEARTBEAT_TIMEOUT_S):
the blocking POST runs in a thread that a cancel cannot stop, so it must end on its own."""
RETRIED_STATUSES = frozenset({408, 429})
"""4xx answers that mean "later" (with every 5xx)."""
MAX_RETRY_AFTER_S = 3600
"""A Retry-After longer than this is ignored (the retry policy's backoff applies)."""
MAX_ANSWER_BYTES = 4096
"""How much of an answer's body is read (a snippet goes into the error message)."""
ANSWER_SNIPPET_CHARS = 200

CALLBACK_OUTPUT_TAIL_BYTES = 2048
"""The last bytes of a callback's output that reach the worker's log."""
CALLBACK_KILL_GRACE_S = 2.0
"""After SIGTERM at the time-out, this long before SIGKILL."""
_READ_CHUNK = 4096


class WebhookUnavailable(Exception):
    """The webhook did not answer, or answered "later" (408, 429, 5xx): retried."""


# -- webhook ----------------------------------------------------------------------------------


def shown_url(url: str) -> str:
    """The URL as it may be shown: scheme://host[:port]/…, never its credentials, path or
    query (where webhook secrets live)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<webhook>"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme or '?'}://{host}{port}/…"


def scrubbed(text: str, url: str) -> str:
    """`text` without any secret part of `url` (exception texts may quote the URL)."""
    try:
        parts = urlsplit(url)
        secrets = [url, parts.query, parts.fragment, parts.path if len(parts.path) > 1 else "",
                   parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""]
    except ValueError:
        secrets = [url]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "…")
    return text


@dataclass
class Answer:
    status: int
    body: bytes
    retry_after: str | None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is an answer, not an instruction: urllib would resend a POST as a GET."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> Answer:
    """One POST (blocking; run in a thread). HTTP error statuses are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return Answer(response.status, response.read(MAX_ANSWER_BYTES), None)
    except urllib.error.HTTPError as exc:
        with exc:
            try:
                data = exc.read(MAX_ANSWER_BYTES)
            except OSError:
                data = b""
            return Answer(exc.code, data, exc.headers.get("Retry-After") if exc.headers else None)


def _why_no_answer(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return f"no answer within {timeout_s:g} s"
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def _retry_delay(retry_after: str | None) -> timedelta | None:
    """Retry-After in seconds (HTTP dates are rare on webhooks and left to the backoff)."""
    if retry_after and retry_after.strip().isdigit() and 0 < int(retry_after) <= MAX_RETRY_AFTER_S:
        return timedelta(seconds=int(retry_after))
    return None


def check_answer(answer: Answer, shown: str, url: str) -> None:
    """Return on 2xx; raise retryable for "later", WEBHOOK_REJECTED_ERROR for "never"."""
    if 200 <= answer.status < 300:
        return
    snippet = scrubbed(one_line(answer.body.decode("utf-8", "replace"), ANSWER_SNIPPET_CHARS), url)
    message = f"webhook {shown} answered {answer.status}" + (f": {snippet}" if snippet else "")
    if answer.status >= 500 or answer.status in RETRIED_STATUSES:
        delay = _retry_delay(answer.retry_after)
        if delay is not None:
            raise ApplicationError(message, type=WebhookUnavailable.__name__, next_retry_delay=delay)
        raise WebhookUnavailable(message)
    if 300 <= answer.status < 400:
        message += " (redirects are not followed: configure the final URL)"
    raise ApplicationError(message, type=WEBHOOK_REJECTED_ERROR, non_retryable=True)


def _request_headers(event_id: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Idempotency-Key": event_id, "User-Agent": "spotctl"}


# -- event callback -----------------------------------------------------------------------------


class OutputTail:
    """The last `limit` bytes of a stream, however much it writes."""

    def __init__(self, limit: int = CALLBACK_OUTPUT_TAIL_BYTES) -> None:
        self.limit = limit
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > self.limit:
            del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        cut = "…" if self.total > len(self.data) else ""
        return cut + self.data.decode("utf-8", "replace")


async def _drain(stream: asyncio.StreamReader, tail: OutputTail) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        tail.add(chunk)


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal every process of the group; False when none is left."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: where PID 1 does not
    reap orphans (some containers) they stay forever, and they run nothing."""
    if not _signal_group(pgid, 0):
        return False
    try:
        stats = os.listdir("/proc")
    except OSError:
        return True  # no /proc (not Linux): trust kill(0)
    for name in stats:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


async def _stop_group(pgid: int, grace_s: float = CALLBACK_KILL_GRACE_S) -> None:
    """SIGTERM the group, SIGKILL whatever is left after `grace_s`."""
    if not _signal_group(pgid, signal.SIGTERM):
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    while loop.time() < deadline:
        if not _group_alive(pgid):
            return
        await asyncio.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)


async def _exited(proc: asyncio.subprocess.Process, timeout_s: float) -> bool:
    """Whether the callback's shell exited within `timeout_s`. Polled: before Python 3.12,
    `proc.wait()` returns only once its output pipe closes too, and a background process the
    callback started holds that pipe open."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while proc.returncode is None:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))
    return True


async def _finish(proc: asyncio.subprocess.Process, reader: asyncio.Task[None]) -> None:
    """Kill what the callback left behind and let the reader see the pipe close."""
    _signal_group(proc.pid, signal.SIGKILL)
    await _exited(proc, 5.0)
    try:
        await asyncio.wait_for(reader, 1.0)
    except TimeoutError:  # a process that left the group (setsid) still holds the pipe
        pass


def _exit_code(returncode: int) -> int:
    """As a shell reports it: 128 + N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


async def _run_callback(req: CallbackRequest, cwd: str) -> CallbackOutcome:
    try:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", req.command, cwd=cwd, env={**os.environ, **callback_env(req.event)},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
    except OSError as exc:  # no bash on this worker
        activity.logger.warning("event_callback of %s could not start: %s", req.event.event_id, exc)
        return CallbackOutcome(exit_code=127)
    assert proc.stdout is not None
    tail = OutputTail()
    reader = asyncio.get_running_loop().create_task(_drain(proc.stdout, tail))
    timed_out = False
    try:
        try:
            if not await _exited(proc, req.timeout_s):
                timed_out = True
                await _stop_group(proc.pid)
        except asyncio.CancelledError:
            await _stop_group(proc.pid)
            raise
    finally:
        await _finish(proc, reader)
    outcome = CallbackOutcome(exit_code=None if timed_out else _exit_code(proc.returncode or 0), timed_out=timed_out)
    _log_outcome(req, outcome, tail)
    return outcome


def _log_outcome(req: CallbackRequest, outcome: CallbackOutcome, tail: OutputTail) -> None:
    how = f"was killed at its {req.timeout_s:g} s time-out" if outcome.timed_out else f"exited {outcome.exit_code}"
    log = activity.logger.info if outcome.exit_code == 0 else activity.logger.warning
    log("event_callback for %s (job %s %s) %s; output (last %d bytes): %s", req.event.event_id, req.event.job_id,
        req.event.status.value, how, CALLBACK_OUTPUT_TAIL_BYTES, tail.text() or "(none)")


# -- the activities -----------------------------------------------------------------------------


class NotifyActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=Activities.DELIVER_WEBHOOK)
    async def deliver_webhook(self, req: WebhookRequest) -> None:
        """POST the event's JSON to the webhook, once; the workflow's retry policy repeats it."""
        shown = shown_url(req.url)
        try:
            scheme = urlsplit(req.url).scheme.lower()
        except ValueError:
            scheme = ""
        if scheme not in ("http", "https"):  # urllib would also open file:, ftp:, data:
            raise ApplicationError(f"webhook {shown}: not an http(s) URL", type=WEBHOOK_REJECTED_ERROR,
                                   non_retryable=True)
        timeout_s = max(0.1, min(req.timeout_s, MAX_POST_TIMEOUT_S))
        body = json.dumps(payload(req.event)).encode()
        async with heartbeating() as progress:
            progress(f"posting event {req.event.event_id} to {shown}")
            try:
                answer = await asyncio.wait_for(
                    asyncio.to_thread(_post, req.url, body, _request_headers(req.event.event_id), timeout_s),
                    timeout_s + 0.5)
            except (OSError, ValueError, urllib.error.URLError) as exc:  # TimeoutError is an OSError
                why = scrubbed(_why_no_answer(exc, timeout_s), req.url)
                raise WebhookUnavailable(f"webhook {shown}: {why}") from None  # no chained URL
            except Exception as exc:  # http.client's protocol errors and the like
                raise WebhookUnavailable(f"webhook {shown}: {type(exc).__name__}") from None
        check_answer(answer, shown, req.url)
        activity.logger.info("event %s delivered to %s (%d)", req.event.event_id, shown, answer.status)

    @activity.defn(name=Activities.RUN_EVENT_CALLBACK)
    async def run_event_callback(self, req: CallbackRequest) -> CallbackOutcome:
        """Run the task's event_callback for one event; its exit code is returned, not raised."""
        if "\x00" in req.command:
            raise ApplicationError("event_callback contains a NUL byte", type=BAD_EVENT_CALLBACK_ERROR,
                                   non_retryable=True)
        async with heartbeating() as progress:
            progress(f"running the event_callback for {req.event.event_id} ({req.event.status.value})")
            with tempfile.TemporaryDirectory(prefix="spotctl-callback-", ignore_cleanup_errors=True) as cwd:
                return await _run_callback(req, cwd)
