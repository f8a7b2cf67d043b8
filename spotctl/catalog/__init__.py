"""What the clouds sell (shared): the bundled catalogs of offerings and on-demand prices, read
without an API call (AWS and GCP; the local cloud's come from its config). The clouds read them
(clouds/aws_catalog.py) and so does `status` for its ON-DEMAND column (clouds/ondemand.py)."""

from spotctl.catalog.csv_offerings import catalog_regions, load_offerings

__all__ = [
    "catalog_regions",
    "load_offerings",
]
