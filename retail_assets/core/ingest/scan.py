"""Which landing entries are read: regular files inside the landing root only, never through a link.

Symbolic links, directories named like files, FIFOs and devices are never opened but returned as Rejections
with the reason (the loader records them in `_rejected_files`), as is a file name that is not UTF-8. The
loader and the sensor's cursor share this one scan, so the sensor lists exactly what the loader looks at.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Iterator

from retail_assets.core.ingest.sources import FileRejected, Rejection, Source

_REGION_DIR = re.compile(r"^region=([A-Z]{2})$")


def display_name(rel: str) -> str:
    """A relative path as text DuckDB and people can read, even when the file system's bytes are not UTF-8."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _scan(landing: Path, folder: str, suffix: str, recursive: bool, source: str) -> Iterator[tuple[str, Path] | Rejection]:
    """Regular files named `*suffix` in `landing/folder` (and below when recursive), never through a link.

    Yields (relative path, path) for a file to read, or a Rejection for what looks like one but is not."""
    base = landing / folder
    try:
        st = os.lstat(base)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        yield Rejection(source, display_name(folder), "symbolic link: the landing scan does not follow links")
        return
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [base]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = Path(entry.path).relative_to(landing).as_posix()
            mode = entry.stat(follow_symlinks=False).st_mode
            looks_like_file = entry.name.endswith(suffix)
            if stat.S_ISLNK(mode):
                if looks_like_file or recursive:
                    yield Rejection(source, display_name(rel), "symbolic link: the landing scan does not follow links")
            elif stat.S_ISDIR(mode) and recursive:
                stack.append(Path(entry.path))
            elif not looks_like_file:
                continue
            elif not stat.S_ISREG(mode):
                yield Rejection(source, display_name(rel), f"{_kind(mode)}, not a regular file: not read")
            else:
                try:
                    rel.encode("utf-8")
                except UnicodeEncodeError:
                    yield Rejection(source, display_name(rel), "file name is not valid UTF-8: rename the file")
                    continue
                yield rel, Path(entry.path)


def scan_landing(landing: Path, sources: list[Source]) -> tuple[dict[str, list[tuple[str, Path]]], list[Rejection]]:
    """Every candidate file per source, plus what was refused (links, special files, unknown POS folders)."""
    found: dict[str, list[tuple[str, Path]]] = {s.name: [] for s in sources}
    rejected: list[Rejection] = []
    for s in sources:
        for hit in _scan(landing, s.folder, s.suffix, s.recursive, s.name):
            (rejected.append(hit) if isinstance(hit, Rejection) else found[s.name].append(hit))
    known = {s.folder.split("/", 1)[1] for s in sources if s.folder.startswith("pos/")}
    pos_root = landing / "pos"
    if pos_root.is_dir() and not pos_root.is_symlink():
        with os.scandir(pos_root) as it:
            for entry in sorted(it, key=lambda e: e.name):
                if entry.name in known:
                    continue
                rel = f"pos/{entry.name}"
                m = _REGION_DIR.match(entry.name)
                if entry.is_symlink():
                    rejected.append(Rejection("pos", display_name(rel), "symbolic link: the landing scan does not follow links"))
                elif entry.is_dir(follow_symlinks=False):
                    reason = (f"unknown POS folder {entry.name}: expected one of "
                              + ", ".join(sorted(known)) + (" (region not configured)" if m else ""))
                    for hit in _scan(landing, rel, ".csv", False, "pos"):
                        rejected.append(Rejection("pos", hit[0], reason) if isinstance(hit, tuple) else hit)
    return found, rejected


def read_landing_bytes(path: Path) -> bytes:
    """The bytes of a regular file, opened without following a link and without blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileRejected(f"cannot open: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRejected(f"{_kind(st.st_mode)}, not a regular file: not read")
        chunks = []
        while chunk := os.read(fd, 1 << 22):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise FileRejected(f"cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
