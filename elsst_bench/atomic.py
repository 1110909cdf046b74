"""Atomic file and directory writes: a reader sees the old content or the new, never half of it."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from .errors import BenchError


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


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2  # linux/fs.h


def _renameat2(a: Path, b: Path, flags: int) -> bool:
    """Linux ``renameat2``: True when done, False where this system or file system cannot (the caller falls back);
    any other failure (``EEXIST`` for ``RENAME_NOREPLACE`` onto an existing path) raises ``OSError``."""
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
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # this file system cannot
        return False
    raise OSError(err, os.strerror(err), str(b))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (``RENAME_EXCHANGE``); False where this system or file system cannot."""
    return _renameat2(a, b, _RENAME_EXCHANGE)


def _temporary_prefix(name: str) -> str:
    """Temporary siblings of ``name`` are ``.NAME.PID-XXXXXXXX.tmp``: the pid says whether their writer is alive."""
    return f".{name}.{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(final: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``final`` that a killed writer left (SIGKILL, a power cut): names of the
    form :func:`_temporary_prefix` makes, whose process no longer exists. Returns what was removed."""
    final = Path(final)
    pattern = re.compile(rf"\.{re.escape(final.name)}\.(\d+)-[A-Za-z0-9_]{{8}}\.tmp")
    removed = []
    try:
        siblings = list(final.parent.iterdir())
    except OSError:
        return removed
    for path in siblings:
        match = pattern.fullmatch(path.name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    return removed


def _replaceable(path: Path, kind) -> bool:
    """Whether what sits at ``path`` is ours to delete: an empty directory, or a directory of ``kind``."""
    from .outputs import is_kind

    if path.is_symlink() or not path.is_dir():
        return False
    return not any(path.iterdir()) or (kind is not None and is_kind(path, kind))


def _changed(final: Path, kind) -> BenchError:
    what = f"a new, empty directory or {kind.name}" if kind is not None else "a new or empty directory"
    return BenchError(f"{final} changed while elsst-bench was writing it and is no longer {what}; it was left as "
                      "it is and nothing was written")


@contextlib.contextmanager
def directory(final: str | os.PathLike, kind=None) -> Iterator[Path]:
    """Build a directory under a temporary name beside ``final``; on success swap it into place.

    If the block raises, the temporary directory is removed and ``final`` is left untouched. What sits at
    ``final`` when the new directory is ready is replaced only when it is ours to delete — an empty directory, or
    a directory of ``kind`` (an :class:`elsst_bench.outputs.Kind`) — and that is judged *after* the swap, on the
    content that came out: a directory someone created or filled at ``final`` after the command checked it is
    swapped straight back and the command refuses (:class:`BenchError`), deleting nothing it did not write.
    Where ``final`` is absent the new directory is moved in with ``RENAME_NOREPLACE``, so one that appears in
    the meantime is never overwritten. Linux ``renameat2`` makes each step one system call (elsewhere the same
    checks run just before a plain ``os.replace``); a reader never finds ``final`` missing; Ctrl-C is held during
    the swap and the removal of the old content. Temporary directories left by killed writers are removed first
    (:func:`remove_stale_temporaries`). The new directory gets the usual modes (:func:`normalize_modes`).
    """
    final = Path(os.path.abspath(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = Path(tempfile.mkdtemp(prefix=_temporary_prefix(final.name), suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        normalize_modes(tmp)
    except BaseException:
        with deferred_interrupts():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    with deferred_interrupts():
        try:
            _swap_in(tmp, final, kind)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _swap_in(tmp: Path, final: Path, kind) -> None:
    try:
        if _renameat2(tmp, final, _RENAME_NOREPLACE):
            return
    except FileExistsError:
        pass
    except OSError as err:
        if err.errno != errno.EEXIST:
            raise
    else:  # no renameat2 here: check, then replace (a window remains between the two)
        if os.path.lexists(final) and not _replaceable(final, kind):
            raise _changed(final, kind)
        old = None
        if os.path.lexists(final):
            old = final.parent / f"{_temporary_prefix(final.name)}replaced.tmp"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    if not _exchange(tmp, final):  # final exists, but this file system cannot exchange
        if not _replaceable(final, kind):
            raise _changed(final, kind)
        old = final.parent / f"{_temporary_prefix(final.name)}replaced.tmp"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return
    if not _replaceable(tmp, kind):  # tmp now holds what was at final
        _exchange(tmp, final)
        raise _changed(final, kind)
    shutil.rmtree(tmp, ignore_errors=True)  # the old content, ours to delete
