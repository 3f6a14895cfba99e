"""What the benchmarks that run whole `retail` processes on a generated demo zone share."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

RETAIL = str(Path(sys.executable).with_name("retail"))


def demo_size_arguments(parser: argparse.ArgumentParser) -> None:
    """--stores, --items, --days: the demo zone's size (`retail generate`'s defaults)."""
    parser.add_argument("--stores", type=int, default=8)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--days", type=int, default=1096)


def timed_retail(*args: str, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """(wall seconds, the finished process) of one `retail` command; the bench stops with its output if it
    fails. Without `env`, this process's environment minus DAGSTER_HOME and RETAIL_DATA_DIR."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "RETAIL_DATA_DIR")}
    t0 = time.perf_counter()
    done = subprocess.run([RETAIL, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        sys.exit(f"retail {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done
