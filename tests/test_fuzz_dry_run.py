"""Random task YAML into `spotctl launch --dry-run`: whatever the input, the CLI answers with
exit 0 or 2 (one error line), quickly and without a big allocation; never a traceback.

The generator knows the real schema (keys come from the models), so most examples get deep
into parsing and placement, with wrong types, huge/negative/NaN numbers, long and odd unicode
strings, hostile mount targets, deep nesting and alias bombs mixed in."""

from __future__ import annotations

import gc
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from spotctl.cli.main import cli
from spotctl.task import MAX_SHOWN_PROBLEMS, RECOVERY_KEYS, RESOURCE_KEYS, STORAGE_KEYS, TASK_KEYS

PER_EXAMPLE_CPU_S = 5.0
"""CPU seconds of this process: the bound that catches hangs and blow-ups (the alias bomb this
guards against took 120 s) without failing when the machine is busy: a file near the 1 MiB
limit took up to 2.5 s on a loaded 2-core machine."""
PER_EXAMPLE_WALL_S = 10.0
MAX_RSS_GROWTH_MB = 200

WORDS = st.sampled_from([
    "4", "4+", "0", "-1", "nan", ".inf", "32GB+", "1e400", "V100", "V100:2", "T4:0.5", "V100:-2",
    "V100:nan", "{V100, A100}", "[T4, V100]", "aws", "local", "local/local-east", "gcp/*/us-east4-b",
    "10m", "1h30m", "99999999999d", "FAILOVER", "EAGER_NEXT_REGION", "NONE", "MOUNT", "COPY",
    "~/../../x", "../x", "/data", "~", "/", "$HOME", "${X}/..", "s3://bucket/x", "local://b", "./x",
    "8080", "1-65536", "echo hi", "my-job", "bad name", "\x1b[31mred", "line\nbreak", "é中文🙂",
])
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-3, max_value=2000),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, WORDS, st.text(max_size=40),
                    st.integers(min_value=1, max_value=300_000).map(lambda n: "x" * n))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(WORDS, st.text(max_size=8)), inner, max_size=4)),
    max_leaves=12)


def _maybe_keys(keys: frozenset[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={k: values for k in sorted(keys)})


RECOVERY = st.one_of(WORDS, _maybe_keys(RECOVERY_KEYS, st.one_of(NUMBERS, WORDS, st.lists(NUMBERS, max_size=3))))
RESOURCE_VALUES = st.one_of(SCALARS, st.lists(WORDS, max_size=3), st.dictionaries(WORDS, NUMBERS, max_size=3))
RESOURCES = _maybe_keys(RESOURCE_KEYS - {"any_of", "ordered", "job_recovery"}, RESOURCE_VALUES).flatmap(
    lambda base: st.fixed_dictionaries({}, optional={
        "job_recovery": RECOVERY,
        "any_of": st.lists(_maybe_keys(frozenset({"cpus", "accelerators", "infra", "cloud"}), RESOURCE_VALUES),
                           max_size=3),
    }).map(lambda extra: {**base, **extra}))
MOUNTS = st.dictionaries(WORDS, st.one_of(WORDS, _maybe_keys(STORAGE_KEYS, SCALARS)), max_size=3)
TASKS = _maybe_keys(TASK_KEYS - {"resources", "file_mounts"}, VALUES).flatmap(
    lambda base: st.fixed_dictionaries({"run": st.one_of(WORDS, SCALARS)}, optional={
        "resources": st.one_of(RESOURCES, SCALARS),
        "file_mounts": st.one_of(MOUNTS, SCALARS),
        "num_nodes": st.one_of(NUMBERS, WORDS),
        "envs": st.dictionaries(WORDS, SCALARS, max_size=4),
        "secrets": st.one_of(st.dictionaries(WORDS, SCALARS, max_size=3), st.lists(WORDS, max_size=3)),
    }).map(lambda extra: {**base, **extra}))


def _laughs(levels: int, width: int) -> str:
    lines = ["l0: &l0 [lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "config:\n" + "".join(f"  {line}\n" for line in lines) + "run: echo\n"


HOSTILE = st.one_of(
    st.builds(_laughs, st.integers(1, 12), st.integers(1, 12)),
    st.integers(1, 20_000).map(lambda n: "run: " + "[" * n + "]" * n + "\n"),
    st.integers(1, 3000).map(lambda n: "config: " + "{a: " * n + "1" + "}" * n + "\nrun: x\n"),
    st.sampled_from(["config: &a {x: *a}\nrun: x\n", "run: echo \x00\n", "run: [\n", "- a\n- b\n",
                     "run: x\n---\nrun: y\n", "\ufeffrun: x\n", "run: !!python/object:os.system x\n",
                     "run: x\nnum_nodes: " + "9" * 5000 + "\n", "&a a: *a\n", "? [a, b]\n: c\n"]),
)


def _text(task: Any) -> str:
    return yaml.safe_dump(task, allow_unicode=True, sort_keys=False)


DOCUMENTS = st.one_of(TASKS.map(_text), TASKS.map(_text), HOSTILE,
                      st.tuples(TASKS.map(_text), st.text(max_size=30)).map("".join))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


@pytest.fixture(autouse=True)
def _suite_heap_frozen() -> Iterator[None]:
    """Every example runs two full collections (the test's and the one each command ends
    with, cli/common.py), and a full collection walks every live object of this process. Alone
    the file takes half a minute; after the rest of the suite (its clients, servers and
    results still alive) the same 200 examples took 160 s, nearly all in walking objects that
    are not the command's. gc.freeze() sets the objects alive before the test aside, so each
    collection (and the CPU bound below) sees the command's own objects only, as a user's
    one-shot `spotctl launch --dry-run` process would."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@settings(max_examples=200, deadline=None, database=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(DOCUMENTS)
def test_dry_run_survives_random_task_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local"}
    gc.collect()  # the command ends with gc.collect(): keep the test's own garbage out of its time
    rss_before = _rss_mb()
    start, cpu_start = time.monotonic(), time.process_time()
    result = CliRunner().invoke(cli, ["launch", "--dry-run", str(path)], env=env)
    took, cpu = time.monotonic() - start, time.process_time() - cpu_start
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}")
    assert result.exit_code in (0, 2), (result.exit_code, result.output[-2000:])
    assert "Traceback" not in result.output
    if result.exit_code == 2:  # one line per problem (every problem of the file), and a bounded number
        assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) <= MAX_SHOWN_PROBLEMS + 1, (
            result.stderr)
    assert cpu < PER_EXAMPLE_CPU_S and took < PER_EXAMPLE_WALL_S, (
        f"{cpu:.2f} s CPU, {took:.2f} s on {len(text)} chars: {text[:300]!r}")
    assert _rss_mb() - rss_before < MAX_RSS_GROWTH_MB
