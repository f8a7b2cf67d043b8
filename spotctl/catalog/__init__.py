"""What the clouds sell (shared): the catalogs of offerings and prices, read without an API call
(AWS and GCP; the local cloud's come from its config). A catalog is the shipped one (dated by its
basis year) or one that `spotctl catalog refresh` fetched into the state dir (dated by its fetch;
dated.py). The clouds read them (clouds/aws_catalog.py) and so does `status` for its ON-DEMAND
column (clouds/ondemand.py)."""

from spotctl.catalog.csv_offerings import CatalogError, catalog_regions, has_catalog, load_offerings
from spotctl.catalog.dated import MAX_PRICE, CatalogInfo, catalog_info, refreshed_path, write_refreshed

__all__ = [
    "MAX_PRICE",
    "CatalogError",
    "CatalogInfo",
    "catalog_info",
    "catalog_regions",
    "has_catalog",
    "load_offerings",
    "refreshed_path",
    "write_refreshed",
]
