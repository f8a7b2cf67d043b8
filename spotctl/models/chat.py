"""Slack and Discord as notification targets: SkyPilot's `event_callback:` list form, its checks
and its message template. Shared by the CLI (task parsing refuses a bad target at launch) and
the worker (notify/chat.py renders, activities/chat.py posts). Pure: no I/O.

SkyPilot's names and shape (sky/utils/schemas.py, sky/jobs/notifications.py) are kept, so a
SkyPilot task file works unchanged:

    event_callback:
      - slack:
          webhook_url: ${SLACK_WEBHOOK_URL}   # required
          channel: "#ml-jobs"                 # Slack only
          username: SkyPilot Bot
          notify_on: [FAILED, SUCCEEDED]      # the status filter
          message: "{EMOJI} Job {TASK_NAME} is {JOB_STATUS}"
      - discord:
          webhook_url: ${DISCORD_WEBHOOK_URL}

A template's placeholders are SkyPilot's ({JOB_STATUS} {JOB_ID} {TASK_ID} {TASK_NAME}
{CLUSTER_NAME} {EMOJI}, each also as $NAME) and spotctl's (TEMPLATE_EXTRAS). A webhook URL is
a secret (its path is the credential), so no message here ever quotes one.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal
from urllib.parse import urlsplit

from spotctl.models.status import JobStatus

ChatKind = Literal["slack", "discord"]
CHAT_KINDS: tuple[ChatKind, ...] = ("slack", "discord")
CHAT_KEYS: dict[str, tuple[str, ...]] = {
    "slack": ("webhook_url", "channel", "username", "message", "notify_on"),
    "discord": ("webhook_url", "username", "message", "notify_on"),
}
"""The keys of each target, as SkyPilot's schema has them (Discord has no channel)."""

MAX_CHAT_TARGETS = 10
"""Targets in one task: each event is posted to each of them, one after the other."""
MAX_CHAT_NOTIFY_ON = 20
"""Statuses in one `notify_on` (there are a dozen)."""
MAX_CHAT_URL_CHARS = 2048
MAX_TEMPLATE_CHARS = 2000
"""A template is at most Discord's message length (Slack's is longer)."""
MAX_USERNAME_CHARS = 80
"""Discord's limit for a webhook's username (Slack's is not stated; the same is used)."""
MAX_CHANNEL_CHARS = 80
"""Slack channel names are at most 80 characters."""
SLACK_TEXT_LIMIT = 4000
"""Slack's advice for a message's text (it cuts at 40,000); longer is cut with …."""
DISCORD_CONTENT_LIMIT = 2000
"""Discord refuses a message whose content is longer (400)."""

SKYPILOT_PLACEHOLDERS = ("JOB_STATUS", "JOB_ID", "TASK_ID", "TASK_NAME", "CLUSTER_NAME", "EMOJI")
TEMPLATE_EXTRAS = ("JOB_NAME", "PREVIOUS_STATUS", "REASON", "COST", "RECOVERIES", "CLOUD", "REGION", "LINK")
"""spotctl's own placeholders (SkyPilot has no name for these)."""
PLACEHOLDERS = SKYPILOT_PLACEHOLDERS + TEMPLATE_EXTRAS

DEFAULT_CHAT_ON = ("STARTING", "RUNNING", "RECOVERING", "SUCCEEDED", "FAILED", "FAILED_SETUP",
                   "FAILED_PRECHECKS", "FAILED_NO_RESOURCE", "FAILED_CONTROLLER", "CANCELLED")
"""Without `notify_on`: the statuses SkyPilot's notifications are sent for (its event callback
skips PENDING and the other pre-launch states; CANCELLING is on the way to CANCELLED)."""
IGNORED_STATUSES = frozenset({"SUBMITTED"})
"""SkyPilot statuses spotctl never reports: accepted in `notify_on`, never sent."""

_BRACED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def check_template(text: str) -> str:
    """A message template that renders: bounded, no control characters but newlines and tabs,
    and no {NAME} that is not a placeholder (a typo would be sent as written to every channel)."""
    if not text.strip():
        raise ValueError("an empty message (leave `message` out for the default one)")
    if len(text) > MAX_TEMPLATE_CHARS:
        raise ValueError(f"{len(text)} characters is more than the limit of {MAX_TEMPLATE_CHARS}")
    if _CONTROL.search(text):
        raise ValueError("a message cannot contain control characters (newlines and tabs are fine)")
    for match in _BRACED.finditer(text):
        name = match.group(1)
        if name not in PLACEHOLDERS:
            close = difflib.get_close_matches(name.upper(), PLACEHOLDERS, n=1)
            hint = f" (did you mean {{{close[0]}}}?)" if close else ""
            raise ValueError(f"unknown placeholder {{{name[:40]}}}{hint}; known: "
                             + " ".join(f"{{{p}}}" for p in PLACEHOLDERS))
    return text


def check_chat_url(url: str, kind: str) -> str:
    """An http(s) URL with a host, bounded; the message describes it, never quotes it. A `$VAR`
    left in it names a variable the task does not set."""
    url = url.strip()
    unset = _VAR.search(url)
    if unset:
        name = (unset.group(1) or unset.group(2))[:60]
        raise ValueError(f"${name} is not set: add it to the task's secrets (or envs) and pass --secret {name}")
    if len(url) > MAX_CHAT_URL_CHARS:
        raise ValueError(f"{len(url)} characters is more than the limit of {MAX_CHAT_URL_CHARS}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError("a URL cannot contain spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"a {kind} webhook_url must be an https:// (or http://) URL")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    return url


def check_username(name: str, kind: str) -> str:
    """Bounded, one line; Discord refuses (400) a webhook username holding "discord" or "clyde"."""
    if not name.strip() or len(name) > MAX_USERNAME_CHARS or _CONTROL.search(name) or "\n" in name:
        raise ValueError(f"a username is one line of 1 to {MAX_USERNAME_CHARS} characters")
    if kind == "discord" and any(word in name.lower() for word in ("discord", "clyde")):
        raise ValueError("Discord refuses a webhook username containing \"discord\" or \"clyde\"")
    return name


def check_channel(name: str) -> str:
    if not name.strip() or len(name) > MAX_CHANNEL_CHARS or _CONTROL.search(name) or "\n" in name:
        raise ValueError(f"a channel is one line of 1 to {MAX_CHANNEL_CHARS} characters")
    return name


def check_statuses(names: list[str]) -> list[JobStatus]:
    """SkyPilot's status names (any case), each once, in the order given; SUBMITTED is taken
    and never sent (spotctl has no such status)."""
    statuses: list[JobStatus] = []
    for name in names:
        upper = name.strip().upper()
        if upper in IGNORED_STATUSES:
            continue
        if upper not in JobStatus.__members__:
            known = ", ".join(JobStatus.__members__)
            raise ValueError(f"unknown job status {name[:40]!r} (known: {known})")
        if JobStatus[upper] not in statuses:
            statuses.append(JobStatus[upper])
    return statuses


def fill_vars(text: str, values: dict[str, str]) -> str:
    """$VAR / ${VAR} from the task's envs and secrets, as SkyPilot fills its YAML; unknown
    variables stay as written (check_chat_url then names them)."""
    return _VAR.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)
