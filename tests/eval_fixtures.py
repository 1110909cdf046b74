"""Fixtures and helpers for the evaluation tests: an English-only prepared dataset, a fast fake encoder.

Registered as a plugin in ``conftest.py``: the ``prepared_en`` fixture is available everywhere; test modules
import the plain helpers (:class:`FakeEncoder`, :func:`fake_identity`).
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from conftest import RELEASE


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
