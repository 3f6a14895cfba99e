"""Shared helpers of the demo landing-zone writers: CSV output and seeded sampling.

Used by `generator.py` (reference files) and the per-source writers (`pos_files.py`,
`ecommerce_files.py`, `iot_files.py`), so they live in one place instead of in any one writer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retail_assets.core.atomic import atomic_write_text


def write_csv(path: Path, header: list[str], rows: list[list[str]], sep: str = ",") -> None:
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def choose(rng: np.random.Generator, pool: np.ndarray, rate: float) -> np.ndarray:
    k = max(1, int(round(len(pool) * rate))) if rate > 0 else 0  # a rate > 0 always injects one
    if k == 0 or len(pool) == 0:
        return np.array([], dtype=np.int64)
    return rng.choice(pool, size=min(k, len(pool)), replace=False)


def split_lines(units: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split each cell's units into basket lines of 1-3 units: (cell index per line, qty per line)."""
    cells = np.flatnonzero(units > 0)
    u = units.ravel()[cells]
    per_line = rng.integers(1, 4, size=len(cells))
    n_lines = -(-u // per_line)
    cell_of_line = np.repeat(cells, n_lines)
    first = np.repeat(np.cumsum(n_lines) - n_lines, n_lines)
    pos = np.arange(len(cell_of_line)) - first
    q = np.repeat(per_line, n_lines)
    last = pos == np.repeat(n_lines - 1, n_lines)
    qty = np.where(last, np.repeat(u, n_lines) - q * (np.repeat(n_lines, n_lines) - 1), q)
    return cell_of_line, qty
