"""The board on disk: ``entries/*.json``, the rendered ``README.md`` and ``index.html``, one lock.

Every change is a read-modify-write under ``filelock.FileLock(<leaderboard>/.lock)``: read the entries, refuse
an exact duplicate, write the new entry, re-render the pages from all entries. Each file is written through a
temporary file and ``os.replace`` (:mod:`elsst_bench.atomic`), so concurrent submissions are serialised and a
reader never sees half a file. A rendered page whose content has not changed is not rewritten.

The entry and the pages change together: Ctrl-C and SIGTERM are held while they are written, and a submission
that still died between them (SIGKILL, a full disk) is finished by the next one: every ``submit``, the refused
duplicate included, first brings the pages up to date with the entries on disk. Whether the board can be written
at all (``entries/`` a directory, ``.lock`` a plain file, each writable) is checked before any scoring
(:func:`check_writable`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from .. import atomic, outputs
from ..errors import DataError
from ..jsontypes import read_json
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
    entry = read_json(path)
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
    """The board already holds this exact entry (``path``); no entry was added (``rerendered``: the pages an
    earlier, interrupted submission had left stale, brought up to date)."""

    def __init__(self, path: Path, rerendered: list[Path] = ()):
        done = (f"no entry was added; {' and '.join(p.name for p in rerendered)}, left stale by an interrupted "
                "submission, were re-rendered") if rerendered else "nothing was changed"
        super().__init__(f"exact duplicate: {path} already holds these rankings for the same model, adapter and "
                         f"seed; {done}")
        self.path = Path(path)
        self.rerendered = list(rerendered)


def duplicate_error(path: Path, rerendered: list[Path] = ()) -> DuplicateEntry:
    return DuplicateEntry(path, rerendered)


def check_writable(leaderboard: Path) -> None:
    """Refuse (one line), before any scoring, a board that cannot take an entry: ``entries`` or the pages not
    plain, ``.lock`` a symbolic link (the lock would write through it) or not a file, or a directory that cannot
    be written."""
    leaderboard = Path(leaderboard)
    for name, kind in ((ENTRIES, "directory"), (LOCK, "file"), (README, "file"), (PAGE, "file")):
        path = leaderboard / name
        plain = path.is_dir() if kind == "directory" else path.is_file()
        if path.is_symlink() or (path.exists() and not plain):
            raise DataError(f"{path} must be a plain {kind} of the leaderboard, not "
                            + ("a symbolic link" if path.is_symlink() else "a directory" if path.is_dir()
                               else "a file"))
    outputs.check_writable(leaderboard / ENTRIES, "leaderboard's entries")
    outputs.check_writable(leaderboard / README, "leaderboard", file=True)


@contextlib.contextmanager
def locked(leaderboard: Path) -> Iterator[None]:
    from filelock import FileLock, Timeout

    check_writable(leaderboard)
    lock = FileLock(str(Path(leaderboard) / LOCK), timeout=LOCK_TIMEOUT)
    try:
        lock.acquire()
    except Timeout:
        raise DataError(f"{lock.lock_file} is held by another submission for more than {LOCK_TIMEOUT:.0f} s; "
                        "try again") from None
    except OSError as err:
        raise DataError(f"cannot take the leaderboard's lock {lock.lock_file}: {err.strerror or err}") from None
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
            raise duplicate_error(found, write_rendered(leaderboard, bench, [e for _, e in existing]))
        path = leaderboard / ENTRIES / filename(entry)
        with atomic.deferred_interrupts():
            _write(path, atomic.dumps_json(entry).encode("utf-8"))
            write_rendered(leaderboard, bench, [e for _, e in existing] + [entry])
    return path


def rerender(leaderboard: Path, bench: Benchmark) -> list[Path]:
    leaderboard = Path(leaderboard)
    with locked(leaderboard):
        return write_rendered(leaderboard, bench, [e for _, e in load_entries(leaderboard)])
