"""The clouds' price APIs without the clouds: small local fakes (flask, 127.0.0.1) of the two that
moto and the fake GCE do not play, for `spotctl catalog refresh`'s tests.

- FakePriceList: AWS's Price List query API (JSON 1.1 over POST, X-Amz-Target
  AWSPriceListService.GetProducts), answering get_products with Price List documents of
  Linux on-demand prices, paginated (NextToken); moto has no `pricing` service.
- FakeCloudCatalog: the Cloud Billing Catalog REST API v1 (GET /v1/services,
  GET /v1/services/{id}/skus), answering with Compute Engine SKUs (core, RAM and GPU parts, on
  demand and Spot), paginated (pageToken), for google-cloud-billing's REST transport.

Tests steer what they answer (`prices`, `skus`) and how they fail (`throttle` n calls, then
answer; `fail_always`). Both count the calls they served.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request
from werkzeug.serving import make_server

COMPUTE_ID = "6F81-5844-456A"


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@dataclass
class FakePriceList:
    prices: dict[tuple[str, str], float] = field(default_factory=dict)
    """{(instance_type, region): USD/hour}."""
    throttle: int = 0
    """Answer this many calls with ThrottlingException first."""
    fail_always: bool = False
    calls: int = 0
    page_size: int = 2
    """Products per page at most (small, so paging is exercised)."""

    def app(self) -> Flask:
        app = Flask("fake-price-list")

        @app.post("/")
        def root() -> Response:
            self.calls += 1
            target = request.headers.get("X-Amz-Target", "")
            if self.fail_always or self.throttle > 0:
                self.throttle = max(self.throttle - 1, 0)
                return _aws_error("ThrottlingException", "Rate exceeded")
            if target != "AWSPriceListService.GetProducts":
                return _aws_error("InvalidParameterException", f"unsupported {target}")
            return self._get_products(json.loads(request.get_data() or b"{}"))

        return app

    def _get_products(self, body: dict[str, Any]) -> Response:
        filters = {f["Field"]: f["Value"] for f in body.get("Filters", [])}
        if filters.get("operatingSystem") != "Linux" or filters.get("tenancy") != "Shared" \
                or filters.get("locationType") != "AWS Region":
            return _json({"FormatVersion": "aws_v1", "PriceList": []})
        rows = sorted((t, r, p) for (t, r), p in self.prices.items() if t == filters.get("instanceType"))
        start = int(body.get("NextToken") or 0)
        size = min(int(body.get("MaxResults", 100)), self.page_size)
        page = rows[start:start + size]
        out: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(_product(*row)) for row in page]}
        if start + size < len(rows):
            out["NextToken"] = str(start + size)
        return _json(out)


def _product(instance_type: str, region: str, price: float) -> dict[str, Any]:
    sku = f"SKU{abs(hash((instance_type, region))) % 10**8}"
    return {
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": instance_type, "regionCode": region, "operatingSystem": "Linux", "tenancy": "Shared",
            "preInstalledSw": "NA", "capacitystatus": "Used", "licenseModel": "No License required",
            "locationType": "AWS Region"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {"priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
            "unit": "Hrs", "description": f"${price} per On Demand Linux {instance_type} Instance Hour",
            "pricePerUnit": {"USD": f"{price:.10f}"}}}}}},
    }


def _aws_error(code: str, message: str) -> Response:
    return Response(json.dumps({"__type": code, "message": message}), status=400,
                    content_type="application/x-amz-json-1.1")


def _json(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), content_type="application/x-amz-json-1.1")


def sku(description: str, group: str, regions: list[str], price: float, *, spot: bool = False,
        unit: str = "h") -> dict[str, Any]:
    """One Compute Engine SKU as the Cloud Billing Catalog lists it."""
    units, nanos = int(price), round((price - int(price)) * 1e9)
    prefix = "Spot Preemptible " if spot else ""
    return {
        "name": f"services/{COMPUTE_ID}/skus/{abs(hash((description, spot, tuple(regions)))) % 10**12:012d}",
        "skuId": "0000-0000-0000",
        "description": f"{prefix}{description}",
        "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": "Compute", "resourceGroup": group,
                     "usageType": "Preemptible" if spot else "OnDemand"},
        "serviceRegions": regions,
        "pricingInfo": [{"summary": "", "pricingExpression": {
            "usageUnit": unit, "displayQuantity": 1, "baseUnit": "s",
            "tieredRates": [{"startUsageAmount": 0, "unitPrice": {"currencyCode": "USD", "units": str(units),
                                                                   "nanos": nanos}}]},
            "currencyConversionRate": 1, "effectiveTime": "2026-12-01T00:00:00Z"}],
        "serviceProviderName": "Google",
    }


@dataclass
class FakeCloudCatalog:
    skus: list[dict[str, Any]] = field(default_factory=list)
    throttle: int = 0
    fail_always: bool = False
    calls: int = 0
    page_size: int = 3

    def app(self) -> Flask:
        app = Flask("fake-cloud-billing")

        @app.before_request
        def failing() -> Response | None:
            self.calls += 1
            if self.fail_always or self.throttle > 0:
                self.throttle = max(self.throttle - 1, 0)
                return _gcp_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Read requests'")
            return None

        @app.get("/v1/services")
        def services() -> Response:
            listed = [{"name": "services/0000-0000-0001", "serviceId": "0000-0000-0001", "displayName": "BigQuery",
                       "businessEntityName": "businessEntities/GCP"},
                      {"name": f"services/{COMPUTE_ID}", "serviceId": COMPUTE_ID, "displayName": "Compute Engine",
                       "businessEntityName": "businessEntities/GCP"}]
            return _page("services", listed)

        @app.get("/v1/services/<service>/skus")
        def skus(service: str) -> Response:
            if service != COMPUTE_ID:
                return _gcp_error(404, "NOT_FOUND", f"service {service} not found")
            return _page("skus", self.skus, self.page_size)

        return app


def _page(key: str, items: list[dict[str, Any]], size: int = 100) -> Response:
    start = int(request.args.get("pageToken") or 0)
    size = min(int(request.args.get("pageSize") or size), size)
    out: dict[str, Any] = {key: items[start:start + size], "nextPageToken": ""}
    if start + size < len(items):
        out["nextPageToken"] = str(start + size)
    return Response(json.dumps(out), content_type="application/json")


def _gcp_error(code: int, status: str, message: str) -> Response:
    return Response(json.dumps({"error": {"code": code, "message": message, "status": status}}), status=code,
                    content_type="application/json")
