"""Every SPOTCTL_* setting is one row of spotctl/config/table.py, and the rest follows from that:

- docs/configuration.md's table is the code's table (a setting cannot be added undocumented),
  every field of `Settings` has a row and takes its default from it, and no module outside
  spotctl/config/ reads a setting's variable by itself;
- a bad value of each type, in a variable or in config.yaml, is one line naming the variable or
  key and exit 2 from the real commands (`spotctl status`, `spotctl launch --dry-run`,
  `python -m spotctl.worker`, `spotctl worker`), never a traceback;
- good values are read as before, and the defaults are what they were.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from spotctl.cli.main import cli
from spotctl.config import SETTINGS, ConfigError, Settings, load_settings
from spotctl.config.kinds import Checked
from spotctl.config.table import BY_ENV, BY_WHERE, markdown_table
from spotctl.models import NotifySettings

from conftest import REPO

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)

COMMANDS = {
    "status": ["-m", "spotctl", "status"],
    "launch": ["-m", "spotctl", "launch", "--dry-run", "echo hi"],
    "worker": ["-m", "spotctl.worker"],
    "spotctl worker": ["-m", "spotctl", "worker"],
}


def run(command: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    """`command` as a user runs it. The CLI's commands run in this process (click's runner: the
    same code, without an interpreter start each) unless `own_process`; the worker always runs
    as its own process."""
    env = {"SPOTCTL_HOME": str(home), "SPOTCTL_CLOUDS": "local", **env}
    if command == "worker" or env.pop("own_process", None):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SPOTCTL_")}
        return subprocess.run([sys.executable, *COMMANDS[command]], capture_output=True, text=True, timeout=120,
                              cwd=home.parent, env={**clean, **env})
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SPOTCTL_")}
    result = CliRunner().invoke(cli, COMMANDS[command][2:], env={**unset, **env})
    return subprocess.CompletedProcess(COMMANDS[command], result.exit_code, result.stdout, result.stderr)


# ---- the table, the docs and the code agree --------------------------------------------------
def test_the_docs_table_is_the_code_table() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    table = markdown_table()
    start = doc.find(table.splitlines()[0])
    shown = doc[start:doc.index("\n\n", start) + 1] if start >= 0 else ""
    assert shown == table, ("docs/configuration.md's table of settings is not spotctl/config/table.py's: "
                            "replace it with the output of `python -m spotctl.config.table`")


def _fields(model: type[BaseModel], prefix: str = "") -> dict[str, object]:
    """Every leaf field of a settings model, dotted, with its default."""
    found: dict[str, object] = {}
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found.update(_fields(kind, f"{prefix}{name}."))
        else:
            found[prefix + name] = info.get_default(call_default_factory=True)
    return found


def test_every_field_of_settings_is_one_row_with_its_default() -> None:
    fields = _fields(Settings)
    fields.pop("home")
    fields.pop("notify")  # config/notify.py: its rows are documentation only
    rows = {where: s for where, s in BY_WHERE.items() if not isinstance(s.kind, Checked)}
    assert sorted(fields) == sorted(rows), "every field of Settings needs a row in config/table.py, and vice versa"
    for where, model_default in fields.items():
        assert model_default == rows[where].default, where
    assert len({s.env for s in SETTINGS if s.env}) == len([s for s in SETTINGS if s.env]), "a variable twice"
    assert len(BY_WHERE) == len([s for s in SETTINGS if s.where]), "a key twice"


def test_notify_rows_have_the_notify_defaults() -> None:
    notify = NotifySettings()
    for key in ("timeout_s", "give_up_after_s", "callback_timeout_s"):
        assert BY_WHERE[f"notify.{key}"].default == getattr(notify, key), key


READ = re.compile(r"""(?:environ|env)(?:\.get\(|\[)\s*["'](SPOTCTL_[A-Z0-9_]+)["']""")


def test_no_module_reads_a_setting_around_the_table() -> None:
    """A setting's variable is read in spotctl/config/ only (through the table); elsewhere
    `env_value` or `Settings`. Variables spotctl sets for others are no settings."""
    strays = []
    for path in (REPO / "spotctl").rglob("*.py"):
        if path.is_relative_to(REPO / "spotctl" / "config"):
            continue
        for name in READ.findall(path.read_text()):
            if name in BY_ENV:
                strays.append(f"{path.relative_to(REPO)}: {name}")
    assert not strays, f"read through spotctl/config/table.py instead: {strays}"


# ---- a bad value is one line and exit 2 ------------------------------------------------------
BAD = [  # (type, variable, its bad value, config.yaml with a bad value, the key it names)
    ("int", "SPOTCTL_PORT", "seven", "embedded:\n  port: 70000\n", "embedded.port"),
    ("int", "SPOTCTL_MAX_LAUNCHES", "0", "worker:\n  max_concurrent_launches: many\n",
     "worker.max_concurrent_launches"),
    ("seconds", "SPOTCTL_DRAIN_TIMEOUT_S", "nan", "worker:\n  drain_timeout_s: -1\n", "worker.drain_timeout_s"),
    ("bool", "SPOTCTL_TLS", "maybe", "temporal:\n  tls: sometimes\n", "temporal.tls"),
    ("text", "SPOTCTL_AWS_NODE_ROLE", "role", "aws:\n  node_role_arn: short\n", "aws.node_role_arn"),
    ("enum", "SPOTCTL_GCP_MOUNTER", "nfs", "aws:\n  mounter: fuse\n", "aws.mounter"),
    ("url", "SPOTCTL_AWS_ENDPOINT", "localhost:5000", "gcp:\n  storage_endpoint: ftp://x\n",
     "gcp.storage_endpoint"),
    ("bucket url", "SPOTCTL_LOG_STORE", "/var/log/spotctl", "log_store: logs\n", "log_store"),
    ("host:port", "SPOTCTL_TEMPORAL_ADDRESS", "temporal.example.com", "temporal:\n  address: 'h:99999'\n",
     "temporal.address"),
    ("names", "SPOTCTL_CLOUDS", "local,my cloud", "clouds: 5\n", "clouds"),
]
ENV_ONLY = [  # (type, variable, its bad value)
    ("seconds", "SPOTCTL_SWEEP_INTERVAL_S", "soon"),
    ("path", "SPOTCTL_CODEC_KEY_FILE", "k" * 5000),
]


def _one_line_naming(result: subprocess.CompletedProcess, name: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1 and name in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", range(len(BAD)), ids=[f"{b[0]}-{b[1]}" for b in BAD])
def test_a_bad_variable_and_a_bad_key_are_one_line_and_exit_2(tmp_path: Path, case: int) -> None:
    _, variable, bad, yaml_text, key = BAD[case]
    home = tmp_path / "home"
    commands = ["status", "launch", "worker"]
    env_command, file_command = commands[case % 3], commands[(case + 1) % 3]  # each command meets each type
    _one_line_naming(run(env_command, home, **{variable: bad}), f"{variable}={bad!r}")
    home.mkdir()
    (home / "config.yaml").write_text(yaml_text)
    _one_line_naming(run(file_command, home), f"config.yaml: {key}=")
    assert sorted(p.name for p in home.iterdir()) == ["config.yaml"]  # nothing was started or made


@pytest.mark.parametrize("kind, variable, bad", ENV_ONLY, ids=[f"{e[0]}-{e[1]}" for e in ENV_ONLY])
def test_a_bad_variable_without_a_key_is_one_line_and_exit_2(tmp_path: Path, kind: str, variable: str,
                                                            bad: str) -> None:
    for command in ("worker", "launch", "status", "spotctl worker"):
        _one_line_naming(run(command, tmp_path / "home", **{variable: bad}), variable)


def test_a_bad_home_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run("status", tmp_path / "home", SPOTCTL_HOME="h" * 5000, own_process="1")  # main() reads it first
    _one_line_naming(result, "SPOTCTL_HOME")


def test_secrets_are_never_repeated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_settings_in_env(monkeypatch)
    monkeypatch.setenv("SPOTCTL_API_KEY", "s3cr3t\x01")
    with pytest.raises(ConfigError, match="^SPOTCTL_API_KEY: cannot contain control characters$"):
        load_settings(tmp_path)


# ---- good values keep working; defaults unchanged --------------------------------------------
def _no_settings_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other tests of the session (their fixtures) may have set some."""
    for name in BY_ENV:
        monkeypatch.delenv(name, raising=False)


def test_the_defaults_are_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_settings_in_env(monkeypatch)
    dumped = load_settings(tmp_path).model_dump(exclude={"home"})
    assert dumped == {
        "temporal": {"address": None, "namespace": "default", "tls": False, "api_key": None},
        "embedded": {"port": 7233, "ui_port": 8233, "codec_port": 8235},
        "clouds": ["local", "aws", "gcp"],
        "aws": {"endpoint_url": None, "pricing_endpoint_url": None, "regions": None, "ssh_user": "ubuntu", "image_id": None, "mounter": "mount-s3",
                "instance_profile": None, "node_role_arn": None, "node_credentials_ttl_s": 3600},
        "gcp": {"project": None, "compute_endpoint": None, "storage_endpoint": None, "billing_endpoint": None,
                "regions": None,
                "ssh_user": "spotctl", "termination_action": "DELETE", "mounter": "gcsfuse", "service_account": None},
        "worker": {"max_concurrent_launches": 16, "max_concurrent_monitors": 20000, "max_concurrent_activities": 500,
                   "max_concurrent_notifications": 32, "activity_threads": 64, "max_cached_workflows": 4000,
                   "node_polls_per_s": 200.0, "drain_timeout_s": 30.0, "connect_timeout_s": 120.0, "metrics_port": 0,
                   "metrics_host": "127.0.0.1", "sweep_interval_s": 300.0},
        "fleet": {"path": None, "ranking": "price"},
        "notify": None, "log_store": None,
    }


GOOD_ENV = {
    "SPOTCTL_PORT": "17233", "SPOTCTL_TLS": "1", "SPOTCTL_NAMESPACE": "jobs", "SPOTCTL_CLOUDS": "local, aws",
    "SPOTCTL_AWS_REGIONS": "us-east-1,eu-west-1", "SPOTCTL_AWS_ENDPOINT": "http://127.0.0.1:5000",
    "SPOTCTL_AWS_MOUNTER": "sync", "SPOTCTL_LOG_STORE": "local://logs/spotctl", "SPOTCTL_NODE_POLLS_PER_S": "0.5",
    "SPOTCTL_DRAIN_TIMEOUT_S": "0", "SPOTCTL_MAX_CACHED_WORKFLOWS": "0", "SPOTCTL_SWEEP_INTERVAL_S": "0",
    "SPOTCTL_METRICS_HOST": "0.0.0.0", "SPOTCTL_TEMPORAL_ADDRESS": "[::1]:7233", "SPOTCTL_API_KEY": "",
}
GOOD_YAML = """\
temporal:
  tls: {server_root_ca_cert: /etc/ca.pem, domain: temporal.example.com}
embedded: {ui_port: 18233, codec_port: 0}
aws: {node_credentials_ttl_s: 900, image_id: ami-0123456789abcdef0}
gcp: {termination_action: stop, regions: [us-central1], service_account: nodes@p.iam.gserviceaccount.com}
worker: {max_concurrent_launches: '4', activity_threads: 4}
"""


def test_good_values_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_settings_in_env(monkeypatch)
    for name, value in GOOD_ENV.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "config.yaml").write_text(GOOD_YAML)
    s = load_settings(tmp_path)
    assert (s.embedded.port, s.embedded.ui_port, s.embedded.codec_port) == (17233, 18233, 0)
    assert s.temporal.tls is True and s.temporal.namespace == "jobs" and s.temporal.api_key is None
    assert s.temporal.address == "[::1]:7233" and s.clouds == ["local", "aws"]
    assert s.aws.regions == ["us-east-1", "eu-west-1"] and s.aws.mounter == "sync"
    assert (s.aws.node_credentials_ttl_s, s.aws.image_id) == (900, "ami-0123456789abcdef0")
    assert s.gcp.termination_action == "STOP" and s.gcp.regions == ["us-central1"]
    assert s.log_store == "local://logs/spotctl"
    w = s.worker
    assert (w.max_concurrent_launches, w.activity_threads, w.max_cached_workflows) == (4, 4, 0)
    assert (w.node_polls_per_s, w.drain_timeout_s, w.sweep_interval_s, w.metrics_host) == (0.5, 0.0, 0.0, "0.0.0.0")
    monkeypatch.delenv("SPOTCTL_TLS")
    assert load_settings(tmp_path).temporal.tls.domain == "temporal.example.com"  # the file's mTLS form


def test_good_values_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("worker:\n  max_concurrent_launches: 4\nclouds: [local]\n")
    result = run("launch", home, SPOTCTL_PORT="17233", SPOTCTL_TLS="no", SPOTCTL_SWEEP_INTERVAL_S="60",
                 SPOTCTL_AWS_MOUNTER="SYNC")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Placement candidates" in result.stdout
