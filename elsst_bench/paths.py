"""Default locations. Relative defaults resolve against the current directory, like git or make.

- the ELSST release shipped with the repository: ``<repo>/data/ELSST_R5.rdf.gz``;
- prepared datasets: ``./data/prepared/<dataset_id>/`` (``$ELSST_BENCH_DATA`` overrides ``./data/prepared``);
- runs: ``./runs/<run_id>/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError

RELEASE_FILE = "ELSST_R5.rdf.gz"
DEFAULT_DATASET = "elsst-r5"


def repo_data_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data"


def default_source() -> Path:
    path = repo_data_dir() / RELEASE_FILE
    if not path.exists():
        raise DataError(f"the bundled ELSST release {path} is missing (non-editable install?); pass --source PATH|URL")
    return path


def prepared_root() -> Path:
    return Path(os.environ.get("ELSST_BENCH_DATA", "data/prepared"))


def default_dataset_dir() -> Path:
    return prepared_root() / DEFAULT_DATASET


def recorded_path(path: str | Path) -> str:
    """A path as a run records it: relative to the working directory when it lies inside it (a run trained in a
    checkout names a file by its place in the checkout, which a clone elsewhere shares), else absolute."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(resolved)
