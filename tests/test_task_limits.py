"""Hostile and out-of-bounds task input (issue 7): one TaskError line and exit code 2, quickly,
never a traceback, a hang or a big allocation. `launch --dry-run` starts no server, so these
run without Temporal."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spotctl.cli.main import cli
from spotctl.config import load_settings
from spotctl.launch import SECRET_SHOWN, Overrides, plan
from spotctl.task import (
    MAX_COMMAND_BYTES,
    MAX_FILE_BYTES,
    MAX_NUM_NODES,
    RECOVERY_KEYS,
    RESOURCE_KEYS,
    SINGLE_RESOURCE_KEYS,
    STORAGE_KEYS,
    TASK_KEYS,
    WORKDIR_KEYS,
    TaskError,
    load_task_file,
    parse_task_text,
)

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)

FAST_S = 5.0
"""Wall seconds: far below the 120 s hangs these inputs caused, far above a busy CI machine's jitter."""


def dry_run(tmp_path: Path, content: str | bytes, *args: str) -> Result:
    path = tmp_path / "task.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local"}
    return CliRunner().invoke(cli, ["launch", "--dry-run", *args, str(path)], env=env)


def refused(result: Result, *pieces: str) -> str:
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert "\n" not in message, message
    for piece in pieces:
        assert piece in message, (piece, message)
    return message


def timed_dry_run(tmp_path: Path, content: str | bytes, *args: str) -> Result:
    start = time.monotonic()
    result = dry_run(tmp_path, content, *args)
    assert time.monotonic() - start < FAST_S, f"took {time.monotonic() - start:.1f} s"
    return result


def task_error(text: str) -> str:
    with pytest.raises(TaskError) as info:
        parse_task_text(text, source="t.yaml")
    return str(info.value)


# -- 1. numbers have bounds -------------------------------------------------------------------


def test_huge_num_nodes_refused(tmp_path: Path) -> None:
    result = timed_dry_run(tmp_path, "num_nodes: 99999999999999999999999\nrun: echo\n")
    refused(result, "task.yaml:1: num_nodes:", f"at most {MAX_NUM_NODES}")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("resources:\n  cpus: .nan\n", "resources.cpus: must be a finite number"),
        ("resources:\n  cpus: .inf\n", "resources.cpus: must be a finite number"),
        ("resources:\n  cpus: -1\n", "resources.cpus: must be more than 0"),
        ("resources:\n  cpus: 100000\n", "resources.cpus: must be at most 4096"),
        ("resources:\n  cpus: '99999999+'\n", "resources.cpus: must be at most 4096"),
        ("resources:\n  memory: 1000000TB\n", "resources.memory: must be at most"),
        ("resources:\n  memory: '-4'\n", "resources.memory: expected a number"),
        ("resources:\n  accelerators: 'V100:2000'\n", "accelerator count must be more than 0 and at most 1024"),
        ("resources:\n  accelerators: {V100: .nan}\n", "accelerator count must be more than 0"),
        ("resources:\n  accelerators: {V100: -2}\n", "accelerator count must be more than 0"),
        ("resources:\n  disk_size: 999999999999\n", "resources.disk_size: must be at most"),
        ("resources:\n  disk_size: 0\n", "resources.disk_size: must be more than 0"),
        ("resources:\n  job_recovery:\n    max_restarts_on_errors: 1000000\n",
         "max_restarts_on_errors: must be at most 1000"),
        ("resources:\n  job_recovery:\n    recover_on_exit_codes: [-1]\n", "exit codes are 0..255"),
        ("resources:\n  job_recovery:\n    max_wait: .inf\n", "max_wait: must be a finite number"),
        ("resources:\n  job_recovery:\n    max_wait: 10000d\n", "max_wait: must be at most"),
        ("resources:\n  job_recovery:\n    max_wait: -5\n", "max_wait: must be at least 0"),
        ("resources:\n  ports: 70000\n", "resources.ports: ports are 1..65535"),
        ("resources:\n  ports: ['9000-8000']\n", "resources.ports: ports are 1..65535"),
        ("resources:\n  priority: 5000\n", "resources.priority: must be at most 1000"),
        ("resources:\n  max_hourly_cost: .nan\n", "resources.max_hourly_cost: expected a finite number"),
        ("config:\n  aws:\n    x: .inf\n", "config.aws.x: must be a finite number"),
        ("config:\n  x: 123456789012345678901234567890\n", "config.x: a whole number must fit in 64 bits"),
        ("resources:\n  any_of:\n" + "    - cpus: 1\n" * 65, "resources.any_of: must have at most 64"),
    ],
)
def test_numbers_out_of_bounds(text: str, expected: str) -> None:
    assert expected in task_error("run: x\n" + text)


def test_numbers_within_bounds_still_parse() -> None:
    [task] = parse_task_text(
        "run: x\nnum_nodes: 1000\nresources:\n  cpus: 4096\n  memory: 64TB\n  accelerators: 'T4:0.5'\n"
        "  disk_size: 1TB\n  ports: [8080, '10000-10010']\n  job_recovery:\n    max_wait: 365d\n"
        "    recover_on_exit_codes: [0, 255]\n    max_restarts_on_errors: 1000\n").tasks
    assert task.num_nodes == 1000 and task.recovery().max_wait_s == 365 * 86400


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--gpus", "V100:-2"], "--gpus:"),
        (["--gpus", "V100:nan"], "--gpus:"),
        (["--gpus", "V100:inf"], "--gpus:"),
        (["--gpus", "V100:5000"], "--gpus: accelerator count must be more than 0 and at most 1024"),
        (["--gpus", "V100:0"], "--gpus: accelerator count must be more than 0"),
        (["--cpus", "-2"], "--cpus:"),
        (["--cpus", "nan"], "--cpus:"),
        (["--cpus", "inf"], "--cpus:"),
        (["--cpus", "1e9"], "--cpus:"),
        (["--cpus", "99999999"], "--cpus: must be at most 4096"),
        (["--cpus", "0"], "--cpus: must be more than 0"),
    ],
)
def test_cli_overrides_use_the_same_bounds(tmp_path: Path, args: list[str], expected: str) -> None:
    refused(dry_run(tmp_path, "run: echo\n", *args), expected)


def test_cli_overrides_within_bounds(tmp_path: Path) -> None:
    result = dry_run(tmp_path, "run: echo\n", "--gpus", "V100:1", "--cpus", "8+")
    assert result.exit_code == 0, result.output
    assert "local.v100" in result.stdout


def test_num_nodes_above_every_region_capacity_fails_at_plan_time(tmp_path: Path) -> None:
    # The local cloud's default regions hold 8 instances each.
    message = refused(dry_run(tmp_path, "num_nodes: 9\nrun: echo\n"), "task.yaml:1: num_nodes: 9 nodes never fit")
    assert "at most 8" in message
    assert dry_run(tmp_path, "num_nodes: 8\nrun: echo\n").exit_code == 0


def test_num_nodes_drops_only_the_regions_too_small(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    settings.clouds = ["local"]
    config = Path(settings.local_cloud_dir) / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "regions:\n  small: {zones: [small-1a], capacity: 2}\n  big: {zones: [big-1a], capacity: 16, price_factor: 2}\n"
        "instance_types:\n  t: {cpus: 1, memory_gb: 2, spot_price: 0.01, ondemand_price: 0.04}\n")
    task = tmp_path / "task.yaml"
    task.write_text("num_nodes: 4\nrun: echo\n")
    p = plan(str(task), Overrides(), settings)
    assert [c.region for c in p.candidates] == ["big"]


# -- 2. hostile YAML --------------------------------------------------------------------------

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    + ["run: echo"]
) + "\n"


def test_billion_laughs_refused_fast(tmp_path: Path) -> None:
    refused(timed_dry_run(tmp_path, BILLION_LAUGHS), "task.yaml:", "once aliases are expanded")


def test_recursive_alias_refused(tmp_path: Path) -> None:
    refused(timed_dry_run(tmp_path, "config: &a\n  x: *a\nrun: echo\n"), "task.yaml:", "recursive")


def test_aliases_within_bounds_still_work() -> None:
    [task] = parse_task_text("envs: &e\n  A: '1'\nconfig:\n  copy: *e\nrun: echo\n").tasks
    assert task.config is not None and task.config.model_dump(exclude_none=True) == {"copy": {"A": "1"}}


@pytest.mark.parametrize("text", ["run: " + "[" * 10000 + "]" * 10000 + "\n",
                                  "config:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(200)) + "run: x\n",
                                  "config: " + "{a: " * 10000 + "1" + "}" * 10000 + "\n"],
                         ids=["flow-lists", "block-mappings", "flow-mappings"])
def test_deep_nesting_refused(tmp_path: Path, text: str) -> None:
    refused(timed_dry_run(tmp_path, text), "task.yaml:", "nested deeper than 64 levels")


def test_deep_nesting_through_aliases_refused() -> None:
    deep = "[" * 60 + "1" + "]" * 60
    assert "nested deeper than 64 levels" in task_error(f"config:\n  a: &d {deep}\n  b: {'[' * 10}*d{']' * 10}\nrun: x\n")


@pytest.mark.parametrize("bad", [b"\x00", b"\x07", b"\x1b[31m"], ids=["nul", "bell", "ansi"])
def test_control_characters_refused_with_line(tmp_path: Path, bad: bytes) -> None:
    refused(timed_dry_run(tmp_path, b"name: x\nrun: echo " + bad + b"hi\n"), "task.yaml:2:", "control character")


def test_not_utf8_refused(tmp_path: Path) -> None:
    refused(dry_run(tmp_path, b"run: echo \xff\xfe\n"), "task.yaml:1:", "not UTF-8")


def test_50_mb_file_refused_before_reading(tmp_path: Path) -> None:
    refused(timed_dry_run(tmp_path, b"run: echo\n" + b"#" * (50 * 1024 * 1024)),
            "task.yaml:", f"larger than the limit of {MAX_FILE_BYTES} bytes")


def test_3_mb_run_refused(tmp_path: Path) -> None:
    refused(timed_dry_run(tmp_path, "run: |\n" + ("  echo " + "x" * 90 + "\n") * 32000),
            "task.yaml:", "limit")


def test_oversized_run_under_the_file_limit_refused(tmp_path: Path) -> None:
    text = "run: |\n" + ("  echo " + "x" * 90 + "\n") * 3000  # ~290 KiB
    refused(timed_dry_run(tmp_path, text), "task.yaml:1: run:", f"limit of {MAX_COMMAND_BYTES} bytes")


def test_oversized_inline_command_refused(tmp_path: Path) -> None:
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local"}
    result = CliRunner().invoke(cli, ["launch", "--dry-run", "echo " + "x" * (300 * 1024)], env=env)
    refused(result, "run:", "limit")


def test_huge_integer_literal_refused() -> None:
    assert "t.yaml" in task_error("run: x\nnum_nodes: " + "9" * 5000 + "\n")


def test_too_many_documents_refused() -> None:
    assert "more than 64 documents" in task_error("run: x\n---\n" * 100)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("envs:\n" + "".join(f"  E{i}: v\n" for i in range(1001)), "envs: 1001 envs is more than the limit of 1000"),
        ("envs:\n  BIG: " + "x" * 200_000 + "\n", "envs: 200003 bytes of envs is more than the limit"),
        ("secrets:\n" + "".join(f"  S{i}: v\n" for i in range(101)), "secrets: 101 secrets is more than the limit"),
        ("file_mounts:\n" + "".join(f"  /m{i}: s3://b/{i}\n" for i in range(257)), "file_mounts: 257 mounts"),
        ("setup: " + "x" * (MAX_COMMAND_BYTES + 1) + "\n", "setup:"),
    ],
    ids=["env-count", "env-bytes", "secret-count", "mount-count", "setup"],
)
def test_collections_and_strings_bounded(text: str, expected: str) -> None:
    assert expected in task_error("run: x\n" + text)


def test_many_aliases_within_bounds_still_load() -> None:
    text = "config:\n  base: &b {k: v}\n" + "".join(f"  c{i}: *b\n" for i in range(500)) + "run: x\n"
    config = parse_task_text(text).tasks[0].config
    assert config is not None and len(config.model_extra or {}) == 501


# -- 3. mount targets stay in their root ------------------------------------------------------


@pytest.mark.parametrize(
    "target, root",
    [("~/../../../../x", "~"), ("../../../x", "home"), ("a/../../x", "home"), ("/../etc", "/"),
     ("/data/../../x", "/"), ("~/..", "~")],
)
def test_mount_target_escaping_its_root_refused(tmp_path: Path, target: str, root: str) -> None:
    message = refused(dry_run(tmp_path, f"run: x\nfile_mounts:\n  '{target}': s3://bucket/x\n"),
                      "task.yaml:3: file_mounts.", "climbs above")
    assert root in message.split("climbs above", 1)[1]


def test_mount_target_escaping_through_env_substitution_refused() -> None:
    message = task_error("run: x\nenvs:\n  UP: ../..\nfile_mounts:\n  ~/$UP/x: s3://b/x\n")
    assert "t.yaml:5: file_mounts.~/$UP/x: mount target '~/../../x' climbs above ~" in message


@pytest.mark.parametrize("target", ["", "/", "~/a\x1b[31m"])
def test_bad_mount_targets_refused(target: str) -> None:
    text = 'run: x\nfile_mounts:\n  "' + target.replace("\x1b", "\\e") + '": s3://b/x\n'
    assert "t.yaml:3: file_mounts" in task_error(text)


def test_mount_targets_are_normalised() -> None:
    [task] = parse_task_text(
        "run: x\nfile_mounts:\n  ~/a/./b/: s3://b/1\n  /data//x/../y: s3://b/2\n  c/../d: s3://b/3\n"
        "  ~/e/..: s3://b/4\n").tasks
    assert list(task.file_mounts) == ["~/a/b", "/data/y", "d", "~"]


def test_mount_targets_equal_after_normalising_refused() -> None:
    assert "the same target as another mount (~/a)" in task_error(
        "run: x\nfile_mounts:\n  ~/a: s3://b/1\n  ~/a/: s3://b/2\n")


# -- 8. job names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [('"evil\\e[31mred"', "not a valid name: 'evil\\x1b[31mred'"), ('"two\\nlines"', "not a valid name"),
     ("x" * 500, "at most 63 characters, got 500"), ("-dash-first", "not a valid name"),
     ("a---b", "not a valid name"), ("'with space'", "not a valid name"), ("123", "expected a string")],
    ids=["ansi", "newline", "long", "dash-first", "triple-dash", "space", "number"],
)
def test_bad_yaml_names_refused(tmp_path: Path, name: str, expected: str) -> None:
    message = refused(dry_run(tmp_path, f"name: {name}\nrun: echo\n"), "task.yaml:1: name:", expected)
    assert "\x1b" not in message


@pytest.mark.parametrize("name", ["evil\x1b[31mred", "two\nlines", "x" * 500, "a b"])
def test_bad_name_override_refused(tmp_path: Path, name: str) -> None:
    message = refused(dry_run(tmp_path, "run: echo\n", "-n", name), "--name:")
    assert "\x1b" not in message


def test_pipeline_name_checked_too() -> None:
    assert "t.yaml:1: name: not a valid name" in task_error("name: 'bad name'\n---\nrun: a\n---\nrun: b\n")


@pytest.mark.parametrize("name", ["hello", "my-job_1.2", "a", "A1", "x" * 63, "train--eval"])
def test_good_names_accepted(name: str) -> None:
    assert parse_task_text(f"name: {name}\nrun: x\n").name == name


def test_error_messages_are_one_line_without_control_characters() -> None:
    err = TaskError("bad\nthing \x1b[2J", path="a\nb.yaml", field="x\ty")
    assert str(err) == "a\\nb.yaml: x\\ty: bad\\nthing \\x1b[2J"


# -- secrets ----------------------------------------------------------------------------------


def test_secret_overrides_reach_the_spec_and_never_the_dry_run(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    settings.clouds = ["local"]
    task = tmp_path / "task.yaml"
    task.write_text("run: echo\nsecrets:\n  TOKEN:\n  OTHER: from-yaml-value\n"
                    "file_mounts:\n  ~/data: s3://bucket-${TOKEN}/x\n")
    p = plan(str(task), Overrides(secrets=["TOKEN=hunter2-abc"], envs=["E=1"]), settings)
    spec = p.to_spec(7)
    assert spec.secrets == {"TOKEN": "hunter2-abc", "OTHER": "from-yaml-value"}
    assert spec.envs == {"E": "1"} and "TOKEN" not in spec.envs
    dump = p.display_dump()
    assert dump["secrets"] == {"TOKEN": SECRET_SHOWN, "OTHER": SECRET_SHOWN}
    text = repr(dump)
    assert "hunter2-abc" not in text and "from-yaml-value" not in text
    assert dump["file_mounts"] == {"~/data": f"s3://bucket-{SECRET_SHOWN}/x"}
    assert "secrets" not in " ".join(p.unsupported)


def test_bad_secret_override_refused(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    with pytest.raises(TaskError, match="--secret NOPE: NOPE is not set in this shell"):
        plan("echo hi", Overrides(secrets=["NOPE"], environ={}), settings)  # KEY alone: from the shell
    with pytest.raises(TaskError, match="--secret 1X: expected KEY=VALUE"):
        plan("echo hi", Overrides(secrets=["1X"]), settings)


def test_env_override_counts_toward_the_limit(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    with pytest.raises(TaskError, match="envs: .* bytes of envs is more than the limit"):
        plan("echo hi", Overrides(envs=["BIG=" + "x" * 200_000]), settings)


# -- 11. one schema ---------------------------------------------------------------------------


def test_allowed_keys_are_derived_from_the_models() -> None:
    """The keys SkyPilot's schemas.py accepts (this list was hand-kept before issue 7)."""
    assert TASK_KEYS == {
        "name", "workdir", "event_callback", "num_nodes", "resources", "file_mounts", "service",
        "pool", "setup", "run", "envs", "secrets", "managed_secrets", "inputs", "outputs",
        "file_mounts_mapping", "config", "experimental", "volumes", "volume_mounts",
        "api_server_access", "_metadata", "deadline"}  # `deadline`: spotctl's own (docs/deadlines.md)
    assert SINGLE_RESOURCE_KEYS == {
        "cloud", "region", "zone", "infra", "cpus", "memory", "accelerators", "instance_type",
        "use_spot", "job_recovery", "spot_recovery", "volumes", "disk_size", "ephemeral_storage",
        "disk_tier", "network_tier", "local_disk", "max_hourly_cost", "ports", "labels",
        "accelerator_args", "_no_missing_accel_warnings", "image_id", "autostop", "priority",
        "priority_class", "_docker_login_config", "_is_image_managed", "_requires_fuse",
        "_cluster_config_overrides"}
    assert RESOURCE_KEYS == SINGLE_RESOURCE_KEYS | {"any_of", "ordered"}
    assert STORAGE_KEYS == {"name", "source", "store", "persistent", "mode", "mount_options", "type",
                            "config", "_is_sky_managed", "_bucket_sub_path", "_force_delete"}
    assert RECOVERY_KEYS == {"strategy", "max_restarts_on_errors", "recover_on_exit_codes", "max_wait"}
    assert WORKDIR_KEYS == {"url", "ref"}
    assert "source_path" not in TASK_KEYS


def test_source_path_is_not_a_yaml_key(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("run: x\nsource_path: /etc/passwd\n")
    with pytest.raises(TaskError, match="source_path: unknown field"):
        load_task_file(path)


@pytest.mark.parametrize("text", [
    "run: x\nresources:\n  accelerators: 'V100:１'\n",
    "run: x\nresources:\n  cpus: '４'\n",
    "run: x\nresources:\n  memory: '１６+'\n",
    "run: x\nresources:\n  ports: '８０８０'\n",
])
def test_non_ascii_digits_in_resources_refused(text: str) -> None:
    """A full-width digit is not read as its ASCII twin (the command line refuses them too)."""
    assert task_error(text).startswith("t.yaml:")
