"""Stores are the unit of work: one dynamic partition per store found in `dim_store`."""

import dagster as dg

from retail_assets.core.ids import InvalidIdentifier, validate_store_id

stores_partitions = dg.DynamicPartitionsDefinition(name="stores")
PARTITION_BATCH = 100  # partitions added per request


def new_store_partitions(instance: dg.DagsterInstance, store_ids: list[str]) -> list[str]:
    """The ids of dim_store that are not partitions yet; refuses the lot if any id could escape a path."""
    bad = []
    for sid in store_ids:
        try:
            validate_store_id(sid)
        except InvalidIdentifier:
            bad.append(sid)
    if bad:
        raise InvalidIdentifier(f"dim_store has store ids that cannot be partitions: {bad[:10]}; fix stores.csv")
    known = set(instance.get_dynamic_partitions(stores_partitions.name))
    return [s for s in store_ids if s not in known]


def batches(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + PARTITION_BATCH] for i in range(0, len(ids), PARTITION_BATCH)]
