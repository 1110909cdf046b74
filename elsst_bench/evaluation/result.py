"""What one evaluation gives back: :class:`EvaluationResult`, the metrics.json content and the rankings behind it.

:func:`~.runner.evaluate_model` computes; :meth:`EvaluationResult.write` is the only place that puts an
evaluation on disk::

    <out_dir>/rankings/<task>.<lang>.<split>.tsv.gz   TREC run format, top 100 per query (one file per task and
                                                     language), run name ``elsst-bench:<model slug>:<adapter>``
    <out_dir>/metrics.json                            the test split; ``metrics.<split>.json`` for dev / train

Each file is written atomically (temporary file + ``os.replace``), the rankings first and the metrics file last,
so a metrics file on disk always describes rankings that are there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import atomic
from ..slugs import slug
from .rankings import Rankings, ranking_name, write_trec
from .report import metrics_filename


def default_run_name(metrics: dict) -> str:
    """The TREC run name (6th column): ``elsst-bench:<model slug>:<adapter>``."""
    model = (metrics.get("model") or {}).get("name") or "model"
    return f"elsst-bench:{slug(model, default='model')}:{metrics['adapter']}"


@dataclass(frozen=True)
class EvaluationResult:
    """One evaluation of an encoder on one split.

    - ``metrics``: the metrics.json content (schema in :mod:`.report`), exactly what :meth:`write` stores;
    - ``rankings``: ``{(task, lang): Rankings}``, the top-100 ranking of every query, in memory.
    """

    metrics: dict
    rankings: dict[tuple[str, str], Rankings]

    @property
    def split(self) -> str:
        return self.metrics["split"]

    @property
    def main_score(self) -> float | None:
        """Mean over tasks of each task's macro primary metric (graded nDCG@10)."""
        return self.metrics["main_score"]

    @property
    def scores(self) -> dict:
        """``{task: {lang: {metric: value, ...}, "macro": {...}}}``."""
        return self.metrics["scores"]

    def write(self, out_dir: str | os.PathLike, run_name: str | None = None) -> Path:
        """Write ``rankings/*.tsv.gz`` and then the metrics file into ``out_dir``; returns the metrics file's path.

        ``run_name``: the TREC run name in the ranking files (default :func:`default_run_name`)."""
        out = Path(out_dir)
        name = run_name or default_run_name(self.metrics)
        for (task, lang), ranked in self.rankings.items():
            write_trec(out / "rankings" / ranking_name(task, lang, self.split), ranked, name)
        path = out / metrics_filename(self.split)
        atomic.write_json(path, self.metrics)
        return path
