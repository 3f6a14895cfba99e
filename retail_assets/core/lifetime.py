"""Processes and scratch files that cannot outlive the run that made them. Pure: no Dagster.

- `die_with_parent()`: a child (fit worker, dbt) asks the kernel for SIGKILL when its parent dies, so a run
  killed with `kill -9` takes its workers with it (Linux `PR_SET_PDEATHSIG`; elsewhere a no-op, said so).
- `scratch_dir()`: a temp folder named after the owning process (`<pid>-<start time>`); `sweep_scratch()`
  removes every such folder whose owner is gone, so a killed run's cmdstan files are removed at the next start.
- `process_alive(pid, since)`: the pid is running and is the same process that was running at `since`
  (a recycled pid does not count), for marking runs left STARTED by a dead process as failed.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

PR_SET_PDEATHSIG = 1
SCRATCH_ROOT_ENV = "RETAIL_SCRATCH_DIR"


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask for `sig` when the parent process dies; exit at once if it already has. False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent or parent == 1:  # the parent died before the request took effect
        os._exit(1)
    return True


def _boot_time() -> float:
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_start_time(pid: int) -> float | None:
    """When `pid` started (epoch seconds), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return None
    # field 22 (starttime) in clock ticks since boot; index 19 after the command name is cut off
    return _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, since: float | None = None, slack_s: float = 2.0) -> bool:
    """`pid` runs and started no later than `since` (epoch seconds), so it is the process seen then."""
    if pid <= 0:
        return False
    start = process_start_time(pid)
    if start is None:
        return False
    return since is None or start <= since + slack_s


def scratch_root() -> Path:
    return Path(os.environ.get(SCRATCH_ROOT_ENV) or Path(tempfile.gettempdir()) / "retail-scratch")


@functools.cache
def _own_tag(pid: int) -> str:
    start = process_start_time(pid)
    return f"{pid}-{int(start * 100) if start is not None else 0}"


def owner_tag() -> str:
    """`<pid>-<start time in 1/100 s>`: names this process uniquely, even after its pid is recycled."""
    return _own_tag(os.getpid())


def owner_alive(pid: int, start_centis: int) -> bool:
    """The process named by an owner tag still runs."""
    start = process_start_time(pid)
    return start is not None and int(start * 100) == start_centis


def scratch_dir(prefix: str) -> Path:
    """A new temp folder owned by this process: `<root>/<pid>-<start>/<prefix>XXXX`."""
    root = scratch_root() / owner_tag()
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def sweep_scratch() -> int:
    """Remove the scratch folders of processes that are gone (killed runs, crashed workers); return how many."""
    root = scratch_root()
    if not root.is_dir():
        return 0
    removed = 0
    for d in root.iterdir():
        pid_text, _, start_text = d.name.partition("-")
        if not (pid_text.isdigit() and start_text.isdigit()):
            continue
        if owner_alive(int(pid_text), int(start_text)):
            continue  # its owner still runs
        shutil.rmtree(d, ignore_errors=True)
        removed += 1
    return removed


def release_scratch() -> None:
    """Remove this process's own scratch folders (a clean exit)."""
    shutil.rmtree(scratch_root() / owner_tag(), ignore_errors=True)
