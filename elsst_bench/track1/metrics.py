"""Track 1's four metrics, binary relevance (a concept is relevant iff it is one of the passage's
``positive_ids``), each the mean over the passages:

- nDCG@10 (primary): Σ_{i ≤ 10} rel_i / log2(i + 1), divided by the ideal Σ_{i ≤ min(|P|, 10)} 1 / log2(i + 1);
- MRR: 1 / the rank of the first positive in the submitted list (≤ 100 concepts), 0 when none is there;
- Recall@5, Recall@10: |P ∩ top k| / |P|.

Computed by ranx (``ndcg@10``, ``mrr``, ``recall@5``, ``recall@10``), whose definitions these are, through the
array kernels the benchmark's own metrics use (:mod:`elsst_bench.evaluation.metrics`: compiled once and cached on
disk; ranx's ``Qrels``/``Run`` dictionaries compile about 30 s of numba code in every process): concept ids become
integers, a ranking's order is its list order (rank-derived scores, so ties cannot reorder it). The tests check
every number against a computation by hand. How the hosted evaluator breaks ties or cuts MRR is not published: if it
cuts MRR at 10, the two agree whenever a positive is in the top 10 and differ (ours > 0, theirs 0) otherwise.
"""

from __future__ import annotations

from typing import Mapping, Sequence

PRIMARY = "ndcg@10"
METRICS = (PRIMARY, "mrr", "recall@5", "recall@10")


def score(ranked: Mapping[str, Sequence[str]], positives: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``{metric: mean over the passages of positives}`` for rankings ``{passage id: [concept id, ...]}``; a passage
    missing from ``ranked`` counts as an empty ranking (0 on every metric)."""
    import numpy as np

    from ..evaluation.metrics import _ranx_evaluate, qrels_array, run_array

    passages = list(positives)
    if not passages:
        return {metric: 0.0 for metric in METRICS}
    ids: dict[str, int] = {}
    lists = [[ids.setdefault(cid, len(ids)) for cid in ranked.get(pid, ())] for pid in passages]
    width = max(10, *(len(row) for row in lists))  # nDCG@10 and Recall@10 read ten places; MRR the whole list
    rows = np.full((len(passages), width), -1, dtype=np.int64)
    for i, row in enumerate(lists):
        rows[i, :len(row)] = row
    judged = [(i, ids.setdefault(cid, len(ids))) for i, pid in enumerate(passages) for cid in dict.fromkeys(positives[pid])]
    query = np.array([i for i, _ in judged], dtype=np.int64)
    concept = np.array([c for _, c in judged], dtype=np.float64)
    qrels = qrels_array(query, concept, np.ones(len(judged)), len(passages))
    values = _ranx_evaluate(qrels, run_array(rows, width), METRICS)
    return {metric: float(np.mean(values[metric])) for metric in METRICS}
