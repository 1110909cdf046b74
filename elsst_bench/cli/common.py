"""Helpers shared by command modules: list options and table printing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..errors import BenchError


#: One spelling per idea for every command (tests/test_cli_vocabulary.py holds each command to it). ``--out`` is
#: always the file or directory the command writes; the directory that holds run directories is ``--runs-dir``.
VOCABULARY = {
    "tasks": ("--tasks", "-t"),
    "languages": ("--languages", "-l"),
    "model": ("--model", "-m"),
    "dataset": ("--dataset",),
    "device": ("--device",),
    "out": ("--out",),
    "runs_dir": ("--runs-dir",),
    "quiet": ("--quiet", "-q"),
    "as_json": ("--json",),
}

RUNS_DIR_HELP = "Directory that holds the run directories (the run is RUNS_DIR/RUN_ID)."


def runs_dir_option(default: Path = Path("runs")):
    """``--runs-dir``, the directory that holds run directories."""
    return typer.Option(default, *VOCABULARY["runs_dir"], help=f"{RUNS_DIR_HELP} Default: {default}.")


def old_spelling(spelling: str):
    """A hidden option for a spelling from before the vocabulary (``train --out`` for ``--runs-dir``, ``--task``,
    ``--lang``): scripts that pass it keep working, and ``--help`` shows each spelling with one meaning only."""
    return typer.Option(None, spelling, hidden=True)


def either(value, old, default, spelling: str, old_spelling_: str):
    """The option's value, given under its spelling or under its old one; both at once is refused."""
    if old is not None and value != default:
        raise BenchError(f"give {spelling} only ({old_spelling_} is its old spelling)")
    return old if old is not None else value


def runs_dir_from(runs_dir: Path, legacy_out: Path | None) -> Path:
    return either(runs_dir, legacy_out, Path("runs"), "--runs-dir", "--out")


def split_list(values: list[str] | None, option: str = "the list option") -> list[str] | None:
    """``["en,de", "fr"]`` -> ``["en", "de", "fr"]``; not given -> ``None`` (meaning: all). Given but naming
    nothing (``-l ""``, ``-l ,``) is refused: "all" is said by leaving the option out or by ``all``."""
    if not values:
        return None
    out = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not out:
        raise BenchError(f"{option} is empty; leave it out, or say 'all', for every one")
    return out


def print_table(headers: list[str], rows: list[list], file=None) -> None:
    """A plain aligned text table (numbers right-aligned), on ``file`` (default: the current ``sys.stdout``)."""
    file = file if file is not None else sys.stdout
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()

    print(line(cells[0]), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for row in cells[1:]:
        print(line(row), file=file)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True))


def device_help() -> str:
    """``--device``'s help, from the one list of devices (:data:`elsst_bench.devices.KNOWN`)."""
    from ..devices import KNOWN

    return f"{KNOWN[0].upper()}{KNOWN[1:]}."
