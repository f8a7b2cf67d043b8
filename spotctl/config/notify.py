"""`notify:` of config.yaml (and SPOTCTL_NOTIFY_URL): where and when status events are sent.

Every problem is one line naming the key, never the URL: a webhook URL is a secret (Slack's
carry a token in the path). config/settings.py turns BadNotifySettings into its ConfigError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from spotctl.models import JobStatus, NotifySettings


class BadNotifySettings(ValueError):
    """`notify:` cannot be used as written; the message says which key and why."""


NOTIFY_KEYS = ("url", "on", "timeout_s", "give_up_after_s", "callback_timeout_s", "link")
MAX_NOTIFY_URL_CHARS = 2048
MAX_NOTIFY_ON = 20
NOTIFY_TIMEOUT_BOUNDS_S = {"timeout_s": 10.0, "give_up_after_s": 30 * 86400.0, "callback_timeout_s": 3600.0}
"""The upper bound of each `notify:` time-out: a POST must end within the activities' heartbeat
time-out; an undelivered event is kept (in a job's or its events' workflow) at most
give_up_after_s after it happened."""


def notify_settings(raw: object, env_url: str | None, config_file: Path) -> NotifySettings | None:
    """`notify:` of config.yaml with SPOTCTL_NOTIFY_URL over its url; None when neither is set.
    Every problem is one BadNotifySettings line naming the key (never the URL: it is a secret)."""
    if raw is None and not env_url:
        return None
    where = f"{config_file}: notify"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadNotifySettings(f"{where}: expected a mapping (url, on, timeout_s, ...), got {type(raw).__name__}")
    if True in raw:  # YAML 1.1 (PyYAML) reads the key `on:` as the boolean true
        raw = {("on" if k is True else k): v for k, v in raw.items()}
    unknown = sorted(str(k) for k in raw if k not in NOTIFY_KEYS)
    if unknown:
        raise BadNotifySettings(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(NOTIFY_KEYS)})")
    values: dict[str, Any] = {}
    if raw.get("url") is not None:
        values["url"] = check_notify_url(raw["url"], f"{where}.url")
    if env_url:
        values["url"] = check_notify_url(env_url, "SPOTCTL_NOTIFY_URL")
    if raw.get("on") is not None:
        values["on"] = _notify_statuses(raw["on"], f"{where}.on")
    if raw.get("link") is not None:
        values["link"] = _notify_link(raw["link"], f"{where}.link")
    for key, bound in NOTIFY_TIMEOUT_BOUNDS_S.items():
        if raw.get(key) is not None:
            values[key] = _notify_seconds(raw[key], bound, f"{where}.{key}")
    return NotifySettings(**values)


def check_notify_url(url: object, where: str) -> str:
    """An http(s) URL with a host (a `user:password@` is sent as HTTP Basic auth, as curl does).
    The message describes the URL, never quotes it."""
    if not isinstance(url, str) or not url.strip():
        raise BadNotifySettings(f"{where}: expected an http(s) URL, got {type(url).__name__ if url else 'nothing'}")
    url = url.strip()
    if len(url) > MAX_NOTIFY_URL_CHARS:
        raise BadNotifySettings(f"{where}: {len(url)} characters is more than the limit of {MAX_NOTIFY_URL_CHARS}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise BadNotifySettings(f"{where}: a URL cannot contain spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a bad port raises here
    except ValueError as exc:
        raise BadNotifySettings(f"{where}: not a valid URL ({'bad port' if 'port' in str(exc) else 'malformed'})") from None
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"'{parts.scheme}:'" if parts.scheme and len(parts.scheme) < 20 else "none"
        raise BadNotifySettings(f"{where}: must be an http:// or https:// URL (scheme: {shown})")
    if not parts.hostname:
        raise BadNotifySettings(f"{where}: the URL has no host")
    return url


def _notify_link(value: object, where: str) -> str:
    """The link of Slack and Discord messages: an http(s) URL where {JOB_ID} and {WORKFLOW_ID}
    are filled in per job (e.g. a dashboard's job page)."""
    if not isinstance(value, str):
        raise BadNotifySettings(f"{where}: expected an http(s) URL, got {type(value).__name__}")
    check_notify_url(value.replace("{JOB_ID}", "1").replace("{WORKFLOW_ID}", "w"), where)
    return value.strip()


def _notify_statuses(value: object, where: str) -> list[JobStatus]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list):
        raise BadNotifySettings(f"{where}: expected a list of job statuses, got {type(value).__name__}")
    if len(names) > MAX_NOTIFY_ON:
        raise BadNotifySettings(f"{where}: {len(names)} statuses is more than the limit of {MAX_NOTIFY_ON}")
    statuses: list[JobStatus] = []
    for name in names:
        upper = name.strip().upper() if isinstance(name, str) else None
        if upper is None or upper not in JobStatus.__members__:
            known = ", ".join(JobStatus.__members__)
            raise BadNotifySettings(f"{where}: unknown job status {str(name)[:40]!r} (known: {known})")
        if JobStatus[upper] not in statuses:
            statuses.append(JobStatus[upper])
    return statuses


def _notify_seconds(value: object, bound: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise BadNotifySettings(f"{where}: expected a number of seconds, got {str(value)[:40]!r}")
    if not 0 < value <= bound:
        raise BadNotifySettings(f"{where}: must be more than 0 and at most {bound:g} seconds, got {value:g}")
    return float(value)
