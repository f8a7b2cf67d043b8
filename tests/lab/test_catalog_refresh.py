# ruff: noqa: F811  (pytest fixtures imported from moto_lab)
"""`spotctl catalog refresh` against fakes of the clouds' price APIs, as a user sees it: the
progress and result lines and exit code, the dated catalog file in the state dir, dry-run's
prices and their age line; a refresh that fails (throttled past the retries, one region that
does not answer, no credentials, an absurd price) keeps the last good catalog byte for byte.

AWS: moto for EC2's spot price history (it answers 0.00001 for every type a zone offers),
price_apis.FakePriceList for the Price List (moto has none). GCP: price_apis.FakeCloudCatalog
for the Cloud Billing Catalog, reached by google-cloud-billing's REST client over http."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from moto_lab import aws_env, failing, moto_server, reset_moto  # noqa: F401 - fixtures
from price_apis import FakeCloudCatalog, FakePriceList, served, sku

from spotctl.catalog import load_offerings, refreshed_path
from spotctl.cli.main import cli
from spotctl.clouds import call_retry

TODAY = datetime.now(UTC).date().isoformat()
GCP_REGIONS = list(dict.fromkeys(o.region for o in load_offerings("gcp")))
FAMILIES = ["E2 Instance", "N2 Instance", "N1 Predefined Instance", "Compute optimized", "C3 Instance", "G2 Instance",
            "A2 Instance", "A3 Instance"]
GPUS = ["Nvidia Tesla T4 GPU", "Nvidia Tesla V100 GPU", "Nvidia Tesla P100 GPU", "Nvidia L4 GPU",
        "Nvidia Tesla A100 GPU", "Nvidia A100 80GB GPU", "Nvidia H100 80GB GPU"]
MISSING_AWS = ("p5.48xlarge", "us-west-2")
"""The one (type, region) the fake Price List does not know: it keeps its shipped price."""


def gce_skus() -> list[dict]:
    """Core 0.03 / RAM 0.004 / GPU 0.5 per hour on demand, 0.01 / 0.001 / 0.2 as Spot, in every
    region; and SKUs spotctl must not use (a commitment, a custom core, storage)."""
    out = []
    for spot, (core, ram, gpu) in ((False, (0.03, 0.004, 0.5)), (True, (0.01, 0.001, 0.2))):
        for family in FAMILIES:
            out.append(sku(f"{family} Core running in Americas", "CPU", GCP_REGIONS, core, spot=spot))
            out.append(sku(f"{family} Ram running in Americas", "RAM", GCP_REGIONS, ram, spot=spot, unit="GiBy.h"))
        out += [sku(f"{name} running in Americas", "GPU", GCP_REGIONS, gpu, spot=spot) for name in GPUS]
    custom = sku("N2 Custom Instance Core running in Americas", "CPU", GCP_REGIONS, 9.0)
    commitment = sku("Commitment v1: N2 Cpu in Americas for 1 Year", "CPU", GCP_REGIONS, 0.0001)
    commitment["category"]["usageType"] = "Commit1Yr"
    storage = sku("Storage PD Capacity", "SSD", GCP_REGIONS, 0.17, unit="GiBy.mo")
    storage["category"]["resourceFamily"] = "Storage"
    return [custom, commitment, storage, *out]


def aws_list_prices() -> dict[tuple[str, str], float]:
    """Every shipped (type, region) at 90% of its shipped on-demand price, but MISSING_AWS."""
    return {(o.instance_type, o.region): round(o.ondemand_price * 0.9, 4) for o in load_offerings("aws")
            if o.ondemand_price and (o.instance_type, o.region) != MISSING_AWS}


@dataclass
class Lab:
    home: Path
    env: dict[str, str]
    price_list: FakePriceList
    billing: FakeCloudCatalog

    def run(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, list(args), env=self.env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def lab(moto_server: str, aws_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    reset_moto(moto_server)
    monkeypatch.setattr(call_retry, "PAUSE_S", 0.05)  # the retries' pauses, shortened
    price_list, billing = FakePriceList(prices=aws_list_prices()), FakeCloudCatalog(skus=gce_skus())
    with served(price_list.app()) as list_url, served(billing.app()) as billing_url:
        env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local,aws,gcp",
               "SPOTCTL_AWS_ENDPOINT": moto_server, "SPOTCTL_AWS_PRICING_ENDPOINT": list_url,
               "SPOTCTL_GCP_BILLING_ENDPOINT": billing_url}
        yield Lab(tmp_path / "home", env, price_list, billing)


def flat(text: str) -> str:
    return " ".join(text.split())


def rows(path: Path, instance_type: str, region: str) -> set[tuple[str, str]]:
    """(on-demand, spot) of a refreshed catalog's rows of one type and region."""
    out = set()
    for line in path.read_text().splitlines():
        cells = line.split(",")
        if not line.startswith("#") and cells[0] == instance_type and cells[5] == region:
            out.add((cells[7], cells[8]))
    return out


def test_refresh_both_clouds_then_dry_run_uses_the_dated_prices(lab: Lab) -> None:
    code, out, err = lab.run("catalog", "refresh")
    assert code == 0, out + err
    # progress per cloud and region, then one result line per cloud
    assert "aws: on-demand prices 1/" in err and "aws us-east-1 (1/6):" in err and "aws ap-northeast-1 (6/6):" in err
    assert "gcp: Compute Engine SKUs, page 1" in err and "gcp us-central1:" in err
    assert f"wrote {refreshed_path(lab.home, 'aws')}" in flat(out)
    assert "aws: " in out and "kept at shipped figures" in out  # MISSING_AWS, and zones moto does not offer
    assert f"wrote {refreshed_path(lab.home, 'gcp')}" in flat(out)

    aws_csv, gcp_csv = refreshed_path(lab.home, "aws"), refreshed_path(lab.home, "gcp")
    assert f"#@ fetched: {TODAY}T" in aws_csv.read_text()
    assert "#@ source: the AWS Price List (on-demand) and EC2 spot price history" in aws_csv.read_text()
    m6i = rows(aws_csv, "m6i.large", "us-east-1")  # 90% of 0.096; moto's spot price where it offers the type
    assert {od for od, _ in m6i} == {"0.0864"} and ("0.0864", "1e-05") in m6i
    assert {od for od, _ in rows(aws_csv, *MISSING_AWS)} == {"98.32"}  # not in the Price List: the shipped price
    # GCP: cores x core + GiB x RAM (+ GPUs x GPU); e2-medium bills one of its two shared vCPUs
    assert rows(gcp_csv, "n2-standard-4", "us-central1") == {("0.184", "0.056")}
    assert rows(gcp_csv, "e2-medium", "us-central1") == {("0.046", "0.014")}
    assert rows(gcp_csv, "n1-standard-4", "us-east4") == {("0.68", "0.255")}

    code, out, err = lab.run("launch", "--dry-run", "--cloud", "gcp", "-t", "n2-standard-4", "--region", "us-central1",
                             "echo hi")
    assert code == 0, out + err
    assert "$0.0560/h     $0.0560    $0.1840" in out
    assert f"Prices: gcp: prices from the Cloud Billing Catalog (Compute Engine SKUs), {TODAY}, 0 days old" in flat(out)
    code, out, _ = lab.run("launch", "--dry-run", "--cloud", "aws", "-t", "m6i.large", "--region", "us-east-1",
                           "echo hi")
    assert code == 0 and "$0.0864" in out
    assert (f"Prices: aws: prices from the AWS Price List (on-demand) and EC2 spot price history, {TODAY}, "
            "0 days old") in flat(out)
    code, out, _ = lab.run("catalog", "show")
    assert code == 0 and flat(out).count(f"{TODAY}, 0 days old") == 2


def test_a_throttled_call_is_asked_again(lab: Lab) -> None:
    lab.billing.throttle = 2
    code, out, err = lab.run("catalog", "refresh", "--cloud", "gcp")
    assert code == 0, out + err
    assert lab.billing.calls >= 4  # two 429s, then the services and the SKUs' pages
    assert refreshed_path(lab.home, "gcp").is_file()


def test_a_failing_refresh_keeps_the_last_good_catalog(lab: Lab) -> None:
    code, out, err = lab.run("catalog", "refresh", "--cloud", "gcp")
    assert code == 0, out + err
    good = refreshed_path(lab.home, "gcp").read_bytes()

    lab.billing.fail_always = True
    code, out, err = lab.run("catalog", "refresh", "--cloud", "gcp")
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, err
    assert errors[0].startswith("Error: gcp ") and "429" in errors[0] and "kept the last good catalog" in errors[0]
    assert f"prices from the Cloud Billing Catalog (Compute Engine SKUs), {TODAY}, 0 days old" in errors[0]
    assert refreshed_path(lab.home, "gcp").read_bytes() == good
    assert sorted(p.name for p in refreshed_path(lab.home, "gcp").parent.iterdir()) == ["gcp.csv"]


def test_one_region_that_does_not_answer_fails_the_whole_cloud(lab: Lab) -> None:
    with failing("eu-west-1", "describe_spot_price_history", "RequestLimitExceeded"):
        code, out, err = lab.run("catalog", "refresh", "--cloud", "aws")
    assert code == 1, out + err
    assert "aws us-east-1 (1/6):" in err  # the regions before it answered ...
    error = flat(err.split("Error:", 1)[1])
    assert "eu-west-1" in error and "kept the last good catalog (shipped catalog, 2024 basis" in error
    assert not refreshed_path(lab.home, "aws").exists()  # ... and nothing half was written


def test_an_absurd_price_is_refused(lab: Lab) -> None:
    lab.price_list.prices[("t3.medium", "us-east-1")] = 41_600.0  # cents taken for dollars, say
    code, out, err = lab.run("catalog", "refresh", "--cloud", "aws")
    assert code == 1
    assert "t3.medium" in flat(err) and "is not a price" in flat(err)
    assert not refreshed_path(lab.home, "aws").exists()


def test_no_credentials_is_one_line(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    from spotctl.clouds import aws_clients

    aws_clients.forget_clients()
    code, out, err = lab.run("catalog", "refresh", "--cloud", "aws")
    assert code == 1
    assert flat(err).startswith("aws: asking its price APIs ... Error: aws: no AWS credentials found"), err
    assert lab.price_list.calls == 0 and not refreshed_path(lab.home, "aws").exists()
    code, out, err = lab.run("catalog", "refresh")  # by default a cloud without credentials is skipped
    assert code == 0, out + err
    assert "aws: skipped, no AWS credentials found" in flat(err) and refreshed_path(lab.home, "gcp").is_file()
