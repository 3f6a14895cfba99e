"""The warehouse's marts as Parquet on the object store, for the machines that do not hold the warehouse.

The DuckDB warehouse stays local to the one machine that ingests (core/mirror.py never syncs it). After each
build it publishes its marts (every `dim_*` and `fct_*` table and view: what the per-store runs, the sensors and
the monitors read) to `<root>/marts/<build>/<table>.parquet` with DuckDB's own `COPY ... TO 's3://...'` through
the s3fs filesystem registered with the connection (core/storage.py: no httpfs, no extension loaded or fetched),
then puts `<root>/marts/current.json` naming that build: a reader either sees the build before or this one whole
(each object is put whole; the pointer goes last). The build before stays for readers still on it; older ones go.
A machine without the warehouse reads the marts in place: an in-memory DuckDB with one view per table over
`read_parquet('s3://...')`, again through the registered filesystem (`connect`), so a run of the per-store
pipeline needs no ingest, no warehouse and no landing file (`retail run --no-ingest`). `marts/` is never pulled
into a local copy (core/mirror.py).
Pure: no Dagster."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets

MARTS_DIR = "marts"
POINTER = "current.json"
KEEP_BUILDS = 2  # this build and the one before (a reader that opened it a moment ago)
_TABLE = re.compile(r"^(dim|fct)_[a-z0-9_]{1,60}$")  # a mart's name: the only names that reach SQL or a key
_BUILD = re.compile(r"^[0-9]{8}T[0-9]{12}-[0-9a-f]{8}$")  # a build's name, as `publish` makes it


def _names(con) -> list[str]:
    """The marts of the connection's database, in name order."""
    rows = con.execute("select table_name from information_schema.tables where table_schema = 'main'").fetchall()
    return sorted(name for (name,) in rows if _TABLE.match(name))


def _base(url: str) -> str:
    return f"{url.rstrip('/')}/{MARTS_DIR}"


def publish(con, url: str) -> dict:
    """Write every mart of `con` (a connection to the warehouse) under a new build on `url`'s object store, then
    point `current.json` at it and remove builds older than KEEP_BUILDS. Returns the pointer's content: build,
    tables with their row counts, published_at."""
    from retail_assets.core.storage import filesystem

    fs, base = filesystem(url)
    con.execute("set autoinstall_known_extensions = false; set autoload_known_extensions = false")
    before = set(con.list_filesystems())
    con.register_filesystem(fs)
    build = f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}"  # sorts by time
    rows = {}
    try:
        for name in _names(con):
            target = f"{_base(url)}/{build}/{name}.parquet".replace("'", "''")
            # COPY answers with the rows it wrote: the count is of what was published, read once
            rows[name] = con.execute(f'copy (select * from "{name}") to \'{target}\' (format parquet)').fetchone()[0]
    finally:  # the caller's connection as it was
        for registered in set(con.list_filesystems()) - before:
            con.unregister_filesystem(registered)
    pointer = {"build": build, "tables": rows,
               "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    marts = f"{base.rstrip('/')}/{MARTS_DIR}"
    fs.pipe_file(f"{marts}/{POINTER}", json.dumps(pointer, sort_keys=True).encode())
    for old in builds(fs, marts)[:-KEEP_BUILDS]:
        fs.rm(f"{marts}/{old}", recursive=True)
    return pointer


def builds(fs, marts: str) -> list[str]:
    """The builds with objects under `marts` (a path without the protocol), oldest first (a server may list a
    removed build's empty folder); only names `publish` makes, so nothing else on the store is ever removed."""
    return sorted({b for p in fs.find(marts) if p[len(marts) + 1:].count("/") == 1
                   and _BUILD.match(b := p[len(marts) + 1:].split("/")[0])})


def current(url: str) -> dict | None:
    """The published build's pointer, or None when no warehouse published one."""
    from retail_assets.core.storage import filesystem

    fs, base = filesystem(url)
    try:
        return json.loads(fs.cat_file(f"{base.rstrip('/')}/{MARTS_DIR}/{POINTER}"))
    except FileNotFoundError:
        return None


def connect(url: str, pointer: dict):
    """An in-memory DuckDB connection with a view per published mart over its Parquet on the object store."""
    from retail_assets.core.storage import duckdb_connect, filesystem

    fs, _ = filesystem(url)
    con = duckdb_connect(fs)
    build = str(pointer["build"])
    if not _BUILD.match(build):
        raise ValueError(f"{url}/{MARTS_DIR}/{POINTER} names build {build!r}, not one this code writes")
    for name in sorted(pointer["tables"]):
        if not _TABLE.match(name):
            raise ValueError(f"{url}/{MARTS_DIR}/{POINTER} names table {name!r}, not a mart")
        source = f"{_base(url)}/{build}/{name}.parquet".replace("'", "''")
        con.execute(f'create view "{name}" as select * from read_parquet(\'{source}\')')
    return con
