"""What a status event looks like in Slack and in Discord: the JSON body of one incoming-webhook
POST. Pure (no I/O): activities/chat.py posts it.

Without a template the message is spotctl's: job id, name, status, reason, cost where known and
a link (the Temporal UI's, or `notify.link`), as a Slack attachment or a Discord embed, with a
plain `text`/`content` line too. With one (SkyPilot's `message:`), the rendered text is the
whole message, as SkyPilot sends it. Every value put into a message is bounded and escaped so a
job name or a failure reason cannot mention @channel or @everyone, or break out of a link; the
template's own text is the user's and is sent as written. Each platform's size limits are kept
(models/chat.py), so a message is never refused for its size.
"""

from __future__ import annotations

import re
from typing import Any

from spotctl.models import ChatTarget, JobEvent
from spotctl.models.chat import DISCORD_CONTENT_LIMIT, PLACEHOLDERS, SLACK_TEXT_LIMIT
from spotctl.models.naming import job_workflow_id
from spotctl.notify.payloads import MAX_REASON_CHARS, one_line, slack_escape

DEFAULT_USERNAME = "spotctl"
EMOJI = {"PENDING": "⏳", "STARTING": "🚀", "RUNNING": "⚡", "RECOVERING": "🔄", "SUCCEEDED": "✅",
         "CANCELLING": "⛔", "CANCELLED": "⛔"}
"""A status's emoji ({EMOJI}); every FAILED* is ❌."""
COLORS = {"STARTING": 0x36A64F, "RUNNING": 0xFFAA00, "RECOVERING": 0xFFAA00, "SUCCEEDED": 0x36A64F,
          "CANCELLING": 0x808080, "CANCELLED": 0x808080}
"""A status's colour bar; every FAILED* is red, anything else blue."""
HEADER_CHARS = 150
"""Slack's limit for a header block's text (Discord's embed title allows 256)."""
FIELD_CHARS = 1000
"""Below Slack's 2,000 for a section field and Discord's 1,024 for an embed field's value."""

_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}|\$("
                          + "|".join(sorted(PLACEHOLDERS, key=len, reverse=True)) + ")")


def emoji(status: str) -> str:
    return "❌" if status.startswith("FAILED") else EMOJI.get(status, "ℹ️")


def color(status: str) -> int:
    return 0xFF0000 if status.startswith("FAILED") else COLORS.get(status, 0x0099CC)


def link_for(event: JobEvent, template: str | None, default_base: str | None) -> str | None:
    """The message's link: `notify.link` with {JOB_ID}/{WORKFLOW_ID} filled, else the job's
    workflow in the Temporal UI at `default_base` (e.g. http://127.0.0.1:8233/namespaces/default)."""
    workflow_id = job_workflow_id(event.job_id)
    if template:
        return template.replace("{JOB_ID}", str(event.job_id)).replace("{WORKFLOW_ID}", workflow_id)
    return f"{default_base}/workflows/{workflow_id}" if default_base else None


def _cost(event: JobEvent) -> str:
    return "" if event.cost_usd is None else f"${event.cost_usd:.2f}"


def values(event: JobEvent, link: str | None) -> dict[str, str]:
    """Each placeholder's value for `event`, one line each and bounded (unescaped)."""
    return {
        "JOB_STATUS": event.status.value,
        "JOB_ID": str(event.job_id),
        "TASK_ID": str(event.task if event.task is not None else 0),  # SkyPilot: the task's index
        "TASK_NAME": one_line(event.task_name or event.name, 100),
        "CLUSTER_NAME": event.cluster_name or "",
        "EMOJI": emoji(event.status.value),
        "JOB_NAME": one_line(event.name, 100),
        "PREVIOUS_STATUS": event.previous.value if event.previous else "",
        "REASON": one_line(event.reason or "", MAX_REASON_CHARS),
        "COST": _cost(event),
        "RECOVERIES": str(event.recoveries),
        "CLOUD": event.cloud or "",
        "REGION": event.region or "",
        "LINK": link or "",
    }


def discord_escape(text: str) -> str:
    """An @ that cannot mention anyone (a zero-width space after it)."""
    return text.replace("@", "@\u200b")


def _escape(kind: str, text: str) -> str:
    return slack_escape(text) if kind == "slack" else discord_escape(text)


def render(template: str, event: JobEvent, link: str | None, kind: str) -> str:
    """SkyPilot's substitution ({NAME} and $NAME) with each value escaped for `kind`, cut to the
    platform's limit."""
    table = values(event, link)
    text = _PLACEHOLDER.sub(lambda m: _escape(kind, table[m.group(1) or m.group(2)]), template)
    return _cut(text, SLACK_TEXT_LIMIT if kind == "slack" else DISCORD_CONTENT_LIMIT)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline(event: JobEvent) -> str:
    """`✅ spotctl job 12 'bert-qa' is SUCCEEDED`, unescaped."""
    v = values(event, None)
    task = f" task {event.task} '{v['TASK_NAME']}'" if event.task is not None else ""
    return f"{v['EMOJI']} spotctl job {event.job_id} '{v['JOB_NAME']}'{task} is {event.status.value}"


def summary(event: JobEvent, link: str | None) -> str:
    """The default message as one line: headline, reason, place, cost (unescaped)."""
    v = values(event, link)
    text = headline(event)
    if event.status.value == "RECOVERING":
        text += f" (recovery {event.recoveries})"
    if v["REASON"]:
        text += f": {v['REASON']}"
    if event.cloud:
        text += f" in {event.cloud}" + (f"/{event.region}" if event.region else "")
    if v["COST"]:
        text += f" · cost {'' if event.status.is_terminal else 'so far '}{v['COST']}"
    return text


def _fields(event: JobEvent) -> list[tuple[str, str]]:
    v = values(event, None)
    fields = [("Status", event.status.value), ("Job ID", v["JOB_ID"]), ("Name", v["JOB_NAME"])]
    if event.task is not None:
        fields.append(("Task", f"{event.task} {v['TASK_NAME']}"))
    if event.cluster_name:
        fields.append(("Cluster", event.cluster_name))
    if event.cloud:
        fields.append(("Where", f"{event.cloud}" + (f"/{event.region}" if event.region else "")))
    if event.recoveries:
        fields.append(("Recoveries", v["RECOVERIES"]))
    if v["COST"]:
        fields.append(("Cost", v["COST"] if event.status.is_terminal else f"{v['COST']} so far"))
    if v["REASON"]:
        fields.append(("Reason", v["REASON"]))
    return [(name, _cut(value, FIELD_CHARS)) for name, value in fields]


def _slack_link(link: str) -> str:
    """`<url|label>`; a URL holding | or > (it cannot, as Slack reads it) is shown as text."""
    if "|" in link or ">" in link:
        return slack_escape(link)
    return f"<{link}|Open job>"


def slack_body(target: ChatTarget, event: JobEvent, link: str | None) -> dict[str, Any]:
    """A Slack incoming webhook's JSON: `text` always (notifications and old clients show it)."""
    body: dict[str, Any] = {"username": target.username or DEFAULT_USERNAME}
    if target.channel:
        body["channel"] = target.channel
    if target.message:
        body["text"] = render(target.message, event, link, "slack")
        return body
    body["text"] = _cut(slack_escape(summary(event, link)), SLACK_TEXT_LIMIT)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(headline(event), HEADER_CHARS)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}:* {slack_escape(value)}"}
                                       for name, value in _fields(event)]},
    ]
    if link:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_link(link)}]})
    body["attachments"] = [{"color": f"#{color(event.status.value):06x}", "blocks": blocks}]
    return body


def discord_body(target: ChatTarget, event: JobEvent, link: str | None) -> dict[str, Any]:
    """A Discord webhook's JSON. The default message mentions no one (allowed_mentions)."""
    body: dict[str, Any] = {"username": target.username or DEFAULT_USERNAME}
    if target.message:
        body["content"] = render(target.message, event, link, "discord")
        return body
    embed: dict[str, Any] = {
        "title": _cut(headline(event), 256),
        "color": color(event.status.value),
        "fields": [{"name": name, "value": value or "-", "inline": name != "Reason"} for name, value in _fields(event)],
        "timestamp": event.at.isoformat(),
    }
    if link and link.startswith(("http://", "https://")):
        embed["url"] = link
    body["content"] = _cut(summary(event, None), DISCORD_CONTENT_LIMIT)
    body["embeds"] = [embed]
    body["allowed_mentions"] = {"parse": []}
    return body


def chat_body(target: ChatTarget, event: JobEvent, link: str | None) -> dict[str, Any]:
    return slack_body(target, event, link) if target.kind == "slack" else discord_body(target, event, link)
