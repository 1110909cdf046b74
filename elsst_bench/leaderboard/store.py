"""The board on disk: ``entries/*.json``, the rendered ``README.md`` and ``index.html``, one lock.

Every change is a read-modify-write under ``filelock.FileLock(<leaderboard>/.lock)``: read the entries, refuse
an exact duplicate, write the new entry, re-render the pages from all entries. Each file is written through a
temporary file and ``os.replace`` (:mod:`elsst_bench.atomic`), so concurrent submissions are serialised and a
reader never sees half a file. A rendered page whose content has not changed is not rewritten.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

from .. import atomic
from ..errors import DataError
from . import board, render
from .benchmark import BENCHMARK_FILE, Benchmark
from .entry import check_shape, filename

ENTRIES = "entries"
LOCK = ".lock"
README = "README.md"
PAGE = "index.html"
LOCK_TIMEOUT = 600.0


def _write(path: Path, content: bytes) -> None:
    """Atomic write, with the usual permissions of a repository file (:func:`elsst_bench.atomic.write_bytes`)."""
    atomic.write_bytes(path, content)


def write_benchmark(leaderboard: Path, bench: Benchmark) -> Path:
    path = Path(leaderboard) / BENCHMARK_FILE
    _write(path, atomic.dumps_json(bench.as_json()).encode("utf-8"))
    return path


def entry_paths(leaderboard: Path) -> list[Path]:
    return sorted((Path(leaderboard) / ENTRIES).glob("*.json"))


def read_entry(path: Path) -> dict:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err})") from err
    check_shape(entry, str(path))
    return entry


def load_entries(leaderboard: Path) -> list[tuple[Path, dict]]:
    return [(path, read_entry(path)) for path in entry_paths(leaderboard)]


def rendered(bench: Benchmark, entries: list[dict]) -> dict[str, bytes]:
    tables = board.tables(entries)
    return {README: render.markdown(bench, tables, len(entries)).encode("utf-8"),
            PAGE: render.page(bench, tables, len(entries)).encode("utf-8")}


def write_rendered(leaderboard: Path, bench: Benchmark, entries: list[dict]) -> list[Path]:
    written = []
    for name, content in rendered(bench, entries).items():
        path = Path(leaderboard) / name
        if not path.is_file() or path.read_bytes() != content:
            _write(path, content)
            written.append(path)
    return written


def duplicate_of(entries: list[tuple[Path, dict]], entry: dict) -> Path | None:
    return next((path for path, other in entries if other["id"] == entry["id"]), None)


class DuplicateEntry(DataError):
    """The board already holds this exact entry (``path``); nothing was changed."""

    def __init__(self, path: Path):
        super().__init__(f"exact duplicate: {path} already holds these rankings for the same model, adapter and "
                         "seed; nothing was changed")
        self.path = Path(path)


def duplicate_error(path: Path) -> DuplicateEntry:
    return DuplicateEntry(path)


@contextlib.contextmanager
def locked(leaderboard: Path) -> Iterator[None]:
    from filelock import FileLock, Timeout

    lock = FileLock(str(Path(leaderboard) / LOCK), timeout=LOCK_TIMEOUT)
    try:
        lock.acquire()
    except Timeout:
        raise DataError(f"{lock.lock_file} is held by another submission for more than {LOCK_TIMEOUT:.0f} s; "
                        "try again") from None
    try:
        yield
    finally:
        lock.release()


def add(leaderboard: Path, bench: Benchmark, entry: dict) -> Path:
    """Store ``entry`` and re-render, under the lock; refuse an exact duplicate (nothing written)."""
    leaderboard = Path(leaderboard)
    with locked(leaderboard):
        existing = load_entries(leaderboard)
        found = duplicate_of(existing, entry)
        if found is not None:
            raise duplicate_error(found)
        path = leaderboard / ENTRIES / filename(entry)
        _write(path, atomic.dumps_json(entry).encode("utf-8"))
        write_rendered(leaderboard, bench, [e for _, e in existing] + [entry])
    return path


def rerender(leaderboard: Path, bench: Benchmark) -> list[Path]:
    leaderboard = Path(leaderboard)
    with locked(leaderboard):
        return write_rendered(leaderboard, bench, [e for _, e in load_entries(leaderboard)])
