"""Harmonization throughput: raw landing + `dbt build` on generated POS landing zones of 1 M and 10 M rows.

Prints wall time and rows per second for each stage, and, as a baseline measured in the same run on the
same files, the time parsing alone takes: every POS file read once by Arrow's CSV reader and by DuckDB's
`read_csv` into a count, the faster of the two being the baseline (DuckDB's `union_by_name` over thousands of
small files is the slower one here).
Goal (issue 3): 10 M POS rows harmonized in at most 60 s on the 2-core machine.

`--new-day STORES`: one new day of landing files (POS and e-commerce) on top of 1 year and of 3 years of
history of STORES stores, each harmonized incrementally (what a daily run does) and, in the same run on the same
warehouse, as a forced full rebuild (what every run did before the marts were incremental). Goal (issue 17):
the new day after 3 years costs at most 1.5x the new day after 1 year.

    .venv/bin/python bench/ingest.py [--rows 1000000 10000000] [--keep DIR]
    .venv/bin/python bench/ingest.py --new-day 40
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb

from retail_assets.core.demo.generator import generate_landing_zone, sales_files_by_day
from retail_assets.core.demo.world import GeneratorConfig
from retail_assets.core.ingest.regions import POS_CONVENTIONS
from retail_assets.resources import build_resources

ROWS_PER_STORE = 71_600  # POS lines per store for 30 items x 1096 days with the demo demand model


def arrow_scan(landing: Path) -> float:
    """Every POS file read and split once by Arrow's CSV reader (multithreaded, every column as text, bad lines
    skipped): what parsing alone costs with the fastest parser here, the same one the ingest uses."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    t0 = time.perf_counter()
    rows = 0
    for region, conv in POS_CONVENTIONS.items():
        for path in sorted((landing / "pos" / f"region={region}").glob("*.csv")):
            data = path.read_bytes()
            header = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip().split(conv.separator)
            table = pacsv.read_csv(
                io.BytesIO(data), read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
                parse_options=pacsv.ParseOptions(delimiter=conv.separator, invalid_row_handler=lambda _r: "skip"),
                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in header}))
            rows += table.num_rows
    return time.perf_counter() - t0


def baseline_scan(landing: Path) -> float:
    """DuckDB's `read_csv` over each region's files (union_by_name: the files' headers may differ)."""
    t0 = time.perf_counter()
    con = duckdb.connect()
    for region, conv in POS_CONVENTIONS.items():
        folder = landing / "pos" / f"region={region}"
        if folder.is_dir():
            con.execute(
                f"select count(*) from read_csv('{folder}/*.csv', delim='{conv.separator}', all_varchar=true,"
                " union_by_name=true)"
            ).fetchone()
    return time.perf_counter() - t0


def run_one(target_rows: int, workdir: Path) -> None:
    from retail_assets.defs.harmonize.assets import dbt_models
    harmonized = dbt_models()
    from retail_assets.defs.ingest.assets import raw_landing

    stores = max(3, math.ceil(target_rows / ROWS_PER_STORE))
    data = workdir / f"rows_{target_rows}"
    t0 = time.perf_counter()
    truth = generate_landing_zone(
        data / "landing", GeneratorConfig(stores=stores, items=30, days=1096, channels=("pos",)),
        progress=lambda m: print(f"    {m}", flush=True),
    )
    rows = truth["counts"]["pos"]["rows_written"]
    print(f"  generated {rows:,} POS rows for {stores} stores in {time.perf_counter() - t0:.1f}s", flush=True)

    duck = baseline_scan(data / "landing")
    arrow = arrow_scan(data / "landing")
    scan = min(duck, arrow)  # the faster parse is the baseline
    os.environ["RETAIL_DATA_DIR"] = str(data)
    resources = build_resources(data)
    t1 = time.perf_counter()
    assert dg.materialize([raw_landing], resources=resources).success
    t_load = time.perf_counter() - t1
    t2 = time.perf_counter()
    assert dg.materialize([raw_landing, harmonized], resources=resources, selection=[harmonized]).success
    t_dbt = time.perf_counter() - t2
    total = t_load + t_dbt
    print(f"  baseline: parsing the files once takes {scan:.1f}s ({rows / scan:,.0f} rows/s): Arrow's CSV reader "
          f"{arrow:.1f}s, DuckDB's read_csv {duck:.1f}s")
    print(f"  raw landing {t_load:.1f}s ({rows / t_load:,.0f} rows/s); dbt build {t_dbt:.1f}s ({rows / t_dbt:,.0f} rows/s)")
    print(f"  harmonization total {total:.1f}s = {rows / total:,.0f} rows/s = {total / scan:.1f}x the parse-only baseline")
    goal = 60.0 * rows / 10_000_000
    print(f"  goal (10 M rows in 60 s, scaled to {rows:,} rows = {goal:.1f}s): {'met' if total <= goal else 'NOT met'}")


def _harmonize(data: Path, full_refresh: bool) -> tuple[float, str]:
    """Raw landing then `dbt build` as the ingest job runs them; wall seconds and the build mode it chose."""
    from retail_assets.defs.harmonize.assets import dbt_models
    from retail_assets.defs.ingest.assets import raw_landing
    harmonized = dbt_models()
    os.environ["RETAIL_DATA_DIR"] = str(data)
    resources = build_resources(data)
    t0 = time.perf_counter()
    assert dg.materialize([raw_landing], resources=resources).success
    result = dg.materialize([raw_landing, harmonized], resources=resources, selection=[harmonized],
                            run_config={"ops": {"harmonized": {"config": {"full_refresh": full_refresh}}}})
    assert result.success
    mode = next(m.metadata["build_mode"].value for m in result.asset_materializations_for_node("harmonized")
                if m.asset_key.path[-1] == "fct_daily_demand")
    return time.perf_counter() - t0, mode


def new_day(stores: int, workdir: Path) -> None:
    """One new day after 1 and after 3 years of history: incremental against a forced full rebuild."""
    figures = {}
    for years in (1, 3):
        data = workdir / f"years_{years}"
        landing = data / "landing"
        t0 = time.perf_counter()
        truth = generate_landing_zone(landing, GeneratorConfig(stores=stores, items=30, days=365 * years + 1,
                                                               channels=("pos", "ecommerce")))
        by_day = sales_files_by_day(landing)
        last = max(by_day)
        held = data / "new_day"
        for f in by_day[last]:
            (held / f.relative_to(landing)).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(f, held / f.relative_to(landing))
        rows = truth["counts"]["pos"]["rows_written"]
        print(f"  {years} y: {rows:,} POS rows for {stores} stores generated in {time.perf_counter() - t0:.1f}s;"
              f" day {last} held back", flush=True)
        history_s, mode = _harmonize(data, full_refresh=False)
        print(f"  {years} y: history harmonized in {history_s:.1f}s ({mode})", flush=True)
        for f in held.rglob("*"):
            if f.is_file():
                shutil.move(f, landing / f.relative_to(held))
        incremental_s, mode = _harmonize(data, full_refresh=False)
        assert mode == "incremental", mode
        full_s, mode = _harmonize(data, full_refresh=True)
        figures[years] = (incremental_s, full_s)
        print(f"  {years} y: the new day incremental {incremental_s:.1f}s; the same warehouse rebuilt in full"
              f" {full_s:.1f}s ({full_s / incremental_s:.1f}x)", flush=True)
    (i1, f1), (i3, f3) = figures[1], figures[3]
    print(f"  new day after 3 y / after 1 y: incremental {i3 / i1:.2f}x (goal at most 1.5x: "
          f"{'met' if i3 / i1 <= 1.5 else 'NOT met'}); full rebuild {f3 / f1:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--keep", type=Path, default=None, help="keep the generated data here")
    parser.add_argument("--new-day", type=int, metavar="STORES", default=None,
                        help="time one new day after 1 and 3 years of history of this many stores")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        if args.new_day:
            print(f"\n== one new day of files, {args.new_day} stores x 30 items ==", flush=True)
            new_day(args.new_day, workdir)
            return
        for target in args.rows:
            print(f"\n== {target:,} POS rows (target) ==", flush=True)
            run_one(target, workdir)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
