"""Every setting of spotctl, once: its variable, its config.yaml key, its type, default and meaning.

Why one table: settings used to be read in three styles (pydantic for config.yaml, hand-written
`env.get` for the variables, and ad hoc reads where a module needed one), so a bad SPOTCTL_PORT
was a bare ValueError traceback and a variable could be read nowhere documented. Now every
reader goes through `read_settings` (config/settings.py builds `Settings` from it) or
`env_value` (a variable that is not part of `Settings`: the codec key, the state dir), and a bad
value, from the environment or config.yaml, is one ConfigError line naming the variable or key,
the value (never a secret's) and the problem; the CLI and the workers exit 2 on it.

docs/configuration.md's table is `markdown_table()` (tests/test_settings_table.py compares
them; `python -m spotctl.config.table` prints it). Variables spotctl *sets* for others (a job's
program, the node agent, the embedded worker) are not settings and are not here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spotctl.config.kinds import (
    Address,
    BadValue,
    BucketUrl,
    Checked,
    Choice,
    FilePath,
    Int,
    Kind,
    Names,
    Number,
    Text,
    Tls,
    Url,
)


class ConfigError(Exception):
    """The configuration cannot be used; the message (one line) says which variable, key or file and why."""


@dataclass(frozen=True)
class Setting:
    """One setting. `field` is where `Settings` keeps it (dotted), None for one read on its own."""

    env: str | None
    key: str | None
    """The config.yaml key (dotted), None when only the variable sets it."""
    kind: Kind
    default: Any
    default_text: str
    """The default as the docs say it ("the catalog's", "`mount-s3`")."""
    doc: str
    field: str | None = None

    @property
    def where(self) -> str | None:
        """The dotted path in `Settings`: `field`, else the config.yaml key."""
        return self.field or self.key


def _port(lo: int = 1) -> Int:
    return Int(f"port, {lo}..65,535", lo=lo, hi=65_535)


NAME = Text("string", max_chars=255)
REGIONS = Names("comma-separated regions")

SETTINGS: tuple[Setting, ...] = (
    Setting("SPOTCTL_HOME", None, FilePath("path"), None, "`~/.spotctl`",
            "the state dir (the CLI and the workers of one machine must share it for the local cloud, local buckets "
            "and, by default, logs)"),
    Setting("SPOTCTL_TEMPORAL_ADDRESS", "temporal.address", Address("`host:port`"), None, "none: the embedded server",
            "an existing Temporal frontend (`host:7233`); the embedded server is then not used"),
    Setting("SPOTCTL_NAMESPACE", "temporal.namespace", NAME, "default", "`default`", "the Temporal namespace"),
    Setting("SPOTCTL_TLS", "temporal.tls",
            Tls("`1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`; in config.yaml also "
                "`{server_root_ca_cert, client_cert, client_private_key, domain}`"), False, "off",
            "TLS to Temporal (system roots with `1`); mTLS with the file's form"),
    Setting("SPOTCTL_API_KEY", "temporal.api_key", Text("string", secret=True), None, "none",
            "an API key (Temporal Cloud)"),
    Setting("SPOTCTL_PORT", "embedded.port", _port(), 7233, "7233", "the embedded server's gRPC port"),
    Setting("SPOTCTL_UI_PORT", "embedded.ui_port", _port(), 8233, "8233", "the embedded web UI's port"),
    Setting("SPOTCTL_CODEC_PORT", "embedded.codec_port", _port(0), 8235, "8235",
            "where the embedded worker serves the web UI's payload codec, on 127.0.0.1 only; 0 = off"),
    Setting("SPOTCTL_DASHBOARD_PORT", None, _port(0), 8237, "8237",
            "the port `spotctl dashboard` serves its page on (127.0.0.1 unless `--host`); 0 = any free port"),
    Setting("SPOTCTL_CODEC_KEY", None, Text("base64 of 32 bytes", max_chars=1024, secret=True), None, "none",
            "the payload encryption key; first of the three (see [Secrets](user-guide.md#secrets))"),
    Setting("SPOTCTL_CODEC_KEY_FILE", None, FilePath("path to a regular file of at most 1 KiB, raw or base64"),
            None, "none", "the key from a file; else `$SPOTCTL_HOME/codec.key`, made with mode 0600 on first use"),
    Setting("SPOTCTL_CLOUDS", "clouds", Names("comma-separated names (a list in config.yaml)", max_items=20),
            ["local", "aws", "gcp"], "`local,aws,gcp`",
            "the clouds placement may use; one without credentials is left out with a note"),
    Setting("SPOTCTL_AWS_REGIONS", "aws.regions", REGIONS, None, "the catalog's", "AWS regions to place jobs in"),
    Setting("SPOTCTL_AWS_ENDPOINT", "aws.endpoint_url", Url("URL"), None, "AWS itself",
            "one endpoint for EC2 and S3 (the lab's moto)"),
    Setting("SPOTCTL_AWS_PRICING_ENDPOINT", "aws.pricing_endpoint_url", Url("URL"), None,
            "`SPOTCTL_AWS_ENDPOINT`, else AWS's", "the Price List API endpoint `catalog refresh` asks (the lab's fake)"),
    Setting("SPOTCTL_AWS_SSH_USER", "aws.ssh_user", NAME, "ubuntu", "`ubuntu`", "the VM image's login user"),
    Setting(None, "aws.image_id", Text("AMI id", max_chars=255), None, "the newest Ubuntu 22.04 AMI, per region",
            "an AMI to use in every region"),
    Setting("SPOTCTL_AWS_MOUNTER", "aws.mounter", Choice("`mount-s3` or `sync`", choices=("mount-s3", "sync")),
            "mount-s3", "`mount-s3`",
            "how MOUNT of an S3 bucket is made on a VM: Mountpoint for Amazon S3 (installed by the node agent when "
            "missing; the agent's sync if that fails) or the agent's sync"),
    Setting("SPOTCTL_AWS_NODE_ROLE", "aws.node_role_arn",
            Text("role ARN (20 to 2048 characters)", min_chars=20, max_chars=2048), None, "none: GetFederationToken",
            "the role assumed to issue each VM scoped, short-lived S3 credentials"),
    Setting("SPOTCTL_AWS_INSTANCE_PROFILE", "aws.instance_profile",
            Text("name or ARN (1 to 2048 characters)", max_chars=2048), None, "none",
            "an instance profile every VM is launched with; then no credentials are shipped"),
    Setting(None, "aws.node_credentials_ttl_s", Int("integer seconds, 900..43200", lo=900, hi=43_200), 3600, "3600",
            "how long a VM's scoped S3 credentials live (renewed at half-life)"),
    Setting("SPOTCTL_GCP_PROJECT", "gcp.project", Text("project id", max_chars=255), None,
            "ADC's (or `GOOGLE_CLOUD_PROJECT`)", "the GCP project VMs and buckets are made in"),
    Setting("SPOTCTL_GCP_REGIONS", "gcp.regions", REGIONS, None, "the catalog's", "GCP regions to place jobs in"),
    Setting("SPOTCTL_GCP_SSH_USER", "gcp.ssh_user", NAME, "spotctl", "`spotctl`",
            "the user made from the `ssh-keys` metadata"),
    Setting(None, "gcp.termination_action", Choice("`DELETE` or `STOP`", choices=("DELETE", "STOP")), "DELETE",
            "`DELETE`", "what GCE does to a preempted spot VM (STOP keeps its disk until spotctl's teardown)"),
    Setting("SPOTCTL_GCP_MOUNTER", "gcp.mounter", Choice("`gcsfuse` or `sync`", choices=("gcsfuse", "sync")),
            "gcsfuse", "`gcsfuse`", "how MOUNT of a GCS bucket is made on a VM"),
    Setting("SPOTCTL_GCP_SERVICE_ACCOUNT", "gcp.service_account",
            Text("a service account's email (at most 254 characters)", max_chars=254,
                 pattern=r"^[a-z0-9][a-z0-9._+-]*@[a-z0-9][a-z0-9.-]*\.[a-z]{2,}$",
                 pattern_means="a service account's email (name@project.iam.gserviceaccount.com)"),
            None, "none",
            "the account the VMs run as (scope `cloud-platform`; grant it only what jobs need); then no token is "
            "shipped. Default: no account, the VMs get only a downscoped token per GCS mount"),
    Setting("SPOTCTL_GCP_ENDPOINT", "gcp.compute_endpoint", Url("URL"), None, "Google's",
            "the Compute Engine endpoint (the lab's fake GCE); no credentials are sent then"),
    Setting("SPOTCTL_GCS_ENDPOINT", "gcp.storage_endpoint", Url("URL"), None, "Google's (or `STORAGE_EMULATOR_HOST`)",
            "the Cloud Storage endpoint (the lab's fake-gcs-server); no credentials are sent then"),
    Setting("SPOTCTL_GCP_BILLING_ENDPOINT", "gcp.billing_endpoint", Url("URL"), None, "Google's",
            "the Cloud Billing Catalog endpoint `catalog refresh` asks (the lab's fake); no credentials are sent then"),
    Setting("SPOTCTL_LOG_STORE", "log_store",
            BucketUrl("bucket URL: `s3://bucket/prefix`, `gs://bucket/prefix`, `local://bucket/prefix`"), None,
            "the directory `$SPOTCTL_HOME/logs`",
            "where job logs go; with a bucket the CLI and the workers share only the bucket (created on first write "
            "if missing)"),
    Setting("SPOTCTL_MAX_LAUNCHES", "worker.max_concurrent_launches", Int("integer, 1..10,000", lo=1, hi=10_000),
            16, "16", "clusters one worker creates at once; more launches wait, shown as PENDING \"waiting for a "
            "launch slot\""),
    Setting("SPOTCTL_MAX_MONITORS", "worker.max_concurrent_monitors",
            Int("integer, 1..1,000,000", lo=1, hi=1_000_000), 20_000, "20,000", "running jobs one worker watches"),
    Setting("SPOTCTL_MAX_ACTIVITIES", "worker.max_concurrent_activities", Int("integer, 1..100,000", lo=1, hi=100_000),
            500, "500", "one worker's other steps at once (setup, start, teardown, pricing, waiting for VMs to boot)"),
    Setting("SPOTCTL_MAX_NOTIFICATIONS", "worker.max_concurrent_notifications",
            Int("integer, 1..10,000", lo=1, hi=10_000), 32, "32",
            "status events one worker delivers at once, webhook POSTs and event_callbacks together; more wait, and "
            "never take the slots or threads of job work"),
    Setting("SPOTCTL_ACTIVITY_THREADS", "worker.activity_threads", Int("integer, 4..4,096", lo=4, hi=4_096), 64, "64",
            "threads for the activities' blocking calls (cloud SDKs, SSH, the log store)"),
    Setting("SPOTCTL_MAX_CACHED_WORKFLOWS", "worker.max_cached_workflows",
            Int("integer, 0..1,000,000", lo=0, hi=1_000_000), 4_000, "4,000",
            "workflows kept in memory; keep it above the jobs running at once"),
    Setting("SPOTCTL_NODE_POLLS_PER_S", "worker.node_polls_per_s",
            Number("number, above 0, at most 100,000", lo=0, hi=100_000, above=True), 200.0, "200",
            "node polls (new log bytes, exit codes) one worker makes a second, all jobs together: with 1,000 running "
            "jobs each is polled every 5 s"),
    Setting("SPOTCTL_DRAIN_TIMEOUT_S", "worker.drain_timeout_s", Number("seconds, 0..3,600", lo=0, hi=3_600), 30.0,
            "30", "on SIGTERM a worker stops polling and hands its monitors to the other workers at once; other "
            "running steps get this long to finish"),
    Setting("SPOTCTL_CONNECT_TIMEOUT_S", "worker.connect_timeout_s", Number("seconds, 1..86,400", lo=1, hi=86_400),
            120.0, "120", "how long a starting worker retries reaching Temporal before it exits with code 3 (its "
            "supervisor, systemd or compose, starts it again)"),
    Setting("SPOTCTL_METRICS_PORT", "worker.metrics_port", _port(0), 0, "0 (off)",
            "the worker serves Prometheus metrics at `/metrics` (the Temporal SDK's: task slots, latencies, sticky "
            "cache; plus `spotctl_preemptions`, `spotctl_monitor_handovers`)"),
    Setting("SPOTCTL_METRICS_HOST", "worker.metrics_host", Text("address", max_chars=253), "127.0.0.1", "`127.0.0.1`",
            "the address the metrics endpoint binds (`0.0.0.0` in a container)"),
    Setting("SPOTCTL_SWEEP_INTERVAL_S", None, Number("seconds, 0..604,800 (a week)", lo=0, hi=604_800), 300.0, "300",
            "how often each worker looks for orphaned instances and ephemeral buckets (of jobs that ended or never "
            "existed, older than 2 minutes); 0 = never", field="worker.sweep_interval_s"),
    Setting("SPOTCTL_FLEET_DB", "fleet.path", FilePath("path"), None, "`$SPOTCTL_HOME/fleet.db`",
            "the fleet's memory (SQLite): what each place did recently (capacity failures, preemptions, spot "
            "lifetimes, prices), written by every worker, read before each placement and by `launch --dry-run`; "
            "workers on several machines share it on a shared volume ([placement.md](placement.md))"),
    Setting("SPOTCTL_PLACEMENT", "fleet.ranking",
            Choice("`price` or `expected-cost`", choices=("price", "expected-cost")), "price", "`price`",
            "how a job launched now ranks its candidates: `price` (cheapest first, as SkyPilot) or `expected-cost` "
            "(the price plus the expected loss from the fleet's recent preemptions, re-read before each "
            "provisioning); fixed in the job at launch ([placement.md](placement.md))"),
    Setting("SPOTCTL_NOTIFY_URL", "notify.url",
            Checked("http(s) URL with a host, at most 2048 characters", secret=True, by="config/notify.py"), None,
            "none", "the status webhook (a secret: never printed; a `user:password@` in it is sent as Basic auth); "
            "see [Notifications](user-guide.md#notifications)"),
    Setting(None, "notify.on", Checked("a list of job statuses (or one), at most 20", by="config/notify.py"), None,
            "recoveries and every end", "the statuses the webhook hears (`event_callback` hears all)"),
    Setting(None, "notify.timeout_s", Checked("seconds, above 0, at most 10", by="config/notify.py"), 10.0, "10",
            "one POST, all of it: connect, send, the answer"),
    Setting(None, "notify.give_up_after_s", Checked("seconds, above 0, at most 30 days", by="config/notify.py"),
            86_400.0, "86400", "an event the webhook has not taken this long after it happened is lost"),
    Setting(None, "notify.callback_timeout_s", Checked("seconds, above 0, at most 3600", by="config/notify.py"), 60.0,
            "60", "how long an `event_callback` may run"),
    Setting(None, "notify.link", Checked("http(s) URL, at most 2048 characters; `{JOB_ID}` and `{WORKFLOW_ID}` are "
                                         "filled in", by="config/notify.py"), None, "the job in the Temporal UI",
            "the link in Slack and Discord messages (e.g. a dashboard's job page); see "
            "[Slack and Discord](user-guide.md#slack-and-discord)"),
)
"""In the order docs/configuration.md lists them."""

BY_ENV = {s.env: s for s in SETTINGS if s.env}
BY_WHERE = {s.where: s for s in SETTINGS if s.where}


def default(where: str) -> Any:
    """The default of the setting kept at `where` in `Settings` (the models take theirs from here)."""
    return BY_WHERE[where].default


def _shown(setting: Setting, raw: object) -> str:
    """The bad value as an error repeats it: its repr, at most 60 characters; never a secret."""
    if setting.kind.secret:
        return ""
    text = repr(raw)
    return "=" + (text if len(text) <= 60 else text[:57] + "...")


def parse(setting: Setting, raw: object, *, from_file: bool = False) -> Any:
    """`raw` through the setting's type; ConfigError (one line) if it is refused, naming the
    variable (`SPOTCTL_PORT='x': expected ...`) or, from config.yaml, the key
    (`embedded.port='x': expected ...`; read_settings puts the file in front)."""
    try:
        return setting.kind.parse(raw)
    except BadValue as exc:
        name = setting.key if from_file else setting.env
        raise ConfigError(f"{name}{_shown(setting, raw)}: {exc}") from None


def env_value(name: str, env: Mapping[str, str] | None = None) -> Any:
    """The parsed value of variable `name`, None when unset or empty (a variable set to "" counts
    as unset). ConfigError, one line naming it, for a bad value."""
    raw = (os.environ if env is None else env).get(name, "")
    if not raw.strip():
        return None
    return parse(BY_ENV[name], raw)


_MISSING = object()


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def read_settings(data: Mapping[str, Any], env: Mapping[str, str], config_file: Path) -> dict[str, Any]:
    """The values `data` (config.yaml) and `env` set, variables over keys, as a nested dict of
    `Settings` fields (a key set to null counts as unset). The variables outside `Settings`
    (SPOTCTL_HOME, the codec key's) are checked too, so every command refuses a bad one at
    once. Every problem is collected; raises ConfigError with the first five on one line.
    `notify.*` is left to config/notify.py."""
    values: dict[str, Any] = {}
    in_env: list[str] = []
    in_file = [f"{section}: expected a mapping, got {type(data[section]).__name__}"
               for section in ("temporal", "embedded", "aws", "gcp", "worker", "fleet")
               if data.get(section) is not None and not isinstance(data[section], Mapping)]
    for setting in SETTINGS:
        if isinstance(setting.kind, Checked):
            continue
        value = _MISSING
        raw = _lookup(data, setting.key) if setting.key else _MISSING
        try:
            if raw is not _MISSING and raw is not None:
                value = parse(setting, raw, from_file=True)
        except ConfigError as exc:
            in_file.append(str(exc))
        try:
            if setting.env and env.get(setting.env, "").strip():
                value = parse(setting, env[setting.env])
        except ConfigError as exc:
            in_env.append(str(exc))
        if value is not _MISSING and setting.where is not None:  # else checked now, read by env_value
            node = values
            *parents, leaf = setting.where.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    problems = in_env[:5] + ([f"{config_file}: " + "; ".join(in_file[:5])] if in_file else [])
    if problems:
        raise ConfigError("; ".join(problems))
    return values


def _cell(text: str) -> str:
    return f" {text.replace('|', chr(92) + '|')} " if text else " "


def markdown_table() -> str:
    """docs/configuration.md's table of settings."""
    lines = ["| variable | config.yaml | type | default | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        cells = (f"`{s.env}`" if s.env else "", f"`{s.key}`" if s.key else "", s.kind.text, s.default_text, s.doc)
        lines.append("|" + "|".join(_cell(c) for c in cells) + "|")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
