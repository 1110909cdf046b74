"""Rankings: FAISS search, removal of the query's own concept, the tie rule, and TREC run files.

**Tie rule.** Candidates are ordered by cosine score descending, then concept id ascending. The pool is
indexed in ascending concept-id order, so "id ascending" is "pool row ascending", and a ranking is
``np.lexsort((row, -score))`` of its candidates.

**Exact top-k under ties.** FAISS returns the ``k`` best scores, but neither its order among equal scores nor
*which* of several candidates tied at the ``k``-th score it keeps is specified. We therefore ask it for
``k + e + 8`` candidates (``e = 1`` when the task removes the query's own concept, see
``manifest["exclude_query_concept"]``), remove the own concept, re-sort by the tie rule and keep ``k``.
Every candidate FAISS did not return scores at most the lowest returned score ``s_min``; so if the ``k``-th
kept score is above ``s_min`` the top ``k`` is exact, and otherwise (a tie reaching the boundary) that query
is re-scored against the whole pool with numpy. Approximate indexes (HNSW, IVF) skip this repair.

**What the scorers see.** ranx sorts a run by score with an unstable sort, trec_eval breaks score ties by
document id descending and sentence-transformers' evaluator by id ascending. So that all of them see exactly
our order, metrics are computed from rank-derived, strictly decreasing scores (``RANK_BASE - rank``, see
:meth:`Rankings.run_dict`), never from the raw cosines. The TREC run files keep the real cosine scores and
the rank column; :func:`read_trec` orders by the rank column, so a ranking read back is the ranking written.

**Run files.** ``rankings/<task>.<lang>.<split>.tsv.gz``: one line per (query, candidate), tab-separated
``qid Q0 concept_id rank score run_name`` (the TREC run format; whitespace-separated readers such as
trec_eval, pytrec_eval and ranx accept tabs), top 100 per query, queries in id order, gzip with ``mtime=0``
so that identical rankings give identical bytes.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import atomic
from ..errors import DataError
from .index import is_exact, search

TOP_K = 100
MARGIN = 8
RANK_BASE = 100_000  # rank-derived score = RANK_BASE - rank (strictly decreasing, positive)


@dataclass
class Rankings:
    """Top-k pool rows per query. ``rows[i, j]`` is the (j+1)-th candidate of ``qids[i]`` (-1: none)."""

    qids: list[str]
    doc_ids: list[str]  # the pool, ascending
    rows: np.ndarray  # (n, k) int64
    scores: np.ndarray  # (n, k) float32, -inf where rows == -1

    def __len__(self) -> int:
        return len(self.qids)

    def ids(self, i: int, k: int | None = None) -> list[str]:
        row = self.rows[i, :k] if k else self.rows[i]
        return [self.doc_ids[r] for r in row.tolist() if r >= 0]

    def run_dict(self, k: int | None = None) -> dict[str, dict[str, float]]:
        """``{qid: {concept_id: RANK_BASE - rank}}``: the ranking with tie-free scores for any scorer."""
        return {qid: {doc: float(RANK_BASE - rank) for rank, doc in enumerate(self.ids(i, k), start=1)}
                for i, qid in enumerate(self.qids)}

    def trec_text(self, run_name: str) -> str:
        run_name = re.sub(r"\s+", "_", run_name) or "run"
        doc_ids = self.doc_ids
        lines = []
        for qid, rows, scores in zip(self.qids, self.rows.tolist(), self.scores.tolist()):
            for rank, (row, score) in enumerate(zip(rows, scores), start=1):
                if row < 0:
                    break
                lines.append(f"{qid}\tQ0\t{doc_ids[row]}\t{rank}\t{score:.6f}\t{run_name}\n")
        return "".join(lines)

    def trec_bytes(self, run_name: str) -> bytes:
        return gzip.compress(self.trec_text(run_name).encode("utf-8"), compresslevel=6, mtime=0)


def tie_sort(rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each query's candidates by (score desc, row asc); ``row < 0`` (no candidate) goes last."""
    scores = np.where(rows < 0, -np.inf, scores).astype(np.float32)
    tiebreak = np.where(rows < 0, np.iinfo(np.int64).max, rows)
    order = np.lexsort((tiebreak, -scores), axis=-1)
    return np.take_along_axis(rows, order, axis=-1), np.take_along_axis(scores, order, axis=-1)


def rank(index, queries: np.ndarray, k: int = TOP_K, exclude: np.ndarray | None = None,
         pool: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` ``(rows (m, k') int64, scores (m, k') float32)`` under the tie rule.

    ``exclude[i]`` is the pool row of query i's own concept, removed from its candidates (-1: none).
    ``pool`` (the indexed vectors) is used to repair boundary ties; read back from a flat index if omitted.
    ``k' = min(k, pool size - (1 if exclude is given else 0))``.
    """
    n_pool = index.ntotal
    extra = 1 if exclude is not None else 0
    k_out = max(0, min(k, n_pool - extra))
    k_search = min(n_pool, k + extra + MARGIN)
    raw_scores, raw_rows = search(index, queries, k_search)
    rows, scores = raw_rows.astype(np.int64), raw_scores
    if exclude is not None:
        rows = np.where(rows == np.asarray(exclude, dtype=np.int64)[:, None], -1, rows)
    rows, scores = tie_sort(rows, scores)
    if k_search < n_pool and k_out > 0 and is_exact(index):
        lowest = np.where(raw_rows >= 0, raw_scores, np.inf).min(axis=1)
        suspect = np.flatnonzero(scores[:, k_out - 1] <= lowest)
        if len(suspect):
            if pool is None:
                pool = index.reconstruct_n(0, n_pool)
            full_rows = np.broadcast_to(np.arange(n_pool, dtype=np.int64), (len(suspect), n_pool)).copy()
            if exclude is not None:
                own = np.asarray(exclude, dtype=np.int64)[suspect]
                full_rows[full_rows == own[:, None]] = -1
            full_scores = np.asarray(queries, dtype=np.float32)[suspect] @ np.asarray(pool, dtype=np.float32).T
            fixed_rows, fixed_scores = tie_sort(full_rows, full_scores)
            rows[suspect, :k_out] = fixed_rows[:, :k_out]
            scores[suspect, :k_out] = fixed_scores[:, :k_out]
    return np.ascontiguousarray(rows[:, :k_out]), np.ascontiguousarray(scores[:, :k_out])


def ranking_name(task: str, lang: str, split: str) -> str:
    return f"{task}.{lang}.{split}.tsv.gz"


def write_trec(path: str | Path, rankings: Rankings, run_name: str) -> None:
    atomic.write_bytes(path, rankings.trec_bytes(run_name))


def read_trec(path: str | Path) -> dict[str, list[str]]:
    """``{qid: [concept_id, ...]}`` in rank order (by the rank column, not the score)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"ranking file {path} is missing; re-run `elsst-bench evaluate`")
    rows: dict[str, list[tuple[int, str]]] = {}
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                qid, _, doc, rank_, *_ = line.split()
                rows.setdefault(qid, []).append((int(rank_), doc))
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} is not a gzip TREC run file ({err})") from err
    return {qid: [doc for _, doc in sorted(pairs)] for qid, pairs in rows.items()}


def rank_scores(ranked: dict[str, list[str]], k: int | None = None) -> dict[str, dict[str, float]]:
    """``{qid: [ids]}`` -> ``{qid: {id: RANK_BASE - rank}}`` (tie-free scores for ranx/pytrec_eval)."""
    return {qid: {doc: float(RANK_BASE - r) for r, doc in enumerate(docs[:k] if k else docs, start=1)}
            for qid, docs in ranked.items()}
