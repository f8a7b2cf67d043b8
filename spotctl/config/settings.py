"""Settings: where state lives, which Temporal to talk to, which clouds are enabled.

Precedence, highest first: environment variables, then `$SPOTCTL_HOME/config.yaml`, then
defaults. With no Temporal address configured anywhere, spotctl uses the embedded server
(embedded/server.py) whose ports are given here too.

Every setting, with its variable, config.yaml key, type, bounds and default, is one row of
config/table.py (docs/configuration.md's table is made from it); `load_settings` reads them all
through that table, so a bad value anywhere is one ConfigError line naming the variable or key.

Status notifications (`notify:` in config.yaml; see notify/payloads.py for what is sent):
  notify:
    url: https://hooks.slack.com/services/...   # a JSON POST per event, Slack-compatible `text`
    on: [RECOVERING, SUCCEEDED, FAILED]         # statuses the webhook hears (default: recoveries
                                                # and every end); the task's event_callback hears all
    timeout_s: 10              # one POST (at most 10)
    give_up_after_s: 86400     # an event not taken this long after it happened is lost (at most 30 days)
    callback_timeout_s: 60     # an event_callback is killed after this (at most 3600)
    link: https://dash.example/jobs/{JOB_ID}   # the link in Slack and Discord messages (default:
                                                # the job in the worker's Temporal UI)
  The URL must be http(s) with a host (at most 2048 characters); it is a secret (Slack's are),
  so errors show only its scheme and host. The settings travel in each launched job's spec, so
  the worker that runs the job delivers where the launching user asked.

AWS credentials and the default region come from boto3's usual chain (AWS_ACCESS_KEY_ID /
AWS_PROFILE / ~/.aws/credentials / an instance role); GCP's from Application Default
Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, a GCE
service account). spotctl never stores them.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from spotctl.config.notify import BadNotifySettings, notify_settings
from spotctl.config.table import ConfigError, default, env_value, read_settings
from spotctl.models import NotifySettings


class TLSConfig(BaseModel):
    """TLS for a remote Temporal cluster (Temporal Cloud, or a cluster with mTLS)."""

    server_root_ca_cert: str | None = None
    client_cert: str | None = None
    client_private_key: str | None = None
    domain: str | None = None


class TemporalConfig(BaseModel):
    address: str | None = None
    """host:port of an existing Temporal; None means the embedded dev server."""
    namespace: str = default("temporal.namespace")
    tls: bool | TLSConfig = default("temporal.tls")
    api_key: str | None = None


class EmbeddedConfig(BaseModel):
    port: int = default("embedded.port")
    ui_port: int = default("embedded.ui_port")
    codec_port: int = default("embedded.codec_port")
    """The payload codec endpoint the embedded web UI decodes with (served by the worker, on
    127.0.0.1 only), so the UI shows readable payloads on this machine and nowhere else."""


class AwsConfig(BaseModel):
    """How spotctl reaches AWS. Credentials are boto3's business (its default chain)."""

    endpoint_url: str | None = None
    """One endpoint for every AWS service (the lab points it at moto); None = AWS itself."""
    pricing_endpoint_url: str | None = None
    """The Price List query API's endpoint for `spotctl catalog refresh` (the lab's fake: moto
    has no Price List); None = `endpoint_url`, else AWS's (us-east-1)."""
    regions: list[str] | None = None
    """Regions jobs may be placed in; None = every region of the shipped catalog."""
    ssh_user: str = default("aws.ssh_user")
    """The login user of the VM image (Ubuntu AMIs: ubuntu)."""
    image_id: str | None = None
    """An AMI for every region; None = the newest Ubuntu 22.04 image, looked up per region."""
    mounter: str = default("aws.mounter")
    """How MOUNT of an S3 bucket is made on a VM: "mount-s3" (Mountpoint for Amazon S3,
    installed by the node agent when missing; the agent's sync if that fails) or "sync" (the
    node agent's copy kept in step, as MOUNT_CACHED; no FUSE, works anywhere)."""
    instance_profile: str | None = None
    """An IAM instance profile (name or ARN) every VM is launched with. Set, a VM reaches S3
    buckets with its own role and the worker ships it no credentials at all."""
    node_role_arn: str | None = None
    """The role the worker assumes to issue a VM its scoped, short-lived S3 credentials;
    None = GetFederationToken with the worker's own keys (an IAM user's). See
    clouds/aws_node_creds.py."""
    node_credentials_ttl_s: int = default("aws.node_credentials_ttl_s")
    """How long a VM's scoped S3 credentials live; the worker renews them at half-life while
    a phase runs (STS: 15 minutes to 12 hours, one hour for a role chained from temporary
    credentials)."""


class GcpConfig(BaseModel):
    """How spotctl reaches GCP. Credentials are Application Default Credentials' business."""

    project: str | None = None
    """The project VMs and buckets are made in; None = the one ADC names (or GOOGLE_CLOUD_PROJECT)."""
    compute_endpoint: str | None = None
    """The Compute Engine API endpoint (the lab's fake GCE); None = Google's. With an endpoint
    set, calls carry no credentials (emulators want none)."""
    storage_endpoint: str | None = None
    """The Cloud Storage endpoint (the lab's fake-gcs-server); None = Google's (or
    STORAGE_EMULATOR_HOST). With an endpoint set, calls carry no credentials."""
    billing_endpoint: str | None = None
    """The Cloud Billing Catalog API endpoint for `spotctl catalog refresh` (the lab's fake);
    None = Google's. With an endpoint set, calls carry no credentials."""
    regions: list[str] | None = None
    """Regions jobs may be placed in; None = every region of the shipped catalog."""
    ssh_user: str = default("gcp.ssh_user")
    """The login user GCE's guest agent makes from the `ssh-keys` metadata spotctl sets."""
    termination_action: str = default("gcp.termination_action")
    """What GCE does to a preempted spot VM: DELETE (nothing is left to pay for) or STOP
    (its disk stays until spotctl's teardown deletes it)."""
    mounter: str = default("gcp.mounter")
    """How MOUNT of a GCS bucket is made on a VM: "gcsfuse" (installed by the node agent when
    missing; the agent's sync if that fails) or "sync" (the agent's copy kept in step)."""
    service_account: str | None = None
    """The email of a service account every VM runs as (scope cloud-platform; grant it only
    what jobs need). Set, a VM reaches GCS buckets with its own identity and the worker ships
    it no token; None = the VMs run with no service account at all, so the metadata server
    gives a job's program nothing, and the agent's sync uses the worker's downscoped token."""


class WorkerConfig(BaseModel):
    """How much one `spotctl worker` process takes on (every worker of a deployment reads
    its own settings). The defaults suit a 2-core machine running 1,000 jobs (BENCHMARKS.md)."""

    max_concurrent_launches: int = default("worker.max_concurrent_launches")
    """Clusters this worker creates at once; more launches wait in the launch queue, shown as
    PENDING ("waiting for a launch slot"). Protects the cloud APIs from a burst of launches."""
    max_concurrent_monitors: int = default("worker.max_concurrent_monitors")
    """Running jobs this worker watches at once (a monitor is a cheap poll loop)."""
    max_concurrent_activities: int = default("worker.max_concurrent_activities")
    """Other activities at once: setup, start, teardown, pricing, waiting for VMs to boot."""
    max_concurrent_notifications: int = default("worker.max_concurrent_notifications")
    """Status events this worker delivers at once (webhook POSTs, event_callbacks), on a task
    queue of their own: more wait in Temporal, and slow receivers never take job work's slots."""
    activity_threads: int = default("worker.activity_threads")
    """Threads for the activities' blocking calls (cloud SDKs, SSH, the log store): a pool of
    its own, sized here, instead of asyncio's default of a few."""
    max_cached_workflows: int = default("worker.max_cached_workflows")
    """Workflows kept in memory between their tasks; a job not in the cache is replayed from
    its history on its next event, so this should exceed the jobs that run at once."""
    node_polls_per_s: float = default("worker.node_polls_per_s")
    """The most node polls (new log bytes, exit codes) this worker makes a second, all jobs
    together: up to 400 running jobs are polled every 0.5-2 s, 1,000 every 5 s. Logs then
    arrive that much later; a preemption is still seen within the cloud's liveness interval."""
    drain_timeout_s: float = default("worker.drain_timeout_s")
    """On SIGTERM the worker stops taking work and hands its running monitors to the other
    workers at once (they re-attach; no program restarts); other running activities (setup,
    teardown, a launch) get this long to finish before they are cancelled and retried
    elsewhere. A container's stop grace period must be longer (deploy/)."""
    connect_timeout_s: float = default("worker.connect_timeout_s")
    """How long a starting worker retries reaching Temporal; then it exits with code 3 and
    one line, for its supervisor to start it again (a server started with it may be slower)."""
    metrics_port: int = default("worker.metrics_port")
    """Serve Prometheus metrics (the Temporal SDK's worker metrics: task slots, poll and
    schedule-to-start latencies, sticky cache; plus spotctl_preemptions) on this port at
    /metrics; 0 = off."""
    metrics_host: str = default("worker.metrics_host")
    """The address the metrics endpoint binds (0.0.0.0 in a container)."""
    sweep_interval_s: float = default("worker.sweep_interval_s")
    """How often the worker's sweeper looks for leftovers of jobs that are over (worker/sweeper.py);
    0 = never. Set by SPOTCTL_SWEEP_INTERVAL_S only."""

    @property
    def metrics_address(self) -> str | None:
        """host:port of the metrics endpoint, or None when it is off."""
        if not self.metrics_port:
            return None
        host = f"[{self.metrics_host}]" if ":" in self.metrics_host else self.metrics_host
        return f"{host}:{self.metrics_port}"


class FleetConfig(BaseModel):
    """The fleet's memory (spotctl/fleet/) and whether jobs launched now rank by it."""

    path: Path | None = None
    """The SQLite file; None = `fleet.db` in the state dir (Settings.fleet_db)."""
    ranking: str = default("fleet.ranking")
    """`price` or `expected-cost`: put in each job's spec at launch (JobSpec.ranking)."""


class Settings(BaseModel):
    """Every setting, typed. `load_settings` builds it through config/table.py, where each
    field's variable, key, bounds and default live (the models take their defaults from there)."""

    home: Path
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    embedded: EmbeddedConfig = Field(default_factory=EmbeddedConfig)
    clouds: list[str] = Field(default_factory=lambda: list(default("clouds")))
    """Clouds placement may use; one without credentials is left out with a note."""
    aws: AwsConfig = Field(default_factory=AwsConfig)
    gcp: GcpConfig = Field(default_factory=GcpConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    notify: NotifySettings | None = None
    """Status notifications (`notify:`): None = no webhook and the defaults for event_callback."""
    log_store: str | None = None
    """Where job logs go: a bucket URL (`s3://bucket/prefix`, `gs://bucket/prefix`, `local://bucket/prefix`); None =
    the directory `logs_dir` (then the CLI and the workers must share `home`)."""

    @property
    def uses_embedded_server(self) -> bool:
        return self.temporal.address is None

    @property
    def temporal_address(self) -> str:
        return self.temporal.address or f"127.0.0.1:{self.embedded.port}"

    @property
    def ui_url(self) -> str:
        if self.uses_embedded_server:
            return f"http://127.0.0.1:{self.embedded.ui_port}"
        host = self.temporal.address.rsplit(":", 1)[0] if self.temporal.address else "127.0.0.1"
        return f"http://{host}:8233"

    @property
    def logs_dir(self) -> Path:
        """The log store root: one object per job attempt and node, shared by CLI and worker."""
        return self.home / "logs"

    @property
    def server_dir(self) -> Path:
        return self.home / "server"

    @property
    def fleet_db(self) -> Path:
        """The fleet's memory: `fleet.path`, else fleet.db in the state dir."""
        return self.fleet.path or self.home / "fleet.db"

    @property
    def local_cloud_dir(self) -> Path:
        return self.home / "local_cloud"

    @property
    def ssh_dir(self) -> Path:
        """spotctl's SSH key pair (private key 0600) and the pinned host keys of its VMs."""
        return self.home / "ssh"


def default_home() -> Path:
    """$SPOTCTL_HOME, else ~/.spotctl; ConfigError (one line) for a bad value."""
    home: Path | None = env_value("SPOTCTL_HOME")
    return home if home is not None else (Path.home() / ".spotctl")


HOME_MODE = 0o700
"""$SPOTCTL_HOME holds the Temporal database, logs, the codec key and job state: its owner only."""


def secure_home(home: Path) -> Path:
    """Create `home` as 0700 (parents too), or tighten an existing one we own to 0700.

    Everything below it is then out of reach of other users whatever its own mode (files
    made before the umask was set, or by a program that ignores it)."""
    home.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
    try:
        if home.stat().st_mode & 0o077:
            home.chmod(HOME_MODE)
    except PermissionError:
        pass  # a home we do not own (e.g. a shared dir): leave its mode to its owner
    return home


def load_settings(home: Path | None = None) -> Settings:
    """Read settings from the config file and environment. Never creates files."""
    home = (home or default_home()).resolve()
    data: dict = {}
    config_file = home / "config.yaml"
    if config_file.exists():
        try:
            data = yaml.safe_load(config_file.read_text()) or {}
        except yaml.YAMLError as exc:  # one line: the problem and where, not PyYAML's drawing
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise ConfigError(f"{config_file}: not valid YAML: {getattr(exc, 'problem', None) or exc}{at}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{config_file}: expected a mapping at the top level")
    values = read_settings(data, os.environ, config_file)
    try:  # the table checked every value; the models' own checks are the second line
        settings = Settings(home=home, **values)
    except ValidationError as exc:  # one line per problem, never a traceback
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}={_shown(e.get('input'))}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise ConfigError(f"{config_file}: {problems}") from None
    try:
        settings.notify = notify_settings(data.get("notify"), os.environ.get("SPOTCTL_NOTIFY_URL"), config_file)
    except BadNotifySettings as exc:
        raise ConfigError(str(exc)) from None
    return settings


def _shown(value: object) -> str:
    """A value as an error repeats it: its repr, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


