"""Raw landing: copy new landing files into DuckDB `raw_*` tables (the first writer of the warehouse)."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from retail_assets.core.ingest.load import load_landing_zone
from retail_assets.resources import RetailDataRoot

RAW_TABLES = {
    "raw_pos_us": "US point-of-sale lines as sent (comma separated, `qty`, `color`).",
    "raw_pos_uk": "UK point-of-sale lines as sent (`quantity`, `colour`, day-first dates).",
    "raw_pos_de": "German point-of-sale lines as sent (`;`, decimal commas, German column names).",
    "raw_ecommerce": "E-commerce order lines, one JSON document per line, UTC timestamps.",
    "raw_iot": "Store IoT readings: hourly temperature, shelf units per item.",
    "raw_weather": "Issued weather forecasts per store or region: issue time, day, temperatures, precipitation.",
    "raw_edge_telemetry": "Edge devices' telemetry, one JSON record per forecast (what is actually serving).",
    "raw_malformed": "CSV lines the parser could not split; they reach quarantine.",
    "ingest_files": "One row per landing file loaded: SHA-256, rows read, header.",
    "rejected_files": "Landing files refused whole (unreadable, links, special files), each with its reason.",
    "raw_stores": "Reference: stores with region, time zone, currency, opening date, climate zone.",
    "raw_items": "Reference: items with category, colour, list price, launch date.",
    "raw_holidays": "Reference: regional holidays and retail events, with store closures.",
    "raw_promotions": "Reference: the promotion calendar, planned in advance.",
    "raw_fx_rates": "Reference: daily FX rates to USD.",
}
TABLE_OF = {name: (f"_{name}" if name in ("ingest_files", "rejected_files") else name) for name in RAW_TABLES}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["landing", name], description=desc, group_name="landing", kinds={"duckdb"})
        for name, desc in RAW_TABLES.items()
    ],
    can_subset=False,
    pool="duckdb",  # one writer of the warehouse at a time (deploy/dagster.yaml limits the pool to 1)
)
def raw_landing(context: dg.AssetExecutionContext, data_root: RetailDataRoot, duckdb: DuckDBResource):
    """Load only new or changed landing files: re-running over the same files changes nothing."""
    layout = data_root.layout
    with duckdb.get_connection() as con:
        report = load_landing_zone(con, layout.landing, progress=context.log.info,
                                   encodings=data_root.encodings())
        table_rows = {
            name: con.execute(f"select count(*) from {table}").fetchone()[0] for name, table in TABLE_OF.items()
        }
        fingerprint = con.execute(
            "select sha256(string_agg(file || ':' || sha256, ',' order by file)) from _ingest_files"
        ).fetchone()[0]
    source_of = {"raw_pos_us": "pos_us", "raw_pos_uk": "pos_uk", "raw_pos_de": "pos_de",
                 "raw_ecommerce": "ecommerce", "raw_iot": "iot", "raw_weather": "weather",
                 "raw_edge_telemetry": "telemetry"}
    for name in RAW_TABLES:
        metadata = {
            "dagster/row_count": dg.MetadataValue.int(int(table_rows[name])),
            "files_seen": report.files_seen,
            "files_loaded": report.files_loaded,
            "files_unchanged": report.files_unchanged,
            "files_replaced": report.files_replaced,
            "files_rejected": report.files_rejected,
            "landing_fingerprint": fingerprint,
        }
        if name in source_of:
            metadata["rows_loaded_this_run"] = report.rows_loaded.get(source_of[name], 0)
        if name == "raw_malformed":
            metadata["malformed_rows_this_run"] = report.malformed_rows
        if name == "rejected_files" and report.rejected:
            metadata["rejected"] = dg.MetadataValue.md("\n".join(
                ["| source | file | reason |", "|---|---|---|"]
                + [f"| {r.source} | `{r.file}` | {r.reason} |" for r in report.rejected[:50]]))
        yield dg.MaterializeResult(
            asset_key=["landing", name],
            metadata=metadata,
            data_version=dg.DataVersion(fingerprint),
        )
