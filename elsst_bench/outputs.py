"""Where a command may write: never into, or over, something it did not make; writability checked first.

Every command that writes a directory (``prepare``, ``train``, ``evaluate``, ``export``) names a
:class:`Kind` and calls :func:`check_target` before any slow work. A target is accepted when it

- does not exist yet (its nearest existing ancestor must be a directory this process can write), or
- is an empty directory, or
- is a directory of the same kind (it holds the kind's marker file) and the command may replace or extend it
  (``--overwrite`` for ``prepare``, ``train`` and ``export``; always for ``evaluate`` into a run).

Anything else — a file, a symbolic link, a non-empty directory of another kind (``--out .``, a run directory
given as ``export --merged``, a home directory given as ``--run-id``) — is refused with one line, and nothing
is touched. Writability is probed by creating and removing a temporary file, because ``os.access`` answers
"yes" for root on a read-only bind mount or ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BenchError


@dataclass(frozen=True)
class Kind:
    """A kind of output directory, recognised by a marker file the command itself writes (any one of them)."""

    name: str  # with its article: "a run directory"
    markers: tuple[str, ...]


RUN = Kind("a run directory", ("config.json",))
#: Where ``evaluate`` writes: a run directory, or an earlier evaluation's ``--out`` (metrics, no config).
EVALUATION = Kind("a run or evaluation directory", ("config.json", "metrics.json", "metrics.dev.json",
                                                  "metrics.train.json"))
DATASET = Kind("a prepared dataset", ("manifest.json",))
MODEL = Kind("an exported model", ("modules.json",))
PEFT_ADAPTER = Kind("an exported PEFT adapter", ("adapter_config.json",))
ADAPTER = Kind("a run's adapter directory", ("adapter_config.json",))


def is_kind(path: str | os.PathLike, kind: Kind) -> bool:
    path = Path(path)
    return path.is_dir() and not path.is_symlink() and any((path / m).is_file() for m in kind.markers)


def check_writable(path: str | os.PathLike, what: str = "output", file: bool = False) -> None:
    """Refuse (one line) unless ``path`` can be created or written: its nearest existing ancestor is a
    directory in which a file can actually be created. ``file``: ``path`` is a file (a lock, a page), so an
    existing one is replaced in its directory, which is what is probed."""
    target = Path(os.path.abspath(path))
    probe = target.parent if file and target.is_file() and not target.is_symlink() else target
    while not probe.exists():
        if probe.is_symlink():  # a link to nothing: mkdir would fail on it with FileExistsError
            raise BenchError(f"cannot write the {what} {path}: {probe} is a symbolic link to a missing "
                             f"{os.readlink(probe)}")
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise BenchError(f"cannot write the {what} {path}: {probe} is a file, not a directory")
    try:
        fd, name = tempfile.mkstemp(prefix=".elsst-bench-probe-", dir=probe)
    except OSError as err:
        raise BenchError(f"cannot write the {what} {path}: {probe} is not writable ({err.strerror})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def check_target(path: str | os.PathLike, kind: Kind, *, replace: bool, flag: str = "--overwrite") -> bool:
    """Refuse a target that is not ours to write (see the module docstring); returns whether it exists already.

    ``replace`` says whether an existing directory of the same kind may be replaced (or, for evaluate, added
    to); without it the refusal names ``flag``.
    """
    path = Path(path)
    if path.is_symlink():
        raise BenchError(f"{path} is a symbolic link, not {kind.name}; choose a real directory")
    if path.exists() and not path.is_dir():
        raise BenchError(f"{path} is a file, not {kind.name}; choose another output directory")
    exists = path.is_dir() and any(path.iterdir())
    if exists:
        if not is_kind(path, kind):
            raise BenchError(f"{path} is a non-empty directory but not {kind.name} (it has no "
                             f"{' or '.join(kind.markers)}); "
                             "choose a new or empty directory")
        if not replace:
            raise BenchError(f"{path} already holds {kind.name}; pass {flag} to replace it")
    check_writable(path, kind.name.split(" ", 1)[1])
    return exists


#: One name of a run id: what the error message of :func:`check_run_id` promises, and nothing else (no newline, no
#: bidirectional control, no space: a run id is shown on terminals and boards, and is a directory name).
_RUN_ID_PART = re.compile(r"[A-Za-z0-9._+-]+")
_PATTERN_PART = re.compile(r"[A-Za-z0-9._+*?\[\]-]+")  # a sweep's lr_from: run ids with glob wildcards


def check_run_id(run_id: str, pattern: bool = False) -> str:
    """A run id is a relative path of plain names inside ``--runs-dir`` (``lora-s0``, ``tuning/lora-lr0.001``); with
    ``pattern``, names may hold glob wildcards (``tuning/lora-lr*``)."""
    parts = run_id.split("/")
    part = _PATTERN_PART if pattern else _RUN_ID_PART
    if not all(part.fullmatch(p) for p in parts) or any(p in (".", "..") for p in parts):
        raise BenchError(f"--run-id {run_id!r} must be a relative name inside --runs-dir "
                         "(ASCII letters, digits, '-', '_', '.', '+', and '/' between names; no '..', no absolute path)")
    return run_id
