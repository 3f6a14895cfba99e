"""When a `dbt build` may be incremental, and when it must rebuild the large marts in full.

`int_sales_lines` and `fct_daily_demand` are dbt incremental models keyed on landing files (see their SQL): a
build reads only the lines of new or changed files and replaces only the store-days they touch. That is right
only while everything else a line's fate depends on is unchanged, so a full rebuild (`--full-refresh`) is
planned here when any of these differ from the last build that ran both models:
- the reference data (stores, items, holidays, promotions, FX rates): an unknown store that became known, a
  new closing day, a rate, change how old lines are judged and which days are zero-filled;
- the dbt project's code (models, macros, vars);
- a landing file already harmonized came again with other bytes: its old lines leave, and which copy of a
  resent line is the original can move to another file.
The fingerprint of the first two is kept in the warehouse (`_harmonize_builds`) with every build's plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import duckdb

from retail_assets.core.ingest.load import table_exists

BUILDS_TABLE = "_harmonize_builds"
INCREMENTAL_MODELS = ("int_sales_lines", "fct_daily_demand")
_PROJECT_PARTS = ("models", "macros", "dbt_project.yml")


@dataclass(frozen=True)
class BuildPlan:
    full_refresh: bool
    reason: str
    fingerprint: str

    def dbt_args(self) -> list[str]:
        return ["--full-refresh"] if self.full_refresh else []


def project_fingerprint(project_dir: Path) -> str:
    """SHA-256 over the dbt code that decides a line's fate: every model and macro file and dbt_project.yml."""
    h = hashlib.sha256()
    files: list[Path] = []
    for part in _PROJECT_PARTS:
        p = project_dir / part
        files.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p] if p.is_file() else [])
    for f in files:
        h.update(f.relative_to(project_dir).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def build_fingerprint(con: duckdb.DuckDBPyConnection, project_dir: Path) -> str:
    """The project's code and the reference files' bytes (their SHA-256 as loaded), in one digest."""
    reference = con.execute(
        "select file, sha256 from _ingest_files where source = 'reference' order by file"
    ).fetchall() if table_exists(con, "_ingest_files") else []
    h = hashlib.sha256(project_fingerprint(project_dir).encode())
    for file, sha in reference:
        h.update(f"\n{file}\0{sha}".encode())
    return h.hexdigest()


def plan_build(con: duckdb.DuckDBPyConnection, project_dir: Path, requested_full: bool = False) -> BuildPlan:
    """Incremental when nothing but new landing files arrived since the last full-model build; else full."""
    fp = build_fingerprint(con, project_dir)

    def full(reason: str) -> BuildPlan:
        return BuildPlan(True, reason, fp)

    if requested_full:
        return full("a full refresh was asked for")
    missing = [m for m in INCREMENTAL_MODELS if not table_exists(con, m)]
    if missing:
        return full(f"first build ({', '.join(missing)} not in the warehouse yet)")
    if not table_exists(con, BUILDS_TABLE):
        return full("no earlier build is recorded")
    last = con.execute(f"select fingerprint from {BUILDS_TABLE} order by built_at desc limit 1").fetchone()
    if last is None or last[0] != fp:
        return full("the reference data or the dbt code changed since the last build")
    changed = con.execute(
        """select count(*) from _ingest_files f
           join (select distinct source_file, source_sha256 from int_sales_lines) t on t.source_file = f.file
           where t.source_sha256 is distinct from f.sha256"""
    ).fetchone()[0]
    if changed:
        return full(f"{changed} landing file(s) already harmonized came again with other bytes")
    return BuildPlan(False, "only new landing files since the last build", fp)


def record_build(con: duckdb.DuckDBPyConnection, plan: BuildPlan) -> None:
    """Remember a build that ran both incremental models, so the next one can compare its fingerprint."""
    con.execute(f"create table if not exists {BUILDS_TABLE} (built_at timestamp, fingerprint varchar,"
                " full_refresh boolean, reason varchar)")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    con.execute(f"insert into {BUILDS_TABLE} values (?, ?, ?, ?)", [now, plan.fingerprint, plan.full_refresh,
                                                                     plan.reason])
