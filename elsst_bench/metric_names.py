"""The names of the benchmark's metrics: the one place they are spelled (no torch, no ranx, no numpy).

They are the keys of ``metrics.json`` ``scores[task][lang]``, of leaderboard entries and of ``benchmark.json``'s
``primary_metric``; :mod:`elsst_bench.evaluation.metrics` defines how each is computed.

- :data:`BINARY_METRICS` — relevance = grade 3: MRR@10, Recall@1/3/5/10, nDCG@3/@10;
- :data:`PRIMARY_METRIC` — nDCG@10 over the graded qrels (``ndcg@10_graded``), the primary metric of every task;
- :data:`METRICS` — all of them, in the order metrics.json lists them, ending with WuP@1.

The training loop's dev evaluator is named ``dev``, so the Hugging Face Trainer logs the dev primary metric as
``eval_dev_ndcg@10_graded`` (:func:`dev_key`); ``train_log.jsonl`` rows carry that key.
"""

from __future__ import annotations

BINARY_METRICS = ("mrr@10", "recall@1", "recall@3", "recall@5", "recall@10", "ndcg@3", "ndcg@10")
PRIMARY_METRIC = "ndcg@10_graded"
WUP_METRIC = "wup@1"
METRICS = (*BINARY_METRICS, PRIMARY_METRIC, WUP_METRIC)

#: The name of the training loop's dev evaluator (the Trainer prefixes its metrics with ``eval_<name>_``).
DEV_EVALUATOR = "dev"


def dev_key(metric: str = PRIMARY_METRIC, evaluator: str = DEV_EVALUATOR) -> str:
    """The key the Trainer logs a dev metric under: ``eval_dev_ndcg@10_graded`` for the primary metric."""
    return f"eval_{evaluator}_{metric}"
