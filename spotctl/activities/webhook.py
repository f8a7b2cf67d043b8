"""Posting one status event to the user's webhook (the deliver_webhook activity's work).

Answers are sorted for the workflow's retry policy: 2xx is done; no answer, 408, 429 and 5xx
raise an ordinary exception (retried with backoff, until the workflow's `give_up_after_s`); any
other answer (other 4xx, and 3xx: redirects are not followed, since a redirected POST silently
becomes a GET) raises WEBHOOK_REJECTED_ERROR, non-retryable, since asking again gets the same
refusal. Webhook URLs carry secrets in their path or query (Slack's do), so no message, log line
or chained exception here ever holds more than scheme://host/….
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from temporalio.exceptions import ApplicationError

from spotctl.activities.http_post import BadUrl, NotHttp, post
from spotctl.models import WEBHOOK_REJECTED_ERROR, WebhookRequest
from spotctl.notify import one_line, payload

MAX_POST_TIMEOUT_S = 10.0
"""One POST's time-out is capped here. It is a total deadline for the whole attempt (name
lookup, connect, TLS, sending, the answer: http_post.py), so an attempt always ends before the
workflow's start-to-close time-out (timeout_s + 10 s) and the heartbeat time-out
(models.HEARTBEAT_TIMEOUT_S): a retry never starts while an earlier attempt still runs."""
RETRIED_STATUSES = frozenset({408, 429})
"""4xx answers that mean "later" (with every 5xx)."""
MAX_RETRY_AFTER_S = 3600
"""A Retry-After longer than this is ignored (the retry policy's backoff applies)."""
MAX_ANSWER_BYTES = 4096
"""How much of an answer's body is read (a snippet goes into the error message)."""
ANSWER_SNIPPET_CHARS = 200


class WebhookUnavailable(Exception):
    """The webhook did not answer, or answered "later" (408, 429, 5xx): retried."""


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


def checked_post(url: str, what: str, rejected: str, timeout_s: float) -> float:
    """Refuse, for good, a URL that is not http(s) (`what` names it, its secrets never shown;
    `rejected` is the named non-retryable error type); the attempt's deadline, capped."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https"):
        raise ApplicationError(f"{what} {shown_url(url)}: not an http(s) URL", type=rejected, non_retryable=True)
    return max(0.1, min(timeout_s, MAX_POST_TIMEOUT_S))


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


def _why_no_answer(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, NotHttp):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


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


async def post_event(req: WebhookRequest) -> int:
    """POST the event's JSON to the webhook once; its HTTP status when it took it. Raises
    WebhookUnavailable (retry) or WEBHOOK_REJECTED_ERROR (never)."""
    shown = shown_url(req.url)
    timeout_s = checked_post(req.url, "webhook", WEBHOOK_REJECTED_ERROR, req.timeout_s)
    body = json.dumps(payload(req.event)).encode()
    try:
        answer = await post(req.url, body, _request_headers(req.event.event_id), timeout_s,
                            max_body=MAX_ANSWER_BYTES)
    except BadUrl as exc:
        raise ApplicationError(f"webhook {shown}: {exc}", type=WEBHOOK_REJECTED_ERROR, non_retryable=True) from None
    except (OSError, ValueError, NotHttp) as exc:  # TimeoutError is an OSError
        why = scrubbed(_why_no_answer(exc, timeout_s), req.url)
        raise WebhookUnavailable(f"webhook {shown}: {why}") from None  # no chained URL
    except Exception as exc:  # ssl's and the like
        raise WebhookUnavailable(f"webhook {shown}: {type(exc).__name__}") from None
    check_answer(Answer(answer.status, answer.body, answer.headers.get("Retry-After")), shown, req.url)
    return answer.status
