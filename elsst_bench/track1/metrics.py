"""Track 1's four metrics, binary relevance (a concept is relevant iff it is one of the passage's
``positive_ids``), each the mean over the passages:

- nDCG@10 (primary): Σ_{i ≤ 10} rel_i / log2(i + 1), divided by the ideal Σ_{i ≤ min(|P|, 10)} 1 / log2(i + 1);
- MRR: 1 / the rank of the first positive in the submitted list (≤ 100 concepts), 0 when none is there;
- Recall@5, Recall@10: |P ∩ top k| / |P|.

Computed by ranx (``ndcg@10``, ``mrr``, ``recall@5``, ``recall@10``), whose definitions these are, through the
array kernels the benchmark's own metrics use (:func:`elsst_bench.evaluation.metrics.per_query`); a ranking's order
is its list order (rank-derived scores, so ties cannot reorder it). The tests check
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
    from ..evaluation.metrics import per_query

    width = max(10, *(len(ranked.get(pid, ())) for pid in positives)) if positives else 10  # MRR reads it all
    values = per_query(ranked, {pid: dict.fromkeys(cids, 1) for pid, cids in positives.items()}, METRICS, width)
    return {metric: float(values[metric].mean()) if len(values[metric]) else 0.0 for metric in METRICS}
