"""Shared fixtures: the real ELSST release, a full prepared dataset, the hand-built mini thesaurus, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "data" / "ELSST_R5.rdf.gz"
MINI = Path(__file__).resolve().parent / "data" / "mini.ttl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def release_path() -> Path:
    return RELEASE


@pytest.fixture(scope="session")
def mini_path() -> Path:
    return MINI


@pytest.fixture(scope="session")
def prepared_full(tmp_path_factory):
    """The whole release, all languages and tasks, prepared once per test session."""
    from elsst_bench.tasks import prepare

    out = tmp_path_factory.mktemp("prepared") / "elsst-r5"
    path, manifest = prepare(RELEASE, out=out)
    return path, manifest


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script the way a user does."""
    exe = Path(sys.executable).parent / "elsst-bench"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=600)


@pytest.fixture
def cli():
    return run_cli
