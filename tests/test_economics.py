"""bench/economics.py: `--quick` replays the shipped AWS traces through every policy with sane
figures, and a bad trace folder or flag is one clear line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick

REPO = Path(__file__).resolve().parents[1]
POLICIES = {"on-demand", "eager-next-region", "failover", "uniform-progress", "spotctl", "spotctl-multi-region",
            "optimal"}
MULTI = {"eager-next-region", "failover", "spotctl-multi-region"}


def economics(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/economics.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_quick_run_has_every_policy_with_sane_figures(tmp_path: Path) -> None:
    out = tmp_path / "econ.json"
    r = economics("--quick", "--json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(out.read_text())
    rows = doc["results"]
    assert {x["policy"] for x in rows} == POLICIES
    assert {(x["deadline_h"], x["changeover_h"]) for x in rows} == {(d, c) for d in (52, 70, 92)
                                                                      for c in (0.02, 0.2, 0.4)}
    multi_opt = {(m["traces"], m["deadline_h"], m["changeover_h"]): m["cost_vs_ondemand"]
                 for m in doc["multi_zone_optimal"]}
    by = {(x["traces"], x["deadline_h"], x["changeover_h"], x["policy"]): x for x in rows}
    for x in rows:
        assert set(x) == {"policy", "traces", "deadline_h", "changeover_h", "runs", "cost_vs_ondemand",
                          "miss_rate", "vs_optimal"}
        assert x["runs"] >= 1 and 0 < x["cost_vs_ondemand"] <= 1.5 and 0 <= x["miss_rate"] <= 1
        key = (x["traces"], x["deadline_h"], x["changeover_h"])
        if x["policy"] == "on-demand":
            assert x["cost_vs_ondemand"] == pytest.approx(1.0)
        if x["policy"] in ("uniform-progress", "spotctl", "spotctl-multi-region"):
            assert x["miss_rate"] == 0, x
        if x["miss_rate"] == 0:
            floor = multi_opt[key] if x["policy"] in MULTI else by[(*key, "optimal")]["cost_vs_ondemand"]
            assert x["cost_vs_ondemand"] >= floor - 1e-6, x
            assert x["vs_optimal"] >= 1 - 1e-6, x
    # Plain spot jobs (no deadline), beside "results": both rankings, every changeover, sane figures.
    plain = doc["no_deadline"]
    assert {(x["ranking"], x["changeover_h"]) for x in plain} == {(r, c) for r in ("price", "expected-cost")
                                                                  for c in (0.02, 0.2, 0.4)}
    for x in plain:
        assert set(x) == {"traces", "ranking", "changeover_h", "runs", "cost_vs_ondemand", "finish_h",
                          "preemptions", "unfinished"}
        assert x["runs"] >= 1 and 0 <= x["unfinished"] <= 1 and x["preemptions"] >= 0
        if x["unfinished"] < 1:
            assert 0 < x["cost_vs_ondemand"] <= 1 and x["finish_h"] >= 48


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


@pytest.mark.parametrize("name,text,says", [
    ("us-east-1a_v100_1.json", "{not json", "not valid JSON"),
    ("us-east-1a_v100_1.json", '{"metadata": {"gap_seconds": 60}, "data": []}', "empty"),
    ("us-east-1a_v100_1.json", '{"metadata": {"gap_seconds": 0}, "data": [1, 0]}', "gap_seconds"),
    ("us-east-1a_v100_1.json", '{"metadata": {"gap_seconds": 60}, "data": [1, -1]}', "whole number in 0.."),
    ("mars-1a_v100_1.json", '{"metadata": {"gap_seconds": 60}, "data": [1, 0]}', "cannot price"),
    ("notes.json", '{"metadata": {"gap_seconds": 60}, "data": [1, 0]}', "ZONE_ACCELERATOR_COUNT"),
])
def test_a_bad_trace_is_one_line_and_exit_2(tmp_path: Path, name: str, text: str, says: str) -> None:
    write(tmp_path / "t", name, text)
    r = economics("--traces", str(tmp_path / "t"), "--offsets", "1", "--no-report")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("args", [["--traces", "no/such/folder"], ["--deadlines", "40"], ["--offsets", "x"],
                                  ["--bogus"], ["--memory-h", "0"], ["--restart-budget", "maybe"]])
def test_bad_flags_are_one_line_and_exit_2(args: list[str]) -> None:
    r = economics(*args, "--no-report")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("case", ["synthetic-scarce", "synthetic-steady", "synthetic-short"])
def test_synthetic_traces_spotctl_is_never_late(tmp_path: Path, case: str) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from econ_synthetic import write_case
    finally:
        sys.path.remove(str(REPO / "bench"))
    folder = write_case(tmp_path, case)
    out = tmp_path / "econ.json"
    r = economics("--traces", str(folder), "--offsets", "2", "--deadlines", "52,70", "--changeovers", "0.2,0.4",
                  "--no-report", "--json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(out.read_text())["results"]
    for x in rows:
        if x["policy"] in ("spotctl", "spotctl-multi-region", "uniform-progress"):
            assert x["miss_rate"] == 0, x
        assert x["traces"] == case
