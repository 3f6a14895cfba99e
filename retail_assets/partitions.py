"""Stores are the unit of work: one dynamic partition per store found in `dim_store`."""

import dagster as dg

stores_partitions = dg.DynamicPartitionsDefinition(name="stores")
