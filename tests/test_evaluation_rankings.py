"""Rankings: the tie rule under FAISS, own-concept removal, exact top-k at tied boundaries, TREC files."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from elsst_bench.evaluation import Rankings, rank, read_trec, tie_sort, write_trec
from elsst_bench.evaluation.index import build_index


def exact_vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    """Unit vectors with four ±0.5 entries: every dot product is a multiple of 0.25, exact in float32
    whatever the summation order, so ties are real ties for FAISS and numpy alike."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, dim), dtype=np.float32)
    for i in range(n):
        out[i, rng.choice(dim, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return out


def reference(pool: np.ndarray, queries: np.ndarray, k: int, exclude=None):
    """Brute force: all scores in float64, sorted by (score desc, row asc), own row removed."""
    scores = queries.astype(np.float64) @ pool.astype(np.float64).T
    out = []
    for i, row in enumerate(scores):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        if exclude is not None:
            order = [j for j in order if j != exclude[i]]
        out.append(order[:k])
    return np.array(out)


def test_tie_sort_orders_by_score_then_row_and_puts_missing_last():
    rows = np.array([[5, 2, -1, 9, 1]])
    scores = np.array([[0.5, 0.9, 0.0, 0.5, 0.5]], np.float32)
    r, s = tie_sort(rows, scores)
    assert r.tolist() == [[2, 1, 5, 9, -1]]
    assert s[0, :4].tolist() == pytest.approx([0.9, 0.5, 0.5, 0.5]) and s[0, 4] == -np.inf


@pytest.mark.parametrize("exclude", [False, True])
def test_rank_is_exact_under_massive_ties(exclude):
    pool = exact_vectors(600)
    queries = exact_vectors(80, seed=1)
    own = np.arange(80) * 7 if exclude else None
    index = build_index(pool)
    rows, scores = rank(index, queries, k=100, exclude=own, pool=pool)
    assert rows.shape == (80, 100)
    assert np.array_equal(rows, reference(pool, queries, 100, own))
    # the boundary really was tied for most queries (the repair path ran)
    at_k = scores[:, 99]
    beyond = np.sort(queries @ pool.T, axis=1)[:, ::-1][:, 110]
    assert (at_k == beyond).mean() > 0.5


def test_identical_vectors_rank_by_concept_id_and_own_concept_is_removed():
    pool = np.tile(exact_vectors(1), (150, 1))
    index = build_index(pool)
    rows, scores = rank(index, pool[:3], k=100, exclude=np.array([0, 5, -1]))
    assert rows[0].tolist() == list(range(1, 101))
    assert rows[1].tolist() == [0, 1, 2, 3, 4, *range(6, 101)]
    assert rows[2].tolist() == list(range(100))
    assert np.all(scores == scores[0, 0])


def test_own_concept_removal_still_leaves_k_candidates_and_small_pools_shrink_k():
    pool = exact_vectors(120, seed=3)
    index = build_index(pool)
    rows, _ = rank(index, pool[:10], k=100, exclude=np.arange(10))
    assert rows.shape == (10, 100)
    assert not np.any(rows == np.arange(10)[:, None])
    small = build_index(pool[:20])
    rows, _ = rank(small, pool[:2], k=100, exclude=np.array([0, 1]))
    assert rows.shape == (2, 19) and (rows >= 0).all()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_indexes_agree_with_the_exact_one_on_most_neighbours(kind):
    rng = np.random.default_rng(0)  # clustered, like label embeddings (uniform noise is IVF's worst case)
    centres = rng.normal(size=(60, 32))
    pool = (centres[rng.integers(0, 60, 3000)] + 0.4 * rng.normal(size=(3000, 32))).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    queries = pool[:50] + 0.05 * rng.normal(size=(50, 32)).astype(np.float32)
    exact, _ = rank(build_index(pool, "flat"), queries, k=10)
    approx, scores = rank(build_index(pool, kind), queries, k=10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx)])
    assert overlap > 0.9
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_trec_files_are_deterministic_and_read_back_by_rank(tmp_path):
    pool = exact_vectors(300)
    ids = [f"c{i:04d}" for i in range(300)]
    rows, scores = rank(build_index(pool), pool[:20], k=100, exclude=np.arange(20))
    ranked = Rankings([f"q{i}" for i in range(20)], ids, rows, scores)
    write_trec(tmp_path / "a.tsv.gz", ranked, "my run")
    write_trec(tmp_path / "b.tsv.gz", ranked, "my run")
    data = (tmp_path / "a.tsv.gz").read_bytes()
    assert data == (tmp_path / "b.tsv.gz").read_bytes()
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0
    lines = gzip.decompress(data).decode().splitlines()
    assert len(lines) == 20 * 100
    qid, q0, doc, rank_, score, name = lines[0].split("\t")
    assert (qid, q0, rank_, name) == ("q0", "Q0", "1", "my_run") and float(score) == pytest.approx(scores[0, 0])
    back = read_trec(tmp_path / "a.tsv.gz")
    assert back == {q: ranked.ids(i) for i, q in enumerate(ranked.qids)}
