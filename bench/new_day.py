"""`retail run` (what `make run` runs after install) a second time, after one new day of landing files, against
the first run on the same data root: issue 17's goal is at least 5x faster.

The demo zone is generated for `--days` days, and again for one day more with the same seed in a scratch root;
the new day's files (POS per region, e-commerce orders, IoT readings stamped with the new day or the next, absent
from the first zone) are copied into the first zone's landing folder, as a retailer's nightly drop would land them. Both runs are whole
`retail run` processes on one data root with its embedded Dagster instance; the second run's store lines say what
each store reused.

    .venv/bin/python bench/new_day.py [--stores 8] [--items 30] [--days 1096]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import sys
import tempfile
from pathlib import Path

from _shared import demo_size_arguments, timed_retail

START = "2023-01-01"  # `retail generate`'s default first day


def _retail(*args: str) -> tuple[float, str]:
    seconds, done = timed_retail(*args)
    return seconds, done.stdout


def new_day_files(first: Path, second: Path, new_day: dt.date) -> list[Path]:
    """The files of `second`'s landing zone stamped with the new day or later (UTC-stamped sources spill into
    the next day) that `first` does not have. Everything else differs between two generations only by the
    generator's random defects (a re-sent or missing file of an old day), not by what a new day brings."""
    stamps = {f"{new_day + dt.timedelta(days=k):%Y%m%d}" for k in (0, 1)}
    return sorted(p.relative_to(second) for p in second.rglob("*")
                  if p.is_file() and (m := re.search(r"_(\d{8})\.", p.name)) and m[1] in stamps
                  and not (first / p.relative_to(second)).exists())


def _stages(out: str) -> None:
    """Where a run's time went: each store's line (`retail run` prints its seconds) and the rest (ingest, dbt,
    publication), from the run's own output."""
    lines = [line.strip() for line in out.splitlines() if re.match(r"\s*\[\d+/\d+\] ", line)]
    seconds = [float(m.group(1) or m.group(2)) for line in lines
               if (m := re.search(r"\((\d+\.\d)s\)$|in (\d+\.\d)s$", line))]
    total = re.search(r"finished in (\d+\.\d)s", out)
    for line in lines:
        print(f"      {line[:160]}")
    if total and seconds:
        print(f"      stores {sum(seconds):.1f}s; ingest, dbt and publication {float(total.group(1)) - sum(seconds):.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    demo_size_arguments(parser)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench_new_day_"))
    try:
        root, later = scratch / "data", scratch / "later"
        zone = ["--stores", str(args.stores), "--items", str(args.items), "--start", START]
        _retail("generate", "--data-dir", str(root), *zone, "--days", str(args.days))
        _retail("generate", "--data-dir", str(later), *zone, "--days", str(args.days + 1))
        new_day = dt.date.fromisoformat(START) + dt.timedelta(days=args.days)
        files = new_day_files(root / "landing", later / "landing", new_day)
        print(f"demo zone: {args.stores} stores x {args.items} items x {args.days} days; the new day {new_day}: "
              f"{len(files)} files ({', '.join(str(f) for f in files)})", flush=True)

        t_first, out_first = _retail("run", "--data-dir", str(root))
        print(f"  first run            : {t_first:6.1f}s", flush=True)
        _stages(out_first)
        for rel in files:
            (root / "landing" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(later / "landing" / rel, root / "landing" / rel)
        t_second, out_second = _retail("run", "--data-dir", str(root))
        print(f"  after one new day    : {t_second:6.1f}s")
        _stages(out_second)
        speed = t_first / t_second
        print(f"  speed-up = {speed:.1f}x (goal >= 5x: {'met' if speed >= 5 else 'NOT met'})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
