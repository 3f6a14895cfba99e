"""The landing sensor's cursor: which landing files are new or changed since the last tick.

It lists what the loader would look at, through the loader's own scan (scan.py), so the sensor and the
loader never disagree about which files exist; the cursor is plain JSON text, so a restarted sensor resumes
where it stopped. Pure logic the sensor calls; no Dagster.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from retail_assets.core.ingest.scan import scan_landing as scan_files
from retail_assets.core.ingest.sources import REFERENCE_FILES, discover_sources


def scan_landing(landing: Path) -> list[tuple[str, int]]:
    """(relative path, mtime in ns) of every file the loader would look at, oldest first: the same scan as the
    loader (regular files inside the root, never through a link), plus what it would reject, so a bad file
    also triggers an ingest that records why it was refused. Times are the entries' own (lstat)."""
    landing = Path(landing)
    found, rejected = scan_files(landing, discover_sources(landing))
    rels = [f"reference/{n}.csv" for n in REFERENCE_FILES]
    rels += [rel for files in found.values() for rel, _p in files] + [r.file for r in rejected]
    out = []
    for rel in rels:
        try:
            out.append((rel, os.lstat(landing / rel).st_mtime_ns))
        except (FileNotFoundError, ValueError):
            continue
    return sorted(out, key=lambda x: (x[1], x[0]))


def new_files(listing: list[tuple[str, int]], cursor: str | None) -> tuple[list[str], str]:
    """Files past the cursor (a high-water mark of mtimes plus the names seen at that mark), and the next cursor.
    A restart resumes from the stored cursor: nothing is skipped, nothing requested twice."""
    state = json.loads(cursor) if cursor else {"hwm": -1, "at_hwm": []}
    seen = set(state["at_hwm"])
    fresh = [(p, m) for p, m in listing if m > state["hwm"] or (m == state["hwm"] and p not in seen)]
    if not fresh:
        return [], json.dumps(state)
    hwm = max(m for _p, m in fresh)
    at = sorted({p for p, m in listing if m == hwm} | (seen if hwm == state["hwm"] else set()))
    return [p for p, _m in fresh], json.dumps({"hwm": hwm, "at_hwm": at})


def files_key(paths: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(paths)).encode()).hexdigest()[:16]
