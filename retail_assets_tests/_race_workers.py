"""Bodies of the processes that test_hardening races against each other (spawned: kept light to import)."""

from __future__ import annotations

import json
import sys


def append_lines(path: str, tag: str, count: int, barrier) -> None:
    """`count` registry lines from one process, all started at the same moment as the other writers."""
    from pathlib import Path

    from retail_assets.core.registry import records as registry

    barrier.wait()
    for n in range(count):
        registry._append(Path(path), {"writer": tag, "n": n, "pad": "x" * (n % 97)})


def record_same_model(trials: list[tuple[str, object]], barrier) -> None:
    """Per trial, record one model version in the same registry as the other processes, at the same moment."""
    from pathlib import Path

    from retail_assets.core.registry import records as registry

    for models_root, mv in trials:
        barrier.wait()
        registry.record_model(Path(models_root), mv)


def create_keys(dirs: list[str], barrier, module: str = "retail_assets.core.edge.keys") -> None:
    """Per trial, create the dev key pair in the same directory as the other processes, at the same moment."""
    import importlib
    from pathlib import Path

    ensure_dev_keys = importlib.import_module(module).ensure_dev_keys
    for d in dirs:
        barrier.wait()
        ensure_dev_keys(Path(d))


def hold_warehouse(path: str) -> None:
    """Hold a DuckDB write connection (as an ingest does) until stdin closes; say 'holding <pid>' once it is held."""
    import os

    import duckdb

    con = duckdb.connect(path)
    con.execute("create table if not exists ingest_in_progress as select 1 as x")
    print(json.dumps({"holding": os.getpid()}), flush=True)
    sys.stdin.read()
    con.close()


if __name__ == "__main__":
    hold_warehouse(sys.argv[1])


def push_from_own_copy(url: str, env: dict, local: str, version: str, barrier, out) -> None:
    """One 'machine' with its own local copy of an object-store root: pull, write a new model version, flip the
    store's live pointer and append a registry line as the platform does on local disk, then push at the same
    moment as the other machine. Reports (version, "live" | "conflict")."""
    import os
    from pathlib import Path

    os.environ.update(env)
    from retail_assets.core.atomic import append_line, atomic_write_text
    from retail_assets.core.mirror import MirrorConflict, RootMirror

    copy = RootMirror(url, local)
    copy.pull()
    store = Path(local) / "models" / "store=0001"
    atomic_write_text(store / version / "manifest.json", json.dumps({"version": version}))
    atomic_write_text(store / "live.json", json.dumps({"version": version}))
    append_line(store / "registry.jsonl", json.dumps({"event": "live", "version": version}))
    barrier.wait()
    try:
        copy.push()
        out.put((version, "live"))
    except MirrorConflict:
        out.put((version, "conflict"))
