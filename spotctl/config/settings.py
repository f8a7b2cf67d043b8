"""Settings: where state lives, which Temporal to talk to, which clouds are enabled.

Precedence, highest first: environment variables, then `$SPOTCTL_HOME/config.yaml`, then
defaults. With no Temporal address configured anywhere, spotctl uses the embedded server
(embedded/server.py) whose ports are given here too.

Environment variables:
  SPOTCTL_HOME               state dir (default ~/.spotctl)
  SPOTCTL_TEMPORAL_ADDRESS   host:port of an existing Temporal frontend; disables the embedded one
  SPOTCTL_NAMESPACE          Temporal namespace (default "default")
  SPOTCTL_TLS                "1" to connect with TLS (system roots), or paths via config.yaml
  SPOTCTL_PORT / SPOTCTL_UI_PORT   ports of the embedded server (default 7233 / 8233)
  SPOTCTL_CODEC_PORT         the embedded UI's payload codec endpoint (default 8235)
  SPOTCTL_CODEC_KEY          base64 of the 32-byte payload encryption key (see codec/encryption.py)
  SPOTCTL_CODEC_KEY_FILE     or a file holding it; default $SPOTCTL_HOME/codec.key, made on first use
  SPOTCTL_CLOUDS             comma-separated enabled clouds (default "local,aws,gcp")
  SPOTCTL_AWS_ENDPOINT       one endpoint URL for every AWS API (EC2, S3; the lab's moto)
  SPOTCTL_AWS_REGIONS        comma-separated AWS regions to place jobs in (default: the catalog's)
  SPOTCTL_AWS_SSH_USER       login user of the VM image (default "ubuntu")
  SPOTCTL_LOG_STORE          where job logs go: a bucket URL (`s3://my-bucket/spotctl-logs`,
                             `gs://bucket/prefix`, `local://bucket/prefix`), so the CLI and the workers share only the
                             bucket; unset = the directory $SPOTCTL_HOME/logs (see
                             storage/log_store.py)
  SPOTCTL_AWS_MOUNTER        how MOUNT of an S3 bucket is made on a VM: mount-s3 (default) or sync
  SPOTCTL_AWS_INSTANCE_PROFILE  an IAM instance profile for every VM (it reaches buckets with its role)
  SPOTCTL_AWS_NODE_ROLE      the role assumed to issue VMs scoped S3 credentials (default: GetFederationToken)
  SPOTCTL_GCP_PROJECT        the GCP project (default: Application Default Credentials' project)
  SPOTCTL_GCP_ENDPOINT       the Compute Engine API endpoint (the lab's fake GCE); implies no credentials
  SPOTCTL_GCS_ENDPOINT       the Cloud Storage endpoint (the lab's fake-gcs-server); implies no credentials
  SPOTCTL_GCP_REGIONS        comma-separated GCP regions to place jobs in (default: the catalog's)
  SPOTCTL_GCP_SSH_USER       login user made on GCP VMs through the ssh-keys metadata (default "spotctl")
  SPOTCTL_GCP_MOUNTER        how MOUNT of a GCS bucket is made on a VM: gcsfuse (default) or sync
  SPOTCTL_MAX_LAUNCHES, SPOTCTL_MAX_MONITORS, SPOTCTL_MAX_ACTIVITIES, SPOTCTL_ACTIVITY_THREADS,
  SPOTCTL_MAX_CACHED_WORKFLOWS, SPOTCTL_NODE_POLLS_PER_S,
  SPOTCTL_MAX_NOTIFICATIONS  a worker's limits (see WorkerConfig)
  SPOTCTL_DRAIN_TIMEOUT_S    how long a SIGTERMed worker lets its running activities finish
  SPOTCTL_METRICS_PORT, SPOTCTL_METRICS_HOST   the worker's Prometheus endpoint (0 = off)
  SPOTCTL_NOTIFY_URL         the status webhook (overrides notify.url of config.yaml)

Status notifications (`notify:` in config.yaml; see notify/payloads.py for what is sent):
  notify:
    url: https://hooks.slack.com/services/...   # a JSON POST per event, Slack-compatible `text`
    on: [RECOVERING, SUCCEEDED, FAILED]         # statuses the webhook hears (default: recoveries
                                                # and every end); the task's event_callback hears all
    timeout_s: 10              # one POST (at most 10)
    give_up_after_s: 86400     # an event not taken this long after it happened is lost (at most 30 days)
    callback_timeout_s: 60     # an event_callback is killed after this (at most 3600)
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
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from spotctl.config.notify import BadNotifySettings, notify_settings
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
    namespace: str = "default"
    tls: bool | TLSConfig = False
    api_key: str | None = None


class EmbeddedConfig(BaseModel):
    port: int = 7233
    ui_port: int = 8233
    codec_port: int = 8235
    """The payload codec endpoint the embedded web UI decodes with (served by the worker, on
    127.0.0.1 only), so the UI shows readable payloads on this machine and nowhere else."""


class AwsConfig(BaseModel):
    """How spotctl reaches AWS. Credentials are boto3's business (its default chain)."""

    endpoint_url: str | None = None
    """One endpoint for every AWS service (the lab points it at moto); None = AWS itself."""
    regions: list[str] | None = None
    """Regions jobs may be placed in; None = every region of the shipped catalog."""
    ssh_user: str = "ubuntu"
    """The login user of the VM image (Ubuntu AMIs: ubuntu)."""
    image_id: str | None = None
    """An AMI for every region; None = the newest Ubuntu 22.04 image, looked up per region."""
    mounter: str = "mount-s3"
    """How MOUNT of an S3 bucket is made on a VM: "mount-s3" (Mountpoint for Amazon S3,
    installed by the node agent when missing; the agent's sync if that fails) or "sync" (the
    node agent's copy kept in step, as MOUNT_CACHED; no FUSE, works anywhere)."""
    instance_profile: str | None = Field(default=None, min_length=1, max_length=2048)
    """An IAM instance profile (name or ARN) every VM is launched with. Set, a VM reaches S3
    buckets with its own role and the worker ships it no credentials at all."""
    node_role_arn: str | None = Field(default=None, min_length=20, max_length=2048)
    """The role the worker assumes to issue a VM its scoped, short-lived S3 credentials;
    None = GetFederationToken with the worker's own keys (an IAM user's). See
    clouds/aws_node_creds.py."""
    node_credentials_ttl_s: int = Field(default=3600, ge=900, le=43_200)
    """How long a VM's scoped S3 credentials live; the worker renews them at half-life while
    a phase runs (STS: 15 minutes to 12 hours, one hour for a role chained from temporary
    credentials)."""


SERVICE_ACCOUNT = r"^[a-z0-9][a-z0-9._+-]*@[a-z0-9][a-z0-9.-]*\.[a-z]{2,}$"
"""A service account's email (name@project.iam.gserviceaccount.com), as GCE takes it."""


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
    regions: list[str] | None = None
    """Regions jobs may be placed in; None = every region of the shipped catalog."""
    ssh_user: str = "spotctl"
    """The login user GCE's guest agent makes from the `ssh-keys` metadata spotctl sets."""
    termination_action: str = "DELETE"
    """What GCE does to a preempted spot VM: DELETE (nothing is left to pay for) or STOP
    (its disk stays until spotctl's teardown deletes it)."""
    mounter: str = "gcsfuse"
    """How MOUNT of a GCS bucket is made on a VM: "gcsfuse" (installed by the node agent when
    missing; the agent's sync if that fails) or "sync" (the agent's copy kept in step)."""
    service_account: str | None = Field(default=None, max_length=254)
    """The email of a service account every VM runs as (scope cloud-platform; grant it only
    what jobs need). Set, a VM reaches GCS buckets with its own identity and the worker ships
    it no token; None = the VMs run with no service account at all, so the metadata server
    gives a job's program nothing, and the agent's sync uses the worker's downscoped token."""

    @field_validator("service_account")
    @classmethod
    def _an_email(cls, value: str | None) -> str | None:
        if value is not None and not re.match(SERVICE_ACCOUNT, value):
            raise ValueError("not a service account's email (name@project.iam.gserviceaccount.com)")
        return value


class WorkerConfig(BaseModel):
    """How much one `spotctl worker` process takes on (every worker of a deployment reads
    its own settings). The defaults suit a 2-core machine running 1,000 jobs (BENCHMARKS.md)."""

    max_concurrent_launches: int = Field(default=16, ge=1, le=10_000)
    """Clusters this worker creates at once; more launches wait in the launch queue, shown as
    PENDING ("waiting for a launch slot"). Protects the cloud APIs from a burst of launches."""
    max_concurrent_monitors: int = Field(default=20_000, ge=1, le=1_000_000)
    """Running jobs this worker watches at once (a monitor is a cheap poll loop)."""
    max_concurrent_activities: int = Field(default=500, ge=1, le=100_000)
    """Other activities at once: setup, start, teardown, pricing, waiting for VMs to boot."""
    max_concurrent_notifications: int = Field(default=32, ge=1, le=10_000)
    """Status events this worker delivers at once (webhook POSTs, event_callbacks), on a task
    queue of their own: more wait in Temporal, and slow receivers never take job work's slots."""
    activity_threads: int = Field(default=64, ge=4, le=4_096)
    """Threads for the activities' blocking calls (cloud SDKs, SSH, the log store): a pool of
    its own, sized here, instead of asyncio's default of a few."""
    max_cached_workflows: int = Field(default=4_000, ge=0, le=1_000_000)
    """Workflows kept in memory between their tasks; a job not in the cache is replayed from
    its history on its next event, so this should exceed the jobs that run at once."""
    node_polls_per_s: float = Field(default=200.0, gt=0, le=100_000)
    """The most node polls (new log bytes, exit codes) this worker makes a second, all jobs
    together: up to 400 running jobs are polled every 0.5-2 s, 1,000 every 5 s. Logs then
    arrive that much later; a preemption is still seen within the cloud's liveness interval."""
    drain_timeout_s: float = Field(default=30.0, ge=0, le=3_600)
    """On SIGTERM the worker stops taking work and hands its running monitors to the other
    workers at once (they re-attach; no program restarts); other running activities (setup,
    teardown, a launch) get this long to finish before they are cancelled and retried
    elsewhere. A container's stop grace period must be longer (deploy/)."""
    metrics_port: int = Field(default=0, ge=0, le=65_535)
    """Serve Prometheus metrics (the Temporal SDK's worker metrics: task slots, poll and
    schedule-to-start latencies, sticky cache; plus spotctl_preemptions) on this port at
    /metrics; 0 = off."""
    metrics_host: str = Field(default="127.0.0.1", min_length=1, max_length=253)
    """The address the metrics endpoint binds (0.0.0.0 in a container)."""

    @property
    def metrics_address(self) -> str | None:
        """host:port of the metrics endpoint, or None when it is off."""
        if not self.metrics_port:
            return None
        host = f"[{self.metrics_host}]" if ":" in self.metrics_host else self.metrics_host
        return f"{host}:{self.metrics_port}"


class Settings(BaseModel):
    home: Path
    temporal: TemporalConfig = Field(default_factory=TemporalConfig)
    embedded: EmbeddedConfig = Field(default_factory=EmbeddedConfig)
    clouds: list[str] = Field(default_factory=lambda: ["local", "aws", "gcp"])
    """Clouds placement may use; one without credentials is left out with a note."""
    aws: AwsConfig = Field(default_factory=AwsConfig)
    gcp: GcpConfig = Field(default_factory=GcpConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
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
    def local_cloud_dir(self) -> Path:
        return self.home / "local_cloud"

    @property
    def ssh_dir(self) -> Path:
        """spotctl's SSH key pair (private key 0600) and the pinned host keys of its VMs."""
        return self.home / "ssh"


def default_home() -> Path:
    return Path(os.environ.get("SPOTCTL_HOME") or Path.home() / ".spotctl").expanduser()


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
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_file}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{config_file}: expected a mapping at the top level")
    try:
        settings = Settings(home=home, **{k: v for k, v in data.items() if k not in ("home", "notify")})
    except ValidationError as exc:  # one line per problem, never a traceback
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}={_shown(e.get('input'))}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise ConfigError(f"{config_file}: {problems}") from None
    env = os.environ
    try:
        settings.notify = notify_settings(data.get("notify"), env.get("SPOTCTL_NOTIFY_URL"), config_file)
    except BadNotifySettings as exc:
        raise ConfigError(str(exc)) from None
    if env.get("SPOTCTL_TEMPORAL_ADDRESS"):
        settings.temporal.address = env["SPOTCTL_TEMPORAL_ADDRESS"]
    if env.get("SPOTCTL_NAMESPACE"):
        settings.temporal.namespace = env["SPOTCTL_NAMESPACE"]
    if env.get("SPOTCTL_TLS"):
        settings.temporal.tls = env["SPOTCTL_TLS"].lower() in ("1", "true", "yes")
    if env.get("SPOTCTL_API_KEY"):
        settings.temporal.api_key = env["SPOTCTL_API_KEY"]
    if env.get("SPOTCTL_PORT"):
        settings.embedded.port = int(env["SPOTCTL_PORT"])
    if env.get("SPOTCTL_UI_PORT"):
        settings.embedded.ui_port = int(env["SPOTCTL_UI_PORT"])
    if env.get("SPOTCTL_CODEC_PORT"):
        settings.embedded.codec_port = int(env["SPOTCTL_CODEC_PORT"])
    if env.get("SPOTCTL_CLOUDS"):
        settings.clouds = [c.strip() for c in env["SPOTCTL_CLOUDS"].split(",") if c.strip()]
    if env.get("SPOTCTL_AWS_ENDPOINT"):
        settings.aws.endpoint_url = env["SPOTCTL_AWS_ENDPOINT"]
    if env.get("SPOTCTL_AWS_REGIONS"):
        settings.aws.regions = [r.strip() for r in env["SPOTCTL_AWS_REGIONS"].split(",") if r.strip()]
    if env.get("SPOTCTL_AWS_SSH_USER"):
        settings.aws.ssh_user = env["SPOTCTL_AWS_SSH_USER"]
    if env.get("SPOTCTL_LOG_STORE"):
        settings.log_store = env["SPOTCTL_LOG_STORE"]
    if env.get("SPOTCTL_AWS_MOUNTER"):
        settings.aws.mounter = env["SPOTCTL_AWS_MOUNTER"]
    if env.get("SPOTCTL_AWS_INSTANCE_PROFILE"):
        settings.aws.instance_profile = env["SPOTCTL_AWS_INSTANCE_PROFILE"]
    if env.get("SPOTCTL_AWS_NODE_ROLE"):
        settings.aws.node_role_arn = env["SPOTCTL_AWS_NODE_ROLE"]
    try:  # the variables' values get the file's checks
        settings.aws = AwsConfig.model_validate(settings.aws.model_dump())
    except ValidationError as exc:
        raise ConfigError("; ".join(f"aws.{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from None
    _gcp_from_env(settings, env)
    _worker_from_env(settings, env)
    return settings


WORKER_ENV = {
    "SPOTCTL_MAX_LAUNCHES": "max_concurrent_launches",
    "SPOTCTL_MAX_MONITORS": "max_concurrent_monitors",
    "SPOTCTL_MAX_ACTIVITIES": "max_concurrent_activities",
    "SPOTCTL_ACTIVITY_THREADS": "activity_threads",
    "SPOTCTL_MAX_NOTIFICATIONS": "max_concurrent_notifications",
    "SPOTCTL_MAX_CACHED_WORKFLOWS": "max_cached_workflows",
    "SPOTCTL_NODE_POLLS_PER_S": "node_polls_per_s",
    "SPOTCTL_DRAIN_TIMEOUT_S": "drain_timeout_s",
    "SPOTCTL_METRICS_PORT": "metrics_port",
    "SPOTCTL_METRICS_HOST": "metrics_host",
}
"""Environment variables for `worker:` settings (containers set these)."""


def _worker_from_env(settings: Settings, env: os._Environ[str] | dict[str, str]) -> None:
    values = {field: env[var] for var, field in WORKER_ENV.items() if env.get(var)}
    if not values:
        return
    try:
        settings.worker = WorkerConfig.model_validate({**settings.worker.model_dump(), **values})
    except ValidationError as exc:
        var_of = {field: var for var, field in WORKER_ENV.items()}
        problems = "; ".join(f"{var_of.get(str(e['loc'][0]), e['loc'][0])}={e['input']!r}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(problems) from None


def _gcp_from_env(settings: Settings, env: os._Environ[str] | dict[str, str]) -> None:
    gcp = settings.gcp
    for var, field in (("SPOTCTL_GCP_PROJECT", "project"), ("SPOTCTL_GCP_ENDPOINT", "compute_endpoint"),
                       ("SPOTCTL_GCS_ENDPOINT", "storage_endpoint"), ("SPOTCTL_GCP_SSH_USER", "ssh_user"),
                       ("SPOTCTL_GCP_MOUNTER", "mounter"), ("SPOTCTL_GCP_SERVICE_ACCOUNT", "service_account")):
        if env.get(var):
            setattr(gcp, field, env[var])
    if env.get("SPOTCTL_GCP_REGIONS"):
        gcp.regions = [r.strip() for r in env["SPOTCTL_GCP_REGIONS"].split(",") if r.strip()]
    try:  # the variables' values get the file's checks
        settings.gcp = GcpConfig.model_validate(gcp.model_dump())
    except ValidationError as exc:
        raise ConfigError("; ".join(f"gcp.{e['loc'][0]}={_shown(e.get('input'))}: {e['msg']}"
                                    for e in exc.errors())) from None


def _shown(value: object) -> str:
    """A value as an error repeats it: its repr, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class ConfigError(Exception):
    """The configuration cannot be read; the message says which file and why."""
