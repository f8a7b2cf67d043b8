"""The shipped GCP catalog parses, and its rows are sane (its zones are the lab's fake GCE's)."""

from collections import Counter

from spotctl.catalog import catalog_regions, load_offerings

REGIONS = {
    "us-central1": {"us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"},
    "us-east1": {"us-east1-b", "us-east1-c", "us-east1-d"},
    "us-east4": {"us-east4-a", "us-east4-b", "us-east4-c"},
    "us-west1": {"us-west1-a", "us-west1-b"},
    "europe-west4": {"europe-west4-a", "europe-west4-b", "europe-west4-c"},
    "asia-east1": {"asia-east1-a", "asia-east1-b"},
}


def test_gcp_catalog_parses_and_is_sane():
    offerings = load_offerings("gcp")
    assert offerings
    assert set(catalog_regions("gcp")) == set(REGIONS)
    for o in offerings:
        assert o.cloud == "gcp"
        assert o.zone in REGIONS[o.region], (o.instance_type, o.zone)
        assert o.cpus > 0 and o.memory_gb > 0
        assert o.ondemand_price and o.spot_price
        assert 0 < o.spot_price < o.ondemand_price, o.instance_type
    # No (instance_type, accelerator, zone) twice, i.e. no duplicate row per region.
    keys = Counter((o.instance_type, tuple(sorted(o.accelerators)), o.zone) for o in offerings)
    assert max(keys.values()) == 1
    # Every region has CPU-only types.
    for region in REGIONS:
        assert any(o.region == region and not o.accelerators for o in offerings), region


def test_gcp_catalog_known_shapes():
    by_key = {(o.instance_type, tuple(o.accelerators.items())): o for o in load_offerings("gcp")}
    assert (by_key[("n1-standard-8", (("V100", 1),))].cpus, by_key[("n1-standard-8", (("V100", 1),))].memory_gb) == (8, 30)
    assert (by_key[("a2-highgpu-1g", (("A100", 1),))].cpus, by_key[("a2-highgpu-1g", (("A100", 1),))].memory_gb) == (12, 85)
    assert (by_key[("g2-standard-8", (("L4", 1),))].cpus, by_key[("g2-standard-8", (("L4", 1),))].memory_gb) == (8, 32)
    assert (by_key[("a3-highgpu-8g", (("H100", 8),))].cpus, by_key[("a3-highgpu-8g", (("H100", 8),))].memory_gb) == (208, 1872)
