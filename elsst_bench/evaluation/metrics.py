"""Retrieval metrics: binary and graded ones with ranx, WuP@1 with the thesaurus.

For a query ``q`` with graded qrels ``g(q, d) ∈ {1, 2, 3}``, binary relevant set ``R(q) = {d : g(q, d) ≥ 3}``
and ranking ``d_1, d_2, …`` (tie rule of :mod:`.rankings`), let ``rel_i = [d_i ∈ R(q)]``:

- ``mrr@10      = 1 / min{i ≤ 10 : rel_i = 1}`` (0 if there is none);
- ``recall@k    = |{i ≤ k : rel_i = 1}| / |R(q)|`` for k = 1, 3, 5, 10;
- ``ndcg@k      = Σ_{i≤k} rel_i / log2(i + 1)  /  Σ_{i ≤ min(k, |R(q)|)} 1 / log2(i + 1)`` for k = 3, 10;
- ``ndcg@10_graded = Σ_{i≤10} g(q, d_i) / log2(i + 1) / IDCG@10``, linear gains, IDCG from the grades sorted
  descending (trec_eval's ``ndcg_cut_10`` and ranx's ``ndcg@10`` on the graded qrels); the primary metric;
- ``wup@1 = max_{r ∈ R(q)} WuP(d_1, r)``: Wu–Palmer similarity ``2·depth(LCA) / (depth(a) + depth(b))`` between
  the top-1 concept and the *nearest* relevant concept (polyhierarchy: best over parents, see
  :meth:`elsst_bench.thesaurus.Thesaurus.wu_palmer`); 1 when the top-1 concept is relevant.

Averages: the binary metrics and WuP@1 are means over the queries with at least one grade-3 concept
(``queries_binary``; a query without one cannot be scored under binary relevance — BEIR and
sentence-transformers' ``InformationRetrievalEvaluator`` drop it too); graded nDCG is a mean over all queries
of the split (``queries``). In ELSST R5 the two differ only for a few non-English broader queries whose direct
broader concept has no label in that language.

A ranking that holds one concept twice in its top 10 is refused (:func:`check_no_repeats`): every metric above
assumes distinct candidates, and ranx would count a repeated relevant concept at every rank it fills.

ranx computes everything from 3-D arrays (queries × candidates × (id, score)) handed straight to its numba
kernels, with pool rows as integer ids and the rank-derived scores of :mod:`.rankings`: no hashing, no
dictionaries, no re-sorting. The kernels compile on first use (cached on disk by numba); :func:`warm_up`
does that once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import DataError
from ..metric_names import BINARY_METRICS, METRICS, PRIMARY_METRIC, WUP_METRIC
from .rankings import RANK_BASE, Rankings

BINARY_GRADE = 3
CUTOFF = 10
_PAD_ID = -0.5  # qrels padding: never equal to a pool row (>= 0), a missing candidate (-1) or an unpooled id

_warm = False


def _threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def _ranx_evaluate(qrels: np.ndarray, run: np.ndarray, metrics) -> dict[str, np.ndarray]:
    import ranx

    # threads given explicitly: ranx drops to 1 thread for fewer than 10 queries and never restores it.
    # A single metric is passed twice: ranx 0.3.21 raises KeyError for one metric with return_mean=False.
    names = list(metrics) * (2 if len(metrics) == 1 else 1)
    return ranx.evaluate(qrels, run, names, return_mean=False, threads=_threads())


def warm_up() -> None:
    """Compile (or load from numba's disk cache) the ranx kernels used here; idempotent."""
    global _warm
    if _warm:
        return
    n = 12
    run = np.zeros((n, CUTOFF, 2))
    run[:, :, 0] = np.arange(CUTOFF)
    run[:, :, 1] = RANK_BASE - np.arange(1, CUTOFF + 1)
    qrels = np.full((n, 2, 2), _PAD_ID)
    qrels[:, 0] = (3.0, 3.0)
    qrels[:, 1, 1] = 0.0
    _ranx_evaluate(qrels, run, BINARY_METRICS)
    _ranx_evaluate(qrels, run, ("ndcg@10",))
    _warm = True


def per_query(ranked: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, float]], metrics: Sequence[str],
              width: int = CUTOFF) -> dict[str, np.ndarray]:
    """``{metric: values}`` per query, in the order of ``qrels``' keys, for rankings ``{query: [id, ...]}`` and
    judgments ``{query: {id: grade}}`` keyed by strings (compare's rankings, Track 1's submissions). The ids become
    integers and the arrays go to the kernels above, compiled once and cached on disk; ranx's ``Qrels``/``Run``
    dictionaries instead compile about 30 s of numba code in every process. A query missing from ``ranked`` has an
    empty ranking; the first ``width`` distinct ids of a ranking are read."""
    queries = list(qrels)
    if not queries:
        return {metric: np.zeros(0) for metric in metrics}
    ids: dict[str, int] = {}
    rows = np.full((len(queries), width), -1, dtype=np.int64)
    for i, query in enumerate(queries):
        row = [ids.setdefault(d, len(ids)) for d in list(dict.fromkeys(ranked.get(query, ())))[:width]]
        rows[i, :len(row)] = row
    judged = [(i, ids.setdefault(d, len(ids)), grade) for i, query in enumerate(queries)
              for d, grade in qrels[query].items()]
    table = np.array(judged, dtype=np.float64).reshape(-1, 3)  # (query row, id, grade) per judgment
    table = qrels_array(table[:, 0].astype(np.int64), table[:, 1], table[:, 2], len(queries))
    return _ranx_evaluate(table, run_array(rows, width), tuple(metrics))


def repeats(rows: np.ndarray) -> np.ndarray:
    """Per query (a row of ``rows``, pool rows with -1 = none), whether one concept fills two ranks: the one
    definition of "no concept twice" that scoring (:func:`check_no_repeats`) and the leaderboard's checks share."""
    ordered = np.sort(rows, axis=1)
    return ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any(axis=1)


def check_no_repeats(rankings: Rankings, k: int = CUTOFF) -> None:
    """No query's top ``k`` (what the metrics read) holds one concept twice: a repeated relevant concept would
    be counted at every rank it fills (nDCG above 1). Raises a one-line DataError naming the query."""
    repeated = np.flatnonzero(repeats(rankings.rows[:, :k]))
    if repeated.size:
        i = int(repeated[0])
        rank = rankings.rows[i, :k].tolist()
        second = next(n for n, r in enumerate(rank) if r >= 0 and r in rank[:n])
        row = rank[second]
        raise DataError(f"query {rankings.qids[i]} ranks concept {rankings.doc_ids[row]} twice (ranks "
                        f"{rank.index(row) + 1} and {second + 1}); a ranking must not repeat a concept")


def run_array(rows: np.ndarray, k: int = CUTOFF) -> np.ndarray:
    """(n, k, 2) float64: candidate id (pool row, -1 = none) and the rank-derived score."""
    n = rows.shape[0]
    out = np.empty((n, k, 2), dtype=np.float64)
    out[:, :, 0] = -1.0
    width = min(k, rows.shape[1])
    out[:, :width, 0] = rows[:, :width]
    out[:, :, 1] = RANK_BASE - np.arange(1, k + 1)
    return out


def qrels_array(query: np.ndarray, ids: np.ndarray, grades: np.ndarray, n: int) -> np.ndarray:
    """(n, R, 2) float64 of (id, grade) per query, grades descending (ranx's IDCG needs that), padded.

    ``query[j]``, ``ids[j]``, ``grades[j]``: the j-th judgment (query row, candidate id, grade).
    """
    counts = np.bincount(query, minlength=n)
    out = np.full((n, max(int(counts.max(initial=0)), 1), 2), _PAD_ID)
    out[:, :, 1] = 0.0
    order = np.lexsort((-grades, query))
    query, ids, grades = query[order], ids[order], grades[order]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    slot = np.arange(len(query)) - starts[query]
    out[query, slot, 0] = ids
    out[query, slot, 1] = grades
    return out


@dataclass
class Judgments:
    """A split's qrels flattened against one ranking's pool: judgment j is (query[j], ids[j], grades[j])."""

    query: np.ndarray  # int64 row of the query in the ranking
    docs: list[str]
    ids: np.ndarray  # float64 pool row; -2, -3, ... for judged concepts outside the pool
    grades: np.ndarray  # float64

    @classmethod
    def build(cls, rankings: Rankings, qrels: dict[str, dict[str, int]]) -> "Judgments":
        try:
            judged = [qrels[q] for q in rankings.qids]
        except KeyError as err:
            raise KeyError(f"query {err.args[0]} has no qrels") from None
        counts = np.fromiter((len(j) for j in judged), dtype=np.int64, count=len(judged))
        docs = [d for j in judged for d in j]
        grades = np.fromiter((g for j in judged for g in j.values()), dtype=np.float64, count=len(docs))
        doc_row = {doc: i for i, doc in enumerate(rankings.doc_ids)}
        ids = np.fromiter((doc_row.get(d, -1) for d in docs), dtype=np.float64, count=len(docs))
        missing = np.flatnonzero(ids == -1)
        if len(missing):  # judged but not in the pool: relevant, never retrieved
            unpooled: dict[str, int] = {}
            for j in missing.tolist():
                ids[j] = unpooled.setdefault(docs[j], -2 - len(unpooled))
        query = np.repeat(np.arange(len(judged), dtype=np.int64), counts)
        keep = grades > 0
        return cls(query[keep], [d for d, k in zip(docs, keep.tolist()) if k], ids[keep], grades[keep])


def score_rankings(rankings: Rankings, qrels: dict[str, dict[str, int]], thesaurus=None,
                   per_query: bool = False) -> dict:
    """Metrics of one task/language/split: ``{metric: mean, "queries": n, "queries_binary": m}``.

    ``qrels`` must judge every ranked query, and no query may rank a concept twice (:func:`check_no_repeats`).
    ``thesaurus`` enables ``wup@1``. With ``per_query`` the result also holds ``"per_query": {metric: {qid: value}}``.
    """
    check_no_repeats(rankings)
    warm_up()
    n = len(rankings.qids)
    judgments = Judgments.build(rankings, qrels)
    relevant = judgments.grades >= BINARY_GRADE
    binary_idx = np.unique(judgments.query[relevant])
    result: dict = {"queries": n, "queries_binary": len(binary_idx)}
    values: dict[str, np.ndarray] = {}
    if n:
        run = run_array(rankings.rows)
        graded = qrels_array(judgments.query, judgments.ids, judgments.grades, n)
        values[PRIMARY_METRIC] = _ranx_evaluate(graded, run, ("ndcg@10",))["ndcg@10"]
        if len(binary_idx):
            compact = np.searchsorted(binary_idx, judgments.query[relevant])  # query row -> binary row
            binary = qrels_array(compact, judgments.ids[relevant], np.ones(int(relevant.sum())), len(binary_idx))
            values.update(_ranx_evaluate(binary, np.ascontiguousarray(run[binary_idx]), BINARY_METRICS))
            if thesaurus is not None:
                values[WUP_METRIC] = wup_at_1(rankings, judgments, binary_idx, thesaurus)
    for metric in METRICS:
        if metric in values:
            result[metric] = float(np.mean(values[metric]))
        elif metric != WUP_METRIC or thesaurus is not None:
            result[metric] = None  # no query can be scored
    if per_query:
        qids = {m: rankings.qids if m == PRIMARY_METRIC else [rankings.qids[i] for i in binary_idx] for m in values}
        result["per_query"] = {m: dict(zip(qids[m], map(float, v))) for m, v in values.items()}
    return result


def wup_at_1(rankings: Rankings, judgments: Judgments, binary_idx: np.ndarray, thesaurus) -> np.ndarray:
    """WuP(top-1, nearest grade-3 concept) for the queries ``binary_idx`` (0 when nothing was retrieved)."""
    top = rankings.rows[:, 0] if rankings.rows.shape[1] else np.full(len(rankings.qids), -1)
    relevant = np.flatnonzero(judgments.grades >= BINARY_GRADE)
    doc_ids = rankings.doc_ids
    sims = np.zeros(len(relevant))
    for j, (q, row) in enumerate(zip(judgments.query[relevant].tolist(), judgments.ids[relevant].tolist())):
        first = int(top[q])
        if first < 0:
            continue
        if first == row:
            sims[j] = 1.0
            continue
        a, doc = doc_ids[first], judgments.docs[relevant[j]]
        sims[j] = thesaurus.wu_palmer(a, doc) if a in thesaurus and doc in thesaurus else 0.0  # memoised there
    out = np.zeros(len(binary_idx))
    np.maximum.at(out, np.searchsorted(binary_idx, judgments.query[relevant]), sims)
    return out


def macro(per_language: dict[str, dict]) -> dict:
    """Unweighted mean over languages of each metric; ``queries`` summed."""
    out: dict = {"languages": len(per_language),
                 "queries": sum(s["queries"] for s in per_language.values()),
                 "queries_binary": sum(s["queries_binary"] for s in per_language.values())}
    for metric in METRICS:
        vals = [s[metric] for s in per_language.values() if s.get(metric) is not None]
        if any(metric in s for s in per_language.values()):
            out[metric] = float(np.mean(vals)) if vals else None
    return out
