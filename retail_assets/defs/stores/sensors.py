"""A store that appears in dim_store becomes a partition and gets its first training."""

import dagster as dg

from retail_assets.core.warehouse import connect_readonly
from retail_assets.defs.partitions import batches, new_store_partitions, stores_partitions
from retail_assets.resources import RetailDataRoot


@dg.sensor(minimum_interval_seconds=120, job_name="store_pipeline",
           description="A store that appears in dim_store becomes a partition and gets its first training.")
def new_stores_sensor(context: dg.SensorEvaluationContext, data_root: RetailDataRoot):
    try:
        with connect_readonly(data_root.layout.warehouse, wait_seconds=0) as con:  # busy: next tick
            ids = [r[0] for r in con.execute("select store_id from dim_store order by 1").fetchall()]
    except Exception as exc:  # the warehouse is being written (one writer): try next tick
        return dg.SkipReason(f"warehouse not readable now: {type(exc).__name__}")
    new = new_store_partitions(context.instance, ids)
    if not new:
        return dg.SkipReason(f"all {len(ids)} stores of dim_store are partitions")
    return dg.SensorResult(
        dynamic_partitions_requests=[stores_partitions.build_add_request(b) for b in batches(new)],
        run_requests=[dg.RunRequest(partition_key=s, run_key=f"first-train-{s}",
                                    tags={"retail/trigger": "new_store"}) for s in new],
    )
