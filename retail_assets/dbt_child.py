"""`retail-dbt`: dbt, but dying with the process that started it.

Dagster runs `dbt build` as a child process; if the run is killed with SIGKILL nothing stops that child, and it
kept writing the warehouse after its run was gone. This launcher asks the kernel for SIGKILL on parent death
(preserved across exec), then replaces itself with the dbt installed beside this interpreter.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def main() -> None:
    from retail_assets.core.lifetime import die_with_parent

    die_with_parent()
    beside = Path(sys.executable).with_name("dbt")
    dbt = str(beside) if beside.exists() else shutil.which("dbt")
    if dbt is None:
        sys.exit("retail-dbt: no dbt executable beside this Python or on PATH; install the project (`make setup`)")
    os.execv(dbt, [dbt, *sys.argv[1:]])


if __name__ == "__main__":
    main()
