"""Evaluation layer: encode → FAISS → rankings (tie rule, own-concept removal) → ranx metrics + WuP@1.

Public API (imports are light; torch, faiss and ranx load on first use):

- :func:`evaluate_model` — evaluate an in-memory encoder on a prepared dataset (used by the CLI and by the
  training loop for dev evaluation); it returns an :class:`EvaluationResult` (``.metrics``: the metrics.json
  content, ``.rankings``, ``.main_score``; ``.write(out_dir)`` stores ``rankings/`` + ``metrics.json``).
  :class:`EvaluationOptions` holds the rarely changed knobs (embedding cache, batch size, index, top k).
- :func:`score_rankings`, :class:`Rankings`, :func:`rank`, :func:`tie_sort`, :func:`read_trec`,
  :func:`warm_up` — the pieces, for tests and other layers.
- :func:`compare_runs` — paired Fisher randomization tests between evaluated runs.
- :data:`METRICS`, :data:`BINARY_METRICS`, :data:`PRIMARY_METRIC` — metric names in metrics.json (their home
  is :mod:`elsst_bench.metric_names`, importable without this layer).
"""

from ..metric_names import BINARY_METRICS, METRICS, PRIMARY_METRIC
from .encode import EmbeddingCache, EmbeddingTable, default_cache_dir, model_cache_key
from .metrics import macro, score_rankings, warm_up
from .rankings import TOP_K, Rankings, rank, rank_scores, ranking_name, read_trec, tie_sort, write_trec
from .report import load_metrics, metrics_filename
from .result import EvaluationResult
from .runner import EvaluationOptions, evaluate_model, select
from .significance import compare_runs

__all__ = [
    "BINARY_METRICS", "METRICS", "PRIMARY_METRIC", "TOP_K",
    "EmbeddingCache", "EmbeddingTable", "EvaluationOptions", "EvaluationResult", "Rankings",
    "compare_runs", "default_cache_dir", "evaluate_model", "load_metrics", "macro",
    "metrics_filename", "model_cache_key", "rank", "rank_scores", "ranking_name", "read_trec", "score_rankings",
    "select", "tie_sort", "warm_up", "write_trec",
]
