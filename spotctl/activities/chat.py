"""Posting one status event to a Slack or Discord incoming webhook (the deliver_chat activity's work).

The transport is the webhook's (http_post.py: one total deadline, nothing held after it, at
most MAX_ANSWER_BYTES of an answer read), and so is the sorting of answers, with what these two
APIs say on top: 2xx is done (Slack answers 200 "ok", Discord 204); 429 is "later" and its wait
is honoured (Slack's and Discord's Retry-After header, or Discord's JSON `retry_after`), as
are 408 and 5xx; any other 4xx (a deleted webhook's 404, Slack's `invalid_payload`, Discord's
`Unknown Webhook`) can never succeed, so it raises CHAT_REJECTED_ERROR, non-retryable, whose
message names the platform, the status and the platform's own error, and the event goes on to
the next target. The URL is a secret: only scheme://host/… is ever shown.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta

from temporalio.exceptions import ApplicationError

from spotctl.activities.http_post import BadUrl, NotHttp, post
from spotctl.activities.webhook import (
    ANSWER_SNIPPET_CHARS,
    MAX_ANSWER_BYTES,
    MAX_RETRY_AFTER_S,
    RETRIED_STATUSES,
    WebhookUnavailable,
    _why_no_answer,
    checked_post,
    scrubbed,
    shown_url,
)
from spotctl.models import CHAT_REJECTED_ERROR, ChatRequest
from spotctl.notify import one_line
from spotctl.notify.chat import chat_body, link_for


class ChatUnavailable(WebhookUnavailable):
    """Slack or Discord did not answer, or answered "later" (408, 429, 5xx): retried."""


def retry_delay(headers_value: str | None, body: bytes) -> timedelta | None:
    """How long the platform asked to wait: Retry-After (seconds, fractions taken: Discord
    sends them) or Discord's JSON `retry_after`, the longer; None when neither is usable."""
    waits: list[float] = []
    try:
        if headers_value is not None:
            waits.append(float(headers_value.strip()))
    except ValueError:
        pass
    try:
        data = json.loads(body.decode("utf-8", "replace")) if body.strip().startswith(b"{") else None
        if isinstance(data, dict) and isinstance(data.get("retry_after"), (int, float)):
            waits.append(float(data["retry_after"]))
    except ValueError:
        pass
    waits = [w for w in waits if math.isfinite(w) and 0 < w <= MAX_RETRY_AFTER_S]
    return timedelta(seconds=math.ceil(max(waits) * 1000) / 1000) if waits else None


def _platform_error(body: bytes) -> str:
    """The platform's own words: Slack's plain-text error code, Discord's JSON `message`."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text) if text.strip().startswith("{") else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        code = data.get("code")
        return data["message"] + (f" (code {code})" if isinstance(code, int) else "")
    return text


def check_answer(kind: str, status: int, body: bytes, retry_after: str | None, url: str) -> None:
    """Return on 2xx; raise retryable for "later" (with the platform's wait), CHAT_REJECTED_ERROR
    for "never"."""
    if 200 <= status < 300:
        return
    shown = shown_url(url)
    said = scrubbed(one_line(_platform_error(body), ANSWER_SNIPPET_CHARS), url)
    message = f"{kind} webhook {shown} answered {status}" + (f": {said}" if said else "")
    if status >= 500 or status in RETRIED_STATUSES:
        delay = retry_delay(retry_after, body)
        if delay is not None:
            raise ApplicationError(f"{message} (retried in {delay.total_seconds():g} s, as asked)",
                                   type=ChatUnavailable.__name__, next_retry_delay=delay)
        raise ChatUnavailable(message)
    why = ("redirects are not followed: configure the final URL" if 300 <= status < 400
           else "this will never succeed: check the target's webhook_url" if status in (401, 403, 404, 410)
           else "this will never succeed as sent")
    raise ApplicationError(f"{message} ({why})", type=CHAT_REJECTED_ERROR, non_retryable=True)


async def post_chat(req: ChatRequest, default_link_base: str | None) -> int:
    """POST the event's message to the target once; its HTTP status when it took it. Raises
    ChatUnavailable (retry) or CHAT_REJECTED_ERROR (never)."""
    kind, url = req.target.kind, req.target.webhook_url
    shown = shown_url(url)
    timeout_s = checked_post(url, f"{kind} webhook", CHAT_REJECTED_ERROR, req.timeout_s)
    body = json.dumps(chat_body(req.target, req.event, link_for(req.event, req.link, default_link_base))).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "spotctl"}
    try:
        answer = await post(url, body, headers, timeout_s, max_body=MAX_ANSWER_BYTES)
    except BadUrl as exc:
        raise ApplicationError(f"{kind} webhook {shown}: {exc}", type=CHAT_REJECTED_ERROR, non_retryable=True) from None
    except (OSError, ValueError, NotHttp) as exc:  # TimeoutError is an OSError
        why = scrubbed(_why_no_answer(exc, timeout_s), url)
        raise ChatUnavailable(f"{kind} webhook {shown}: {why}") from None  # no chained URL
    except Exception as exc:  # ssl's and the like
        raise ChatUnavailable(f"{kind} webhook {shown}: {type(exc).__name__}") from None
    check_answer(kind, answer.status, answer.body, answer.headers.get("Retry-After"), url)
    return answer.status
