"""FAISS flat (exact) against HNSW and IVF, the settings of ``elsst_bench.evaluation.index``, side by side.

Usage: .venv/bin/python benchmarks/index.py [--sizes 100000,1000000] [--queries 1000] [--real]

For each pool size, in one process: build time, index memory (``faiss.serialize_index`` bytes), queries per
second (all queries in one call, FAISS's own threads) and recall@10 against the flat index's top 10, for

- ``flat``: ``IndexFlatIP``, the exact peer every ratio is taken against;
- ``hnsw`` and ``ivf``: built by :func:`elsst_bench.evaluation.index.build_index`, searched by its
  :func:`~elsst_bench.evaluation.index.search`, i.e. exactly what ``elsst-bench evaluate --index`` runs;
- then each approximate index again at the neighbouring search settings (HNSW ``efSearch``, IVF ``nprobe``),
  so a reader sees how far the defaults sit from the recall/speed curve's knee.

Pools are synthetic unit vectors of dimension 384 (all-MiniLM-L6-v2's and multilingual-e5-small's width):
``clustered`` (default) draws them around 1,000 random centres with noise, the structure real sentence
embeddings have; ``uniform`` draws them uniformly on the sphere, where no index can exploit neighbourhoods and
recall is a lower bound. Queries are drawn the same way, apart from the pool. ``--real`` adds the ELSST pool
(every language's concept labels of the prepared dataset, encoded with all-MiniLM-L6-v2).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from elsst_bench.evaluation.index import build_index, search

K = 10


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic(n: int, dim: int, kind: str, rng: np.random.Generator, centres: np.ndarray | None) -> np.ndarray:
    """``n`` unit vectors; ``clustered``: a random centre each plus Gaussian noise of about the centre's norm."""
    if kind == "uniform":
        return unit(rng.standard_normal((n, dim), dtype=np.float32))
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # chunks keep the temporaries small at 1 M
        m = min(100_000, n - start)
        pick = centres[rng.integers(0, len(centres), m)]
        out[start:start + m] = unit(pick + 0.9 * rng.standard_normal((m, dim), dtype=np.float32) / np.sqrt(dim))
    return out


def real_pool() -> tuple[np.ndarray, np.ndarray]:
    """The prepared dataset's concept labels in every language (the ``broader`` corpora), encoded with
    all-MiniLM-L6-v2, and 1,000 of them as queries."""
    import json

    from elsst_bench import paths
    from elsst_bench.models import load_sentence_transformer

    root = paths.default_dataset_dir()
    if not (root / "manifest.json").exists():
        raise SystemExit(f"error: no prepared dataset at {root}; run `elsst-bench prepare` first")
    texts = sorted({json.loads(line)["text"] for corpus in sorted((root / "broader").glob("*/corpus.jsonl"))
                    for line in corpus.read_text(encoding="utf-8").splitlines()})
    model = load_sentence_transformer("all-MiniLM-L6-v2")
    vectors = model.encode(texts, batch_size=256, normalize_embeddings=True, convert_to_numpy=True)
    rng = np.random.default_rng(0)
    queries = vectors[rng.choice(len(vectors), min(1000, len(vectors)), replace=False)]
    return np.asarray(vectors, np.float32), np.asarray(queries, np.float32)


def recall(rows: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |approximate top-10 ∩ exact top-10| / 10."""
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / len(b) for a, b in zip(rows, exact)]))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def measure(pool: np.ndarray, queries: np.ndarray, label: str) -> list[list]:
    import faiss

    rows_out = []
    flat, flat_build = timed(lambda: build_index(pool, "flat"))
    (_, exact), flat_search = timed(lambda: search(flat, queries, K))
    flat_qps = len(queries) / flat_search
    flat_mem = len(faiss.serialize_index(flat))
    rows_out.append([label, "flat", "exact", f"{flat_build:.1f}", f"{flat_mem / 2**20:,.0f}", f"{flat_qps:,.0f}",
                     "1.00", "1.0000"])
    del flat
    for kind in ("hnsw", "ivf"):
        index, build = timed(lambda: build_index(pool, kind))
        mem = len(faiss.serialize_index(index)) / 2**20
        (_, rows), seconds = timed(lambda: search(index, queries, K))
        if kind == "hnsw":
            default = f"M={index.hnsw.nb_neighbors(1)}, efC={index.hnsw.efConstruction}, efSearch={index.hnsw.efSearch}"
        else:
            default = f"nlist={index.nlist}, nprobe={index.nprobe}"
        rows_out.append([label, kind, default + " (default)", f"{build:.1f}", f"{mem:,.0f}",
                         f"{len(queries) / seconds:,.0f}", f"{len(queries) / seconds / flat_qps:.2f}",
                         f"{recall(rows, exact):.4f}"])
        for value in _neighbours(index, kind):
            if kind == "hnsw":
                index.hnsw.efSearch = value  # search() would reset it: call FAISS directly
            else:
                index.nprobe = value
            (_, rows), seconds = timed(lambda: index.search(queries, K))
            name = "efSearch" if kind == "hnsw" else "nprobe"
            rows_out.append([label, kind, f"{name}={value}", "", "", f"{len(queries) / seconds:,.0f}",
                             f"{len(queries) / seconds / flat_qps:.2f}", f"{recall(rows, exact):.4f}"])
        del index
    return rows_out


def _neighbours(index, kind: str) -> list[int]:
    if kind == "hnsw":
        return [256, 512, 1024, 2048]
    return sorted({max(1, index.nprobe // 4), min(index.nlist, index.nprobe * 4)} - {index.nprobe})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="pool sizes, comma-separated")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--distribution", choices=("clustered", "uniform"), default="clustered")
    parser.add_argument("--real", action="store_true", help="also the ELSST pool of the prepared dataset")
    args = parser.parse_args()
    import faiss

    from elsst_bench.cli.common import print_table

    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        print(f"error: --sizes must be comma-separated integers, got {args.sizes!r}", file=sys.stderr)
        return 2
    print(f"machine: {os.cpu_count()} CPU cores, FAISS {faiss.__version__} with {faiss.omp_get_max_threads()} "
          f"threads; {args.queries} queries, k={K}, {args.distribution} unit vectors of dimension {args.dim}")
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, args.dim), dtype=np.float32) / np.sqrt(args.dim)
    table = []
    if args.real:
        table += measure(*real_pool(), "ELSST labels")
    for n in sizes:
        pool = synthetic(n, args.dim, args.distribution, rng, centres)
        queries = synthetic(args.queries, args.dim, args.distribution, rng, centres)
        table += measure(pool, queries, f"{n:,}")
        del pool
    print_table(["pool", "index", "setting", "build s", "MiB", "queries/s", "vs flat", "recall@10"], table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
