"""The landing sensor's scan and cursor (core/ingest/cursor.py: scan_landing, new_files) on a real directory: every
file the loader would look at is requested once, across restarts, and a link is never listed as loadable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retail_assets.core.ingest import cursor as landing_cursor
from retail_assets.core.ingest import scan, sources
from retail_assets_tests.helpers import US_HEADER, minimal_zone, us_line

SEC = 1_000_000_000
REFERENCE = [f"reference/{n}.csv" for n in sources.REFERENCE_FILES]
POS = "pos/region=US"


def _touch(path: Path, t_s: int, text: str | None = None) -> None:
    if text is not None:
        path.write_text(text)
    os.utime(path, ns=(t_s * SEC, t_s * SEC), follow_symlinks=False)


def _sale(txn: str) -> str:
    return f"{US_HEADER}\n{us_line(txn)}\n"


@pytest.fixture()
def landing(tmp_path) -> Path:
    zone = minimal_zone(tmp_path)
    for rel in REFERENCE:
        _touch(zone / rel, 1000)
    return zone


def _tick(landing: Path, cursor: str | None) -> tuple[list[str], str]:
    """One sensor tick from the stored cursor text (all a restarted sensor has)."""
    return landing_cursor.new_files(landing_cursor.scan_landing(landing), cursor)


def test_scan_lists_what_the_loader_looks_at_oldest_first(landing):
    _touch(landing / POS / "b.csv", 2000, _sale("B-1"))
    _touch(landing / POS / "a.csv", 3000, _sale("A-1"))
    _touch(landing / POS / "notes.txt", 2500, "not a POS file")  # wrong suffix: the loader ignores it
    (landing / "pos" / "region=US" / "sub").mkdir()
    _touch(landing / POS / "sub" / "c.csv", 2600, _sale("C-1"))  # POS folders are not recursive
    (landing / "telemetry" / "host1").mkdir(parents=True)
    _touch(landing / "telemetry" / "host1" / "t.jsonl", 2700, '{"a": 1}\n')  # telemetry is recursive
    listing = landing_cursor.scan_landing(landing)
    assert listing == [(rel, 1000 * SEC) for rel in sorted(REFERENCE)] + [
        (f"{POS}/b.csv", 2000 * SEC), ("telemetry/host1/t.jsonl", 2700 * SEC), (f"{POS}/a.csv", 3000 * SEC)]


def test_a_symlink_is_rejected_not_loadable_and_listed_with_its_own_time(landing, tmp_path):
    target = tmp_path / "outside.csv"
    _touch(target, 5000, _sale("X-1"))
    os.symlink(target, landing / POS / "link.csv")
    _touch(landing / POS / "link.csv", 2000)  # the link's own mtime (lstat), not the target's
    _touch(landing / POS / "real.csv", 2100, _sale("R-1"))

    found, rejected = scan.scan_landing(landing, sources.discover_sources(landing))
    assert [rel for rel, _p in found["pos_us"]] == [f"{POS}/real.csv"]
    assert {r.file: r.reason for r in rejected} == {
        f"{POS}/link.csv": "symbolic link: the landing scan does not follow links"}

    # the sensor lists it so an ingest records the refusal; its time is the link's, so touching the target
    # (which the loader never reads) does not request it again
    listing = dict(landing_cursor.scan_landing(landing))
    assert listing[f"{POS}/link.csv"] == 2000 * SEC
    fresh, cursor = _tick(landing, None)
    assert f"{POS}/link.csv" in fresh
    _touch(target, 9000, _sale("X-2"))
    assert _tick(landing, cursor)[0] == []


def test_cursor_requests_every_file_once_across_restarts(landing):
    _touch(landing / POS / "a.csv", 2000, _sale("A-1"))
    fresh, c1 = _tick(landing, None)
    assert fresh == sorted(REFERENCE) + [f"{POS}/a.csv"]  # first tick: everything, oldest first
    assert json.loads(c1) == {"hwm": 2000 * SEC, "at_hwm": [f"{POS}/a.csv"]}

    for _restart in range(3):  # the stored cursor again and again: nothing twice
        fresh, again = _tick(landing, c1)
        assert fresh == [] and again == c1

    _touch(landing / POS / "b.csv", 2000, _sale("B-1"))  # same mtime as the mark: not skipped
    fresh, c2 = _tick(landing, c1)
    assert fresh == [f"{POS}/b.csv"]
    assert json.loads(c2) == {"hwm": 2000 * SEC, "at_hwm": [f"{POS}/a.csv", f"{POS}/b.csv"]}
    assert _tick(landing, c2)[0] == []

    _touch(landing / POS / "c.csv", 3000, _sale("C-1"))
    _touch(landing / POS / "a.csv", 3000, _sale("A-2"))  # rewritten: new again
    fresh, c3 = _tick(landing, c2)
    assert fresh == [f"{POS}/a.csv", f"{POS}/c.csv"]
    assert json.loads(c3) == {"hwm": 3000 * SEC, "at_hwm": [f"{POS}/a.csv", f"{POS}/c.csv"]}
    assert _tick(landing, c3)[0] == []

    (landing / POS / "b.csv").unlink()  # a file going away requests nothing
    assert _tick(landing, c3)[0] == []


@pytest.mark.xfail(strict=True, reason="known gap: a file landing with an mtime older than the high-water mark "
                                       "(rsync -t, cp -p, tar x) is not requested until another file arrives")
def test_a_file_with_an_old_mtime_is_requested(landing):
    _touch(landing / POS / "a.csv", 3000, _sale("A-1"))
    _fresh, cursor = _tick(landing, None)
    _touch(landing / POS / "late.csv", 2000, _sale("L-1"))  # copied in now, with its original time
    assert _tick(landing, cursor)[0] == [f"{POS}/late.csv"]


# arrivals: batches of (name, mtime offset); each file is written at or after the newest mtime seen so far
batches = st.lists(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 2)), min_size=0, max_size=4),
                   min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(batches)
def test_cursor_property_every_version_once(arrivals):
    """Files arrive in batches, one tick (from the stored cursor text, as after a restart) after each. Every new
    (file, mtime) version is requested exactly once, in the tick after it appeared; a rewrite within the same
    nanosecond is the same version."""
    listing: dict[str, int] = {}
    cursor, now = None, 100
    requested: list[tuple[str, int]] = []
    for batch in arrivals:
        written = set()
        for name, dt in batch:
            now += dt
            listing[f"pos/region=US/{name}.csv"] = now
            written.add(f"pos/region=US/{name}.csv")
        fresh, cursor = landing_cursor.new_files(sorted(listing.items(), key=lambda x: (x[1], x[0])), cursor)
        assert isinstance(cursor, str)
        got = [(p, listing[p]) for p in fresh]
        assert len(got) == len(set(got))
        assert set(got) == {(p, listing[p]) for p in written} - set(requested)
        requested += got
    assert len(requested) == len(set(requested))
    assert set(requested) >= set(listing.items())  # nothing skipped
