"""The code location: `defs` is what `dagster dev -w workspace.yaml` loads. Nothing happens at import: the
rooms (retail_assets/defs/<domain>/) and the resources are built when Dagster loads the definitions."""

import dagster as dg

from retail_assets.defs.edge import definitions as edge
from retail_assets.defs.forecasting import definitions as forecasting
from retail_assets.defs.governance import definitions as governance
from retail_assets.defs.harmonize import definitions as harmonize
from retail_assets.defs.ingest import definitions as ingest
from retail_assets.defs.inventory import definitions as inventory
from retail_assets.defs.stores import definitions as stores
from retail_assets.resources import build_resources

ROOMS = (ingest, harmonize, stores, forecasting, inventory, edge, governance)


def build_definitions(resources: dict | None = None, loggers: dict | None = None) -> dg.Definitions:
    """The code location; tests pass their own resources (a data root, short folds) and run the same jobs;
    `retail run` adds its progress logger."""
    return dg.Definitions.merge(
        *(room.definitions() for room in ROOMS),
        dg.Definitions(resources=resources if resources is not None else build_resources(), loggers=loggers),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
