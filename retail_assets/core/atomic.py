"""Atomic file writes: write a temp file beside the target, fsync, then rename; and appends of whole lines.

A killed run leaves either the old file or the new one, never half of one; its temp file is named after the
writing process (`.<name>.<pid>-<start>.<random>.tmp`), so `sweep_stale_temps` removes it once that process
is gone. An appended line is one `os.write`
under an exclusive `flock`, so lines from concurrent processes never interleave or get lost.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _owner() -> str:
    from retail_assets.core.lifetime import owner_tag

    return owner_tag()


_TEMP = re.compile(r"^\..+\.(\d+)-(\d+)\.[^./]+\.tmp$")


def sweep_stale_temps(root: str | os.PathLike, skip: tuple[str, ...] = ("landing",)) -> list[Path]:
    """Remove the temp files of atomic writes whose writer process is gone (a killed run); return them."""
    from retail_assets.core.lifetime import owner_alive

    removed = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            m = _TEMP.match(name)
            if m and not owner_alive(int(m.group(1)), int(m.group(2))):
                p = Path(dirpath) / name
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def append_line(path: str | os.PathLike, text: str,
                unless: Callable[[list[str]], bool] | None = None) -> bool:
    """Append `text` + newline as one write while holding the file's exclusive lock; False (nothing written)
    when `unless(existing complete lines)` is true, checked under the same lock so check-then-append is atomic.

    A read-modify-write rewrite loses the lines another process appended in between; this never does. An
    unterminated tail (a writer killed mid-line) is cut off first, so it cannot glue onto the new line.
    """
    if "\n" in text or "\r" in text:
        raise ValueError("a line to append must not contain a line break")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = _read_fd(fd)
            os.ftruncate(fd, data.rfind(b"\n") + 1)
        if unless is not None and unless(_complete_lines(_read_fd(fd))):
            return False
        data = (text + "\n").encode("utf-8")
        if os.write(fd, data) != len(data):  # a regular file takes it all or raises (ENOSPC)
            raise OSError(f"short write appending to {path}")
        os.fsync(fd)
        return True
    finally:
        os.close(fd)  # releases the lock


def read_lines(path: str | os.PathLike) -> list[str]:
    """The complete, non-blank lines of an append-only file (none when it does not exist), read under a shared
    lock; an unterminated last line is a write that has not finished and is left out."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        return _complete_lines(_read_fd(fd))
    finally:
        os.close(fd)


def _read_fd(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        block = os.pread(fd, min(size - offset, 1 << 20), offset)
        if not block:
            break
        chunks.append(block)
        offset += len(block)
    return b"".join(chunks)


def _complete_lines(data: bytes) -> list[str]:
    return [line for line in data[: data.rfind(b"\n") + 1].decode("utf-8").split("\n") if line.strip()]
