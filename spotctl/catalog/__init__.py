"""What the clouds sell (shared): offerings and prices from the bundled catalogs (csv_offerings), and
the on-demand price lookup for `status`'s ON-DEMAND and SAVED columns (`spotctl.catalog.ondemand`,
imported by its module path: it asks the clouds, which read this package's catalogs).
"""

from spotctl.catalog.csv_offerings import catalog_regions, load_offerings

__all__ = [
    "catalog_regions",
    "load_offerings",
]
