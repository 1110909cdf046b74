"""Helpers for the evaluation tests: an English-only prepared dataset, a fast fake encoder, a CLI runner."""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "data" / "ELSST_R5.rdf.gz"
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
os.environ.update(ENV)


@lru_cache(maxsize=None)
def prepared_en_path() -> Path:
    """ELSST R5, English only, all tasks, prepared once per test process into a temporary directory."""
    from elsst_bench.tasks import prepare

    tmp = tempfile.mkdtemp(prefix="elsst-eval-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    out = Path(tmp) / "elsst-r5-en"
    path, _ = prepare(RELEASE, out=out, languages=["en"])
    return path


@pytest.fixture(scope="session")
def prepared_en() -> Path:
    return prepared_en_path()


class FakeEncoder:
    """A deterministic bag-of-character-trigrams encoder with sentence-transformers' encode signature.

    ``levels`` > 0 quantises each coordinate to that many levels, which produces many exact score ties.
    ``calls``/``encoded`` count what was asked of it (to show cache hits and de-duplication).
    """

    def __init__(self, dim: int = 64, levels: int = 0, seed: int = 0):
        self.dim, self.levels, self.seed = dim, levels, seed
        self.calls = 0
        self.encoded: list[str] = []
        self.training = False
        self.prompts = {"query": "", "document": ""}
        self.default_prompt_name = None

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        padded = f"  {text.lower()} "
        for i in range(len(padded) - 2):
            h = int.from_bytes(hashlib.blake2b(f"{self.seed}:{padded[i:i + 3]}".encode(), digest_size=4).digest(),
                               "little")
            v[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        if self.levels:
            v = np.round(v / (np.abs(v).max() + 1e-9) * self.levels)
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def encode(self, sentences, batch_size=32, convert_to_numpy=True, normalize_embeddings=False,
               show_progress_bar=False, **kwargs):
        self.calls += 1
        self.encoded.extend(sentences)
        return np.stack([self._vector(s) for s in sentences]) if sentences else np.zeros((0, self.dim), np.float32)

    encode_query = encode
    encode_document = encode

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)


def fake_identity(seed: int = 0, levels: int = 0) -> dict:
    return {"name": f"fake-trigram-{seed}-{levels}", "location": None, "sha256": f"{seed:064x}"}


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script the way a user does."""
    exe = Path(sys.executable).parent / "elsst-bench"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **ENV, **(env or {})}, timeout=600)


def assert_bad_input(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, exactly one line on stderr (progress-bar noise aside), no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not re.match(r"^Loading weights", line)]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
