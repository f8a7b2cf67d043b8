"""The settings of what a VM gets to reach its buckets (aws.node_role_arn, aws.instance_profile,
aws.node_credentials_ttl_s, gcp.service_account): a bad value in config.yaml or the environment is one line naming it and exit 2,
never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spotctl.config import ConfigError, load_settings


def spotctl(home: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spotctl", "status"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "SPOTCTL_HOME": str(home), **env})


def test_good_values_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text("aws:\n  node_credentials_ttl_s: 900\n  instance_profile: nodes\n")
    monkeypatch.setenv("SPOTCTL_AWS_NODE_ROLE", "arn:aws:iam::123456789012:role/spotctl-nodes")
    aws = load_settings(tmp_path).aws
    assert (aws.node_credentials_ttl_s, aws.instance_profile, aws.node_role_arn) == (
        900, "nodes", "arn:aws:iam::123456789012:role/spotctl-nodes")
    monkeypatch.setenv("SPOTCTL_AWS_INSTANCE_PROFILE", "arn:aws:iam::123456789012:instance-profile/p")
    assert load_settings(tmp_path).aws.instance_profile.endswith("instance-profile/p")


@pytest.mark.parametrize("yaml_text, said", [
    ("aws:\n  node_credentials_ttl_s: 10\n", "aws.node_credentials_ttl_s=10: must be 900..43,200"),
    ("aws:\n  node_credentials_ttl_s: 99999\n", "aws.node_credentials_ttl_s=99999: must be 900..43,200"),
    ("aws:\n  node_role_arn: x\n", "aws.node_role_arn='x': must have at least 20 characters"),
    (f"aws:\n  instance_profile: {'p' * 3000}\n", "must have at most 2048 characters"),
    ("gcp:\n  service_account: nodes\n", "gcp.service_account='nodes': not a service account's email"),
    (f"gcp:\n  service_account: {'a' * 300}@p.iam.gserviceaccount.com\n", "must have at most 254 characters"),
])
def test_a_bad_value_in_config_yaml_is_one_line(tmp_path: Path, yaml_text: str, said: str) -> None:
    (tmp_path / "config.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError, match="config.yaml: ") as info:
        load_settings(tmp_path)
    assert said in str(info.value)
    done = spotctl(tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and said in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_bad_value_in_the_environment_is_one_line(tmp_path: Path) -> None:
    done = spotctl(tmp_path, SPOTCTL_AWS_NODE_ROLE="role")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "Error: SPOTCTL_AWS_NODE_ROLE='role': must have at least 20 characters"


def test_gcp_service_account_from_the_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(tmp_path).gcp.service_account is None  # default: the VMs run with none
    (tmp_path / "config.yaml").write_text("gcp:\n  service_account: nodes@my-project.iam.gserviceaccount.com\n")
    assert load_settings(tmp_path).gcp.service_account == "nodes@my-project.iam.gserviceaccount.com"
    monkeypatch.setenv("SPOTCTL_GCP_SERVICE_ACCOUNT", "other@my-project.iam.gserviceaccount.com")
    assert load_settings(tmp_path).gcp.service_account == "other@my-project.iam.gserviceaccount.com"


def test_a_bad_gcp_service_account_in_the_environment_is_one_line(tmp_path: Path) -> None:
    done = spotctl(tmp_path, SPOTCTL_GCP_SERVICE_ACCOUNT="my nodes")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("Error: SPOTCTL_GCP_SERVICE_ACCOUNT='my nodes': not a service account's "
                                   "email (name@project.iam.gserviceaccount.com)")
