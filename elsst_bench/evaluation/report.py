"""metrics.json: an MTEB-like record of one evaluation, and the table the CLI prints.

Schema (keys sorted on disk)::

    {"dataset_id", "dataset_fingerprint", "split",
     "model": {"name", "location", "sha256", ...}, "adapter": "none" | name, "trainable_params": int,
     "scores": {task: {lang: {metric: value, "queries": n, "queries_binary": m},
                       "macro": {metric: mean over languages, "queries": Σn, "queries_binary": Σm, "languages": L}}},
     "main_score": mean over tasks of scores[task]["macro"][PRIMARY_METRIC],
     "primary_metric": PRIMARY_METRIC (``ndcg@10_graded``),
     "rankings": {task: {lang: "rankings/<task>.<lang>.<split>.tsv.gz"}},
     "encoding": {"texts", "from_cache", "encoded", "seconds"}, "index": "flat" | "hnsw" | "ivf",
     "evaluation_time": seconds, "evaluated_at": ISO-8601 UTC,
     "versions": {python, elsst-bench, torch, transformers, sentence-transformers, peft, faiss, ranx, numpy}}

Metric names (:mod:`elsst_bench.metric_names`): ``mrr@10 recall@1 recall@3 recall@5 recall@10 ndcg@3 ndcg@10``
(binary, grade ≥ 3), ``ndcg@10_graded`` (primary), ``wup@1`` — see :mod:`.metrics` for their definitions.
``versions`` comes from :func:`elsst_bench.runs.versions` (``None``: a package that is not installed).
A run directory holds ``metrics.json`` for the test split and ``metrics.<split>.json`` for another split.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..jsontypes import read_json
from ..metric_names import METRICS, PRIMARY_METRIC


def metrics_filename(split: str) -> str:
    return "metrics.json" if split == "test" else f"metrics.{split}.json"


def main_score(scores: dict) -> float | None:
    vals = [t["macro"].get(PRIMARY_METRIC) for t in scores.values() if t.get("macro")]
    vals = [v for v in vals if v is not None]
    return float(sum(vals) / len(vals)) if vals else None


def load_metrics(path: str | Path, split: str = "test") -> tuple[dict, Path]:
    """Read a metrics.json (or the one of a run directory). Returns ``(content, its directory)``."""
    path = Path(path)
    if path.is_dir():
        path = path / metrics_filename(split)
    if not path.exists():
        raise DataError(f"{path} does not exist; run `elsst-bench evaluate` on that run first")
    content = read_json(path)
    if not isinstance(content, dict) or "scores" not in content or "dataset_fingerprint" not in content:
        raise DataError(f"{path} is not an elsst-bench metrics.json")
    return content, path.parent


SHORT = {PRIMARY_METRIC: "nDCG@10g", "mrr@10": "MRR@10", "recall@1": "R@1", "recall@10": "R@10",
         "ndcg@10": "nDCG@10", "wup@1": "WuP@1"}


def table(result: dict) -> tuple[list[str], list[list]]:
    """Headers and rows of the per-task/language table (macro rows where a task has 2+ languages)."""
    shown = [m for m in (PRIMARY_METRIC, "mrr@10", "recall@1", "recall@10", "ndcg@10", "wup@1") if m in METRICS]
    headers = ["task", "lang", "queries", *[SHORT.get(m, m) for m in shown]]
    rows = []
    for task, per_lang in result["scores"].items():
        langs = [lang for lang in per_lang if lang != "macro"]
        keys = langs + (["macro"] if len(langs) > 1 else [])
        for lang in keys:
            s = per_lang[lang]
            rows.append([task, lang, s["queries"], *[("-" if s.get(m) is None else s[m]) for m in shown]])
    return headers, rows
