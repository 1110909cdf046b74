"""Atomic file and directory writes: a reader sees the old content or the new, never half of it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import orjson


def umask() -> int:
    """The process's umask (read without changing it for longer than the call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def normalize_modes(root: str | os.PathLike) -> None:
    """Give ``root`` and everything under it the usual modes (directories 0777, files 0666, less the umask):
    ``mkdtemp`` makes directories 0700 and some writers (``mkstemp``) files 0600, which would make a shared
    results directory unreadable to the group."""
    mask = umask()
    root = Path(root)
    os.chmod(root, 0o777 & ~mask)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def dumps_json(obj) -> str:
    """Canonical JSON: sorted keys, UTF-8, two-space indent, trailing newline (byte-stable)."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2) + "\n"


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, dumps_json(obj))


def jsonl_bytes(rows: Iterable[dict]) -> bytes:
    """JSON Lines, keys sorted, compact separators (orjson: byte-stable and ~10x faster than json)."""
    dumps, option = orjson.dumps, orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
    return b"".join(dumps(row, option=option) for row in rows)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block is done: a Ctrl-C lands after it, not inside it.

    The handlers are swapped for one that only records the signal (blocking it with ``pthread_sigmask`` would not
    do: the kernel may hand a process-directed signal to another thread, and Python raises it in the main thread
    anyway). Afterwards a recorded SIGINT is raised as ``KeyboardInterrupt``, a SIGTERM re-sent to the process.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            if received[0] == signal.SIGINT and previous[signal.SIGINT] is signal.default_int_handler:
                raise KeyboardInterrupt
            os.kill(os.getpid(), received[0])


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where it is unavailable."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def directory(final: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name beside ``final``; on success swap it into place.

    If the block raises, the temporary directory is removed and ``final`` is left untouched. An existing
    ``final`` is replaced only after the new one is complete, in one step where the file system can exchange
    two directories (Linux), so a reader never finds ``final`` missing; Ctrl-C is held during the swap and the
    removal of the old content, so an interrupt leaves either the old directory or the new one, and no
    leftovers. The new directory gets the usual modes (:func:`normalize_modes`).
    """
    final = Path(os.path.abspath(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        normalize_modes(tmp)
    except BaseException:
        with deferred_interrupts():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    with deferred_interrupts():
        if final.exists() and _exchange(tmp, final):
            shutil.rmtree(tmp, ignore_errors=True)  # now the old content
            return
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
