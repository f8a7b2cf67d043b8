"""The task model: parsing, normalised views, and the errors a user sees for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotctl.task import (
    MAX_EVENT_CALLBACK_BYTES,
    FileMountSpec,
    Task,
    TaskError,
    load_task_file,
    parse_env_assignment,
    parse_task_text,
    validate_for_launch,
)

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)


def write(tmp_path: Path, text: str, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> TaskError:
    with pytest.raises(TaskError) as info:
        load_task_file(write(tmp_path, text))
    return info.value


def one_task(text: str) -> Task:
    [task] = parse_task_text(text).tasks
    return task


# -- bad input: every message names the file, the line and the field ------------------------


def test_malformed_yaml_has_line(tmp_path: Path) -> None:
    err = error_of(tmp_path, "name: x\nrun: echo hi\n  oops: : nope\n")
    assert err.line == 3
    assert "task.yaml:3:" in str(err)
    assert "not valid YAML" in str(err)


def test_unknown_top_level_field_suggests(tmp_path: Path) -> None:
    err = error_of(tmp_path, "name: x\nstup: pip install foo\nrun: echo\n")
    assert (err.field, err.line, err.hint) == ("stup", 2, "did you mean 'setup'?")
    assert str(err).endswith("task.yaml:2: stup: unknown field (did you mean 'setup'?)")


def test_unknown_resources_field(tmp_path: Path) -> None:
    err = error_of(tmp_path, "run: echo\nresources:\n  accelerators: V100\n  cpuz: 4\n")
    assert "task.yaml:4: resources.cpuz: unknown field (did you mean 'cpus'?)" in str(err)


def test_unknown_field_without_close_match_has_no_hint(tmp_path: Path) -> None:
    err = error_of(tmp_path, "run: echo\nzzzzzz: 1\n")
    assert err.hint is None and "task.yaml:2: zzzzzz: unknown field" in str(err)


@pytest.mark.parametrize(
    "text, where",
    [
        ("run: x\nresources:\n  any_of:\n    - infra: aws\n    - regoin: x\n",
         "task.yaml:5: resources.any_of[1].regoin: unknown field (did you mean 'region'?)"),
        ("run: x\nresources:\n  job_recovery:\n    max_restart_on_errors: 3\n",
         "task.yaml:4: resources.job_recovery.max_restart_on_errors: unknown field "
         "(did you mean 'max_restarts_on_errors'?)"),
        ("run: x\nfile_mounts:\n  /ckpt:\n    nmae: bucket\n",
         "task.yaml:4: file_mounts./ckpt.nmae: unknown field (did you mean 'name'?)"),
    ],
    ids=["any_of", "job_recovery", "file_mounts"],
)
def test_unknown_nested_fields(tmp_path: Path, text: str, where: str) -> None:
    assert where in str(error_of(tmp_path, text))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("run: x\nnum_nodes: two\n", "task.yaml:2: num_nodes: expected a whole number, got 'two'"),
        ("run: x\nnum_nodes: 0\n", "task.yaml:2: num_nodes: must be at least 1"),
        ("run: x\nresources: 5\n", "task.yaml:2: resources: expected a mapping, got 5"),
        ("run: [1, 2]\n", "task.yaml:1: run: expected a string, got a list"),
        ("run: x\nresources:\n  cpus: lots\n", "task.yaml:3: resources.cpus: expected a number"),
        ("run: x\nresources:\n  accelerators: 'V100:x'\n",
         "task.yaml:3: resources.accelerators: 'V100:x' is not an accelerator"),
        ("run: x\nresources:\n  use_spot: maybe\n",
         "task.yaml:3: resources.use_spot: expected true or false, got 'maybe'"),
        ("run: x\nresources:\n  job_recovery: FAILOVR\n",
         "task.yaml:3: resources.job_recovery: unknown recovery strategy 'FAILOVR'"),
        ("run: x\nfile_mounts:\n  /a:\n    name: b\n    mode: sync\n",
         "task.yaml:5: file_mounts./a.mode: expected 'MOUNT', 'COPY' or 'MOUNT_CACHED'"),
        ("run: x\nresources:\n  any_of:\n    - 5\n",
         "task.yaml:4: resources.any_of[0]: expected a mapping, got 5"),
        ("run: x\nresources:\n  job_recovery:\n    recover_on_exit_codes: [1, 300]\n",
         "task.yaml:4: resources.job_recovery.recover_on_exit_codes: exit codes are 0..255"),
        ("run: x\nenvs:\n  1X: 3\n", "task.yaml:3: envs.1X: not a valid environment variable name"),
        ("run: x\nresources:\n  infra: aws\n  region: us-east-1\n",
         "task.yaml:2: resources: give either infra or cloud/region/zone, not both"),
    ],
)
def test_wrong_types_are_plain_sentences(tmp_path: Path, text: str, expected: str) -> None:
    message = str(error_of(tmp_path, text))
    assert expected in message
    assert "validation error" not in message and "pydantic" not in message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    err = error_of(tmp_path, "- run: x\n")
    assert "task.yaml:1:" in str(err) and "must be a mapping" in str(err)


def test_missing_file() -> None:
    with pytest.raises(TaskError, match="no-such.yaml: file not found"):
        load_task_file("no-such.yaml")


def test_no_run_refused_at_launch(tmp_path: Path) -> None:
    [task] = load_task_file(write(tmp_path, "name: x\nsetup: echo\n")).tasks
    with pytest.raises(TaskError) as info:
        validate_for_launch(task)
    assert info.value.field == "run"
    assert str(info.value) == f"{tmp_path / 'task.yaml'}: run: a managed job needs a run command"


def test_missing_workdir_refused_at_launch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (tmp_path / "code").mkdir()  # next to the YAML: not where a relative workdir is looked up
    [task] = load_task_file(write(tmp_path, "workdir: ./code\nrun: echo\n")).tasks
    with pytest.raises(TaskError) as info:
        validate_for_launch(task)
    message = str(info.value)
    assert "task.yaml:1: workdir:" in message and str(cwd / "code") in message
    (cwd / "code").mkdir()
    validate_for_launch(task)  # relative to the cwd, as `sky launch` does, not the YAML's directory


def test_missing_local_mount_source(tmp_path: Path) -> None:
    [task] = load_task_file(write(tmp_path, "run: x\nfile_mounts:\n  /data: ./data\n")).tasks
    with pytest.raises(TaskError, match=r"task.yaml:3: file_mounts./data: local source .* does not exist"):
        validate_for_launch(task)


def test_empty_bucket_name(tmp_path: Path) -> None:
    text = "run: x\nfile_mounts:\n  /checkpoint:\n    name:\n    mode: MOUNT\n"
    [task] = load_task_file(write(tmp_path, text)).tasks
    with pytest.raises(TaskError, match="task.yaml:3: file_mounts./checkpoint: bucket name is empty"):
        validate_for_launch(task)


def test_empty_env_value(tmp_path: Path) -> None:
    path = write(tmp_path, "run: x\nenvs:\n  MODEL:\n")
    [task] = load_task_file(path).tasks
    with pytest.raises(TaskError) as info:
        validate_for_launch(task)
    assert "task.yaml:3: envs.MODEL: no value; pass --env MODEL=VALUE" in str(info.value)
    [task] = load_task_file(path, env_overrides={"MODEL": "gpt"}).tasks
    validate_for_launch(task)
    assert task.envs == {"MODEL": "gpt"}


def test_empty_secret_value(tmp_path: Path) -> None:
    path = write(tmp_path, "run: x\nsecrets:\n  WANDB_API_KEY:\n")
    with pytest.raises(TaskError, match="task.yaml:3: secrets.WANDB_API_KEY: no value given"):
        validate_for_launch(load_task_file(path).tasks[0])
    validate_for_launch(load_task_file(path, secret_overrides={"WANDB_API_KEY": "k"}).tasks[0])


def test_env_assignment() -> None:
    assert parse_env_assignment("K=V") == ("K", "V")
    assert parse_env_assignment("K=") == ("K", "")
    assert parse_env_assignment("K=a=b") == ("K", "a=b")
    with pytest.raises(TaskError) as info:
        parse_env_assignment("FOO")
    assert str(info.value) == "--env FOO: expected KEY=VALUE"
    with pytest.raises(TaskError, match="not a valid variable name"):
        parse_env_assignment("1X=2")


# -- parsing and normalised views -----------------------------------------------------------


def test_envs_coerced_like_skypilot() -> None:
    task = one_task("run: x\nenvs:\n  A: 1\n  B: true\n  C: 1.5\n  D:\n")
    assert task.envs == {"A": "1", "B": "True", "C": "1.5", "D": None}


def test_env_vars_fill_file_mounts() -> None:
    task = one_task("run: x\nenvs:\n  BUCKET: mine\nfile_mounts:\n  /ckpt:\n    name: ${BUCKET}-ckpt\n")
    [mount] = task.file_mount_list()
    assert (mount.target, mount.bucket, mount.mode) == ("/ckpt", "mine-ckpt", "MOUNT")


def test_accelerator_forms() -> None:
    def accels(value: str) -> list[dict[str, float] | None]:
        task = one_task(f"run: x\nresources:\n  accelerators: {value}\n")
        return [r.accelerators for r in task.resource_requests()]

    assert accels("V100") == [{"V100": 1}]
    assert accels("'A100:8'") == [{"A100": 8}]
    assert accels("{V100: 2}") == [{"V100": 2}]
    assert accels("{V100:1, A100:1}") == [{"V100": 1}, {"A100": 1}]
    assert accels("[V100, 'A100:2']") == [{"V100": 1}, {"A100": 2}]
    assert one_task("run: x\nresources:\n  accelerators: [V100, A100]\n").ordered


def test_any_of_merges_over_base() -> None:
    task = one_task(
        "run: x\nresources:\n  cloud: AWS\n  cpus: 4+\n  use_spot: false\n  any_of:\n"
        "    - region: us-east-1\n    - infra: gcp/us-central1\n      cpus: 8\n"
    )
    first, second = task.resource_requests()
    assert (first.cloud, first.region, first.cpus, first.cpus_at_least) == ("aws", "us-east-1", 4, True)
    assert (second.cloud, second.region, second.cpus, second.cpus_at_least) == ("gcp", "us-central1", 8, False)
    assert not first.use_spot and not task.ordered


def test_ordered_keeps_order() -> None:
    task = one_task("run: x\nresources:\n  ordered:\n    - infra: gcp\n    - infra: aws\n")
    assert task.ordered and [r.cloud for r in task.resource_requests()] == ["gcp", "aws"]


def test_infra_forms() -> None:
    def where(infra: str) -> tuple[str | None, str | None, str | None]:
        [r] = one_task(f"run: x\nresources:\n  infra: '{infra}'\n").resource_requests()
        return r.cloud, r.region, r.zone

    assert where("AWS/us-east-2/us-east-2a") == ("aws", "us-east-2", "us-east-2a")
    assert where("*/us-east-1") == (None, "us-east-1", None)
    assert where("k8s/my-ctx") == ("kubernetes", "my-ctx", None)


def test_memory_units() -> None:
    [r] = one_task("run: x\nresources:\n  memory: 32GB+\n  cpus: 4\n").resource_requests()
    assert (r.memory_gb, r.memory_at_least, r.cpus, r.cpus_at_least) == (32, True, 4, False)


def test_recovery_dict_and_max_wait() -> None:
    rec = one_task(
        "run: x\nresources:\n  job_recovery:\n    strategy: failover\n"
        "    max_restarts_on_errors: 3\n    recover_on_exit_codes: 33\n    max_wait: 10m\n"
    ).recovery()
    assert (rec.strategy, rec.max_restarts_on_errors, rec.recover_on_exit_codes, rec.max_wait_s) == (
        "FAILOVER", 3, [33], 600)
    assert one_task("run: x\n").recovery().strategy == "EAGER_NEXT_REGION"


def test_file_mount_spec_mode_is_case_insensitive() -> None:
    task = one_task("run: x\nfile_mounts:\n  /d:\n    name: b\n    mode: mount_cached\n    store: s3\n")
    spec = task.file_mounts["/d"]
    assert isinstance(spec, FileMountSpec) and spec.mode == "MOUNT_CACHED" and spec.store == "S3"


def test_every_skypilot_key_is_accepted() -> None:
    task = one_task(
        "name: t\nrun: x\nevent_callback: echo\nservice:\n  replicas: 2\ninputs:\n  s3://a: 1\n"
        "outputs:\n  s3://b: 1\nconfig:\n  aws: {}\nvolumes:\n  /v: vol\nfile_mounts_mapping: {}\n"
        "_metadata:\n  git: x\nresources:\n  disk_size: 256\n  disk_tier: best\n  ports: [8080]\n"
        "  labels:\n    team: ml\n  image_id: docker:ubuntu\n  autostop: 10\n  priority: 5\n"
        "  network_tier: best\n  _docker_login_config: {username: u, password: p, server: s}\n"
        "  _is_image_managed: true\n  _requires_fuse: true\n  _cluster_config_overrides: {}\n"
        "  accelerator_args:\n    tpu_vm: true\nfile_mounts:\n  /m:\n    name: b\n    _force_delete: true\n"
        "    config:\n      mount_cached:\n        transfers: 2\n    _bucket_sub_path: x\n"
    )
    dumped = task.model_dump(by_alias=True, exclude_none=True)
    assert "source_path" not in dumped
    assert dumped["resources"]["_docker_login_config"]["server"] == "s"
    assert dumped["_metadata"] == {"git": "x"}


def test_unsupported_lists_given_fields_only() -> None:
    task = one_task(
        "run: x\nsetup: y\nname: n\nnum_nodes: 2\nenvs:\n  A: b\nsecrets:\n  K: v\n"
        "service:\n  replicas: 2\nresources:\n  cpus: 4\n  accelerators: T4\n  ports: 8080\n"
        "  use_spot: true\n  job_recovery: failover\n  any_of:\n    - infra: aws\n      disk_tier: best\n"
    )
    notes = task.unsupported()
    assert not any(n.startswith("secrets") for n in notes)  # secrets are supported now
    assert "resources.ports: not supported yet" in notes
    assert "service: not supported yet" in notes
    assert "resources.any_of[0].disk_tier: not supported yet" in notes
    text = "\n".join(notes)
    for supported in ("num_nodes", "envs", "secrets", "setup", "run:", "cpus", "accelerators", "use_spot",
                      "job_recovery", "infra", "name"):
        assert supported not in text
    assert one_task("run: x\nresources:\n  cpus: 2\n").unsupported() == []


def test_plugin_recovery_setting_is_kept_not_refused() -> None:
    task = one_task("run: x\nresources:\n  job_recovery:\n    strategy: FAILOVER\n    zzz_plugin: 3\n")
    assert task.recovery().strategy == "FAILOVER"
    assert task.unsupported() == ["resources.job_recovery.zzz_plugin: not supported (plugin setting)"]


def test_pipeline_header_and_empty_documents() -> None:
    pipeline = parse_task_text("name: p\n---\n---\nname: a\nrun: x\n---\n# only a comment\n")
    assert pipeline.name == "p" and [t.name for t in pipeline.tasks] == ["a"]
    assert not pipeline.is_pipeline
    two = parse_task_text("run: a\n---\nrun: b\n")
    assert two.is_pipeline and two.name is None
    assert parse_task_text("name: only\n").tasks[0].name == "only"


def test_errors_in_later_documents_have_their_own_lines(tmp_path: Path) -> None:
    err = error_of(tmp_path, "name: p\n---\nrun: a\n---\nrun: b\nnum_nodes: x\n")
    assert "task.yaml:6: num_nodes:" in str(err)


def test_env_overrides_apply_to_every_task(tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\n---\nrun: a\nenvs:\n  K:\n---\nrun: b\n")
    pipeline = load_task_file(path, env_overrides={"K": "v"})
    assert [t.envs for t in pipeline.tasks] == [{"K": "v"}, {"K": "v"}]


def test_event_callback_is_supported_and_checked_at_parse_time(tmp_path: Path) -> None:
    """event_callback is run by the workers now: no longer named as unsupported, and a command
    bash cannot take (a NUL byte) or one too big to send with every event is refused here, with
    its line, not at the job's first status change."""
    task = one_task("run: x\nevent_callback: curl -d \"$JOB_STATUS\" https://example.com\n")
    assert task.event_callback == 'curl -d "$JOB_STATUS" https://example.com'
    assert task.unsupported() == []

    nul = error_of(tmp_path, 'run: x\nevent_callback: "echo \\0 done"\n')
    assert "task.yaml:2: event_callback:" in str(nul) and "NUL" in str(nul)
    huge = error_of(tmp_path, "run: x\nevent_callback: " + "x" * (MAX_EVENT_CALLBACK_BYTES + 1) + "\n")
    assert "task.yaml:2: event_callback:" in str(huge) and f"limit of {MAX_EVENT_CALLBACK_BYTES} bytes" in str(huge)
    assert "\n" not in str(nul) + str(huge)
