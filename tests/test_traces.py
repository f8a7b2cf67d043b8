"""spotctl/traces: trace files loaded with their bounds, their names read, priced from the
catalogs, and the local-cloud config generator (quick: files only)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spotctl.clouds.local_config import load_config
from spotctl.traces import TraceError, load_folder, load_trace, parse_name, price_trace, region_of_zone
from spotctl.traces.cloud_config import cloud_config, render

pytestmark = pytest.mark.quick


def write(folder: Path, name: str, data: object, gap: object = 60) -> Path:
    p = folder / name
    p.write_text(json.dumps({"metadata": {"gap_seconds": gap}, "data": data}))
    return p


def test_a_trace_loads_with_its_name_and_values(tmp_path: Path) -> None:
    t = load_trace(write(tmp_path, "us-east-1a_v100_1.json", [1, 0, 2]))
    assert (t.zone, t.name and t.name.token, t.name and t.name.count, t.gap_s) == ("us-east-1a", "v100", 1, 60.0)
    assert [t.value_at(s) for s in (0, 59, 60, 120, 180)] == [1, 1, 0, 2, 1]  # wraps at the end
    assert t.span_s == 180


@pytest.mark.parametrize(("name", "zone", "token", "count", "region"), [
    ("us-east-1a_v100_1.json", "us-east-1a", "v100", 1, "us-east-1"),
    ("us-west-2c_v100_16.json", "us-west-2c", "v100", 16, "us-west-2"),
    ("us-central1-a_c3-88.json", "us-central1-a", "c3-88", None, "us-central1"),
])
def test_names_say_zone_accelerator_and_count(name: str, zone: str, token: str, count: int | None,
                                              region: str) -> None:
    n = parse_name(name)
    assert (n.zone, n.token, n.count, n.region) == (zone, token, count, region)
    assert region_of_zone(zone) == region


@pytest.mark.parametrize(("name", "content", "says"), [
    ("us-east-1a_v100_1.json", "{not json", "not valid JSON"),
    ("us-east-1a_v100_1.json", json.dumps({"metadata": {"gap_seconds": 0}, "data": [1]}), "gap_seconds must be > 0"),
    ("us-east-1a_v100_1.json", json.dumps({"metadata": {"gap_seconds": "x"}, "data": [1]}), "must be a number"),
    ("us-east-1a_v100_1.json", json.dumps({"metadata": {"gap_seconds": 30}, "data": []}), "data is empty"),
    ("us-east-1a_v100_1.json", json.dumps({"metadata": {"gap_seconds": 30}, "data": [1, -1]}), "data[1]"),
    ("us-east-1a_v100_1.json", json.dumps({"metadata": {"gap_seconds": 30}, "data": [1, 2.5]}), "data[1]"),
    ("us-east-1a_v100_1.json", json.dumps({"metadata": {"gap_seconds": 30}, "data": [10**9]}), "data[0]"),
    ("us-east-1a_v100_1.json", json.dumps([1, 2]), "expected"),
    ("just-a-file.json", json.dumps({"metadata": {"gap_seconds": 30}, "data": [1]}), "ZONE_ACCELERATOR_COUNT"),
    ("us-east-1a_v100_1.txt", "", "must end in .json"),
])
def test_a_bad_trace_is_one_line_naming_the_file(tmp_path: Path, name: str, content: str, says: str) -> None:
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(TraceError) as err:
        load_trace(p)
    msg = str(err.value)
    assert "\n" not in msg and str(p) in msg and says in msg, msg


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import spotctl.traces.files as files
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 100)
    p = write(tmp_path, "us-east-1a_v100_1.json", [1] * 100)
    with pytest.raises(TraceError, match="bytes"):
        load_trace(p)


def test_a_folder_loads_every_trace_and_refuses_empty_or_missing(tmp_path: Path) -> None:
    write(tmp_path, "us-east-1a_v100_1.json", [1])
    write(tmp_path, "us-west-2b_v100_1.json", [0, 1])
    assert [t.zone for t in load_folder(tmp_path)] == ["us-east-1a", "us-west-2b"]
    with pytest.raises(TraceError, match="not a folder"):
        load_folder(tmp_path / "us-east-1a_v100_1.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TraceError, match="no trace file"):
        load_folder(tmp_path / "empty")


def test_traces_are_priced_from_the_catalog(tmp_path: Path) -> None:
    offer = price_trace(load_trace(write(tmp_path, "us-east-1a_v100_1.json", [1])))
    assert (offer.cloud, offer.region, offer.instance_type, offer.accelerators) == (
        "aws", "us-east-1", "p3.2xlarge", {"V100": 1})
    assert offer.spot_price and offer.ondemand_price and offer.spot_price < offer.ondemand_price


@pytest.mark.parametrize("name", ["mars-1a_v100_1.json", "us-east-1a_h900_3.json"])
def test_a_trace_no_catalog_prices_says_so(tmp_path: Path, name: str) -> None:
    with pytest.raises(TraceError, match="cannot price") as err:
        price_trace(load_trace(write(tmp_path, name, [1])))
    assert "\n" not in str(err.value)


def test_a_gcp_token_is_priced_by_family_and_size_when_the_catalog_has_it(tmp_path: Path) -> None:
    t = load_trace(write(tmp_path, "us-central1-a_c3-88.json", [1]))
    try:
        offer = price_trace(t)
    except TraceError as exc:  # the c3-highcpu-88 rows arrive with the economics branch
        assert "cannot price" in str(exc) and "c3-*-88" in str(exc)
    else:
        assert offer.cloud == "gcp" and offer.instance_type.startswith("c3-") and offer.instance_type.endswith("-88")


def test_the_generated_config_is_a_valid_local_cloud_config(tmp_path: Path) -> None:
    traces = [load_trace(write(tmp_path, n, [1, 0])) for n in ("us-east-1a_v100_1.json", "us-east-1c_v100_1.json",
                                                              "us-west-2b_v100_1.json")]
    path = tmp_path / "cloud" / "config.yaml"
    path.parent.mkdir()
    path.write_text(render(cloud_config(traces, scale=100, start_s=30)))
    cfg = load_config(path)
    assert sorted(cfg.regions) == ["us-east-1", "us-west-2"]
    east = cfg.regions["us-east-1"]
    assert east.zones == ["us-east-1a", "us-east-1c"] and east.trace and east.trace.scale == 100
    assert east.trace.traces["us-east-1c"].values == (1, 0)
    assert cfg.instance_types["p3.2xlarge"].accelerators == {"V100": 1}
    assert cfg.instance_types["p3.2xlarge"].ondemand_price == 3.06


def test_the_generator_command_writes_a_config_or_one_line_and_exit_2(tmp_path: Path) -> None:
    write(tmp_path, "us-east-1a_v100_1.json", [1, 0])
    out = tmp_path / "config.yaml"
    cmd = [sys.executable, "-m", "spotctl.traces.cloud_config", "--traces", str(tmp_path), "--scale", "60"]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(out.read_text())["regions"]["us-east-1"]["trace"]["scale"] == 60
    out.unlink()
    write(tmp_path, "us-east-1c_v100_1.json", [], gap=0)
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1 and "us-east-1c_v100_1.json" in bad.stderr
