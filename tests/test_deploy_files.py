"""deploy/: the compose file and Kubernetes manifests validate, and agree with spotctl.

Offline and fast: the validators (the `dev` extra) carry their schemas, and no Docker engine
or cluster is needed. Beyond the schemas, this checks what a user would: every SPOTCTL_* name
is one spotctl reads, the grace periods outlast the drain, the secrets land where spotctl
looks, and the image runs `spotctl worker`.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spotctl.clouds.ssh_key import KEY_FILE
from spotctl.config import SETTINGS, WorkerConfig

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
HELM_VALUES = K8S / "temporal-values.yaml"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p != HELM_VALUES)
BIN = Path(sys.executable).parent

NEW_NAMES = {"SPOTCTL_METRICS_PORT", "SPOTCTL_METRICS_HOST", "SPOTCTL_DRAIN_TIMEOUT_S"}
"""Worker settings being added to config/settings.py; allowed here before they land there."""


def run_validator(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / name
    if not exe.exists():
        pytest.fail(f"{exe} is missing: pip install -e '.[dev]' (it installs the deploy validators)")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"{shlex.join(proc.args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s_object(kind: str, name: str) -> dict:
    for path in MANIFESTS:
        for doc in load_all(path):
            if doc.get("kind") == kind and doc["metadata"]["name"] == name:
                return doc
    raise AssertionError(f"no {kind}/{name} in {K8S}")


def seconds(duration: str | int) -> float:
    """A compose duration ("60s", "1m30s") in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration!r}"
    unit = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    return sum(float(n) * unit[u] for n, u in parts)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def worker_env(compose: dict) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"]["worker"]["environment"].items()}


@pytest.fixture(scope="module")
def configmap() -> dict[str, str]:
    return k8s_object("ConfigMap", "spotctl-worker")["data"]


@pytest.fixture(scope="module")
def pod_spec() -> dict:
    return k8s_object("Deployment", "spotctl-worker")["spec"]["template"]["spec"]


# --- the validators ---------------------------------------------------------------------------


def test_compose_file_follows_the_compose_spec() -> None:
    assert_ok(run_validator("check-jsonschema", "--builtin-schema", "vendor.compose-spec", "deploy/compose.yaml"))


def test_k8s_manifests_validate_strictly() -> None:
    assert MANIFESTS, f"no manifests in {K8S}"
    proc = run_validator("kubernetes-validate", "--strict", *(str(p.relative_to(ROOT)) for p in MANIFESTS))
    assert_ok(proc)


def test_the_validators_catch_a_mistake(tmp_path: Path) -> None:
    """A misspelt field must fail, or a green run above would mean nothing."""
    bad_compose = tmp_path / "compose.yaml"
    bad_compose.write_text((DEPLOY / "compose.yaml").read_text().replace("stop_grace_period:", "stop_grace_periods:"))
    assert run_validator("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(bad_compose)).returncode != 0
    bad_deployment = tmp_path / "deployment.yaml"
    text = (K8S / "worker-deployment.yaml").read_text()
    bad_deployment.write_text(text.replace("terminationGracePeriodSeconds:", "terminationGracePeriod:"))
    assert run_validator("kubernetes-validate", "--strict", str(bad_deployment)).returncode != 0


def test_temporal_helm_values_have_what_the_chart_needs(configmap: dict[str, str]) -> None:
    values = yaml.safe_load(HELM_VALUES.read_text())
    # Chart 1.x fails on its removed sub-charts' keys, even `enabled: false`.
    assert not {"cassandra", "elasticsearch", "prometheus", "grafana", "mysql", "postgresql"} & values.keys()
    persistence = values["server"]["config"]["persistence"]
    assert isinstance(persistence["numHistoryShards"], int)
    for store in (persistence["defaultStore"], persistence["visibilityStore"]):
        sql = persistence["datastores"][store]["sql"]
        assert sql["pluginName"] == "postgres12"
        assert sql["databaseName"] and sql["connectAddr"] and sql["user"]
        assert sql.get("password") or sql.get("existingSecret"), f"datastore {store} has no password"
    namespaces = values["server"]["config"]["namespaces"]
    assert namespaces["create"] is True
    assert configmap["SPOTCTL_NAMESPACE"] in {n["name"] for n in namespaces["namespace"]}
    assert values["web"]["enabled"] is True
    # Release "temporal" in namespace "temporal": the frontend Service the workers dial.
    assert configmap["SPOTCTL_TEMPORAL_ADDRESS"].startswith("temporal-frontend.temporal.svc")


# --- agreement with spotctl ---------------------------------------------------------------------


def test_every_spotctl_setting_named_in_deploy_is_one_spotctl_reads() -> None:
    # Never deploy/secrets/* but its README: the rest there are real keys.
    files = [DEPLOY / "Dockerfile", DEPLOY / "compose.yaml", DEPLOY / "README.md", DEPLOY / "secrets" / "README.md",
             *K8S.glob("*.yaml")]
    used = {name for path in files for name in re.findall(r"\bSPOTCTL_[A-Z0-9_]+\b", path.read_text())}
    assert "SPOTCTL_TEMPORAL_ADDRESS" in used
    unknown = used - {s.env for s in SETTINGS} - NEW_NAMES
    assert not unknown, f"deploy/ sets settings spotctl/config/table.py does not know: {sorted(unknown)}"


def test_compose_and_k8s_set_the_same_settings(worker_env: dict[str, str], configmap: dict[str, str]) -> None:
    secret_env = k8s_object("Secret", "spotctl-env")["stringData"]
    assert set(worker_env) ^ (set(configmap) | set(secret_env)) <= {"SPOTCTL_API_KEY"}


def test_grace_periods_outlast_the_drain(compose: dict, worker_env: dict[str, str], configmap: dict[str, str],
                                         pod_spec: dict) -> None:
    default = WorkerConfig().model_dump().get("drain_timeout_s", 30.0)
    compose_drain = float(worker_env.get("SPOTCTL_DRAIN_TIMEOUT_S", default))
    k8s_drain = float(configmap.get("SPOTCTL_DRAIN_TIMEOUT_S", default))
    assert seconds(compose["services"]["worker"]["stop_grace_period"]) > compose_drain
    assert pod_spec["terminationGracePeriodSeconds"] > k8s_drain


def test_the_image_runs_spotctl_worker_as_a_non_root_user() -> None:
    from spotctl.cli.main import cli

    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    entrypoints = [json.loads(line.split(None, 1)[1]) for line in lines if line.startswith("ENTRYPOINT")]
    assert entrypoints[-1:] == [["spotctl", "worker"]]
    assert "worker" in cli.commands
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and not users[-1].startswith(("0", "root"))
    assert "STOPSIGNAL SIGTERM" in lines


def test_secret_files_are_where_the_settings_point(compose: dict, worker_env: dict[str, str],
                                                   configmap: dict[str, str], pod_spec: dict) -> None:
    file_settings = ("SPOTCTL_CODEC_KEY_FILE", "AWS_SHARED_CREDENTIALS_FILE", "GOOGLE_APPLICATION_CREDENTIALS")
    ssh_key = f"{worker_env['SPOTCTL_HOME']}/ssh/{KEY_FILE}"  # Settings.ssh_dir / KEY_FILE

    # compose: a secret's target is /run/secrets/<name> unless given as an absolute path.
    targets = set()
    for s in compose["services"]["worker"]["secrets"]:
        source, target = (s, s) if isinstance(s, str) else (s["source"], s.get("target", s["source"]))
        assert source in compose["secrets"]
        targets.add(target if target.startswith("/") else f"/run/secrets/{target}")
    assert {worker_env[k] for k in file_settings} | {ssh_key} <= targets

    # Kubernetes: the files of the spotctl-files Secret, under the worker's mount of it.
    keys = set(k8s_object("Secret", "spotctl-files")["stringData"])
    (worker,) = pod_spec["containers"]
    (mount,) = [m for m in worker["volumeMounts"] if m["name"] == "secret-files"]
    assert mount.get("readOnly") is True
    for setting in file_settings:
        directory, _, key = configmap[setting].rpartition("/")
        assert directory == mount["mountPath"] and key in keys, f"{setting}={configmap[setting]}"
    # The init container copies the SSH key into $SPOTCTL_HOME/ssh/.
    (init,) = pod_spec["initContainers"]
    assert f"{configmap['SPOTCTL_HOME']}/ssh/{KEY_FILE}" in " ".join(init["command"])
    assert KEY_FILE in keys


def test_metrics_port_agrees_everywhere(worker_env: dict[str, str], configmap: dict[str, str], pod_spec: dict) -> None:
    port = int(configmap["SPOTCTL_METRICS_PORT"])
    assert port == int(worker_env["SPOTCTL_METRICS_PORT"]) == 9464
    assert configmap["SPOTCTL_METRICS_HOST"] == worker_env["SPOTCTL_METRICS_HOST"] == "0.0.0.0"
    (worker,) = pod_spec["containers"]
    assert {p["name"]: p["containerPort"] for p in worker["ports"]} == {"metrics": port}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    annotations = k8s_object("Deployment", "spotctl-worker")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    service = k8s_object("Service", "spotctl-worker-metrics")
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    assert "EXPOSE 9464" in (DEPLOY / "Dockerfile").read_text()
