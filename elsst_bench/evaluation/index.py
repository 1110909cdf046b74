"""FAISS inner-product indexes over L2-normalised vectors (inner product = cosine similarity).

- ``flat`` (default): ``IndexFlatIP``, exact; what every reported number uses.
- ``hnsw``: ``IndexHNSWFlat`` (M=32, efConstruction=200, efSearch = max(2k, 128)), approximate, for pools of
  millions of labels: recall@10 0.999 at 1 M vectors, 18 times flat's queries/s (benchmarks/index.py).
- ``ivf``: ``IndexIVFFlat`` with ``nlist = min(2·sqrt(n), n/39)`` cells (FAISS wants >= 39 training points per
  cell), k-means trained on at most 64 points per cell (FAISS samples them), probing ``nprobe = max(16,
  nlist/16)`` of them; approximate. The training cap keeps the build at 1 M vectors to minutes on 2 cores
  (FAISS's default of 256 points per cell would cluster the whole pool); benchmarks/index.py measures recall.

Pools under 1,000 vectors always get the exact index. Approximate indexes can miss true neighbours; their rankings are still sorted by the tie rule of
:mod:`elsst_bench.evaluation.rankings`, but the exact boundary-tie repair applies to ``flat`` only.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BenchError

INDEX_KINDS = ("flat", "hnsw", "ivf")
IVF_TRAINING_POINTS_PER_CELL = 64
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200  # FAISS's default of 40 leaves recall@10 at 0.84 on 1 M vectors (benchmarks/index.py)


def build_index(vectors: np.ndarray, kind: str = "flat"):
    """An index over ``vectors`` (n, d) float32, rows numbered 0..n-1 in the given order."""
    import faiss

    if kind not in INDEX_KINDS:
        raise BenchError(f"unknown index {kind!r}; known: {', '.join(INDEX_KINDS)}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if kind == "flat" or n < 1000:  # approximate indexes do not pay off (nor train) on tiny pools
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        nlist = max(1, min(int(2 * math.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid = IVF_TRAINING_POINTS_PER_CELL
        index.train(vectors)
        index.nprobe = min(nlist, max(16, nlist // 16))
    index.add(vectors)
    return index


def is_exact(index) -> bool:
    import faiss

    return isinstance(index, faiss.IndexFlat)


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` ``(scores (m, k) float32, rows (m, k) int64)``; missing entries have row -1."""
    import faiss

    k = min(k, index.ntotal)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = max(2 * k, 128)
    scores, rows = index.search(queries, k)
    return scores, rows
