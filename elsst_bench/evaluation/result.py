"""What one evaluation gives back: :class:`EvaluationResult`, the metrics.json content and the rankings behind it.

:func:`~.runner.evaluate_model` computes; :meth:`EvaluationResult.write` is the only place that puts an
evaluation on disk::

    <out_dir>/rankings/<task>.<lang>.<split>.tsv.gz   TREC run format, top 100 per query (one file per task and
                                                     language), run name ``elsst-bench:<model slug>:<adapter>``
    <out_dir>/metrics.json                            the test split; ``metrics.<split>.json`` for dev / train

An evaluation's files change together or not at all. Into a new (or empty) directory the whole evaluation is
built under a temporary name and moved into place (:func:`elsst_bench.atomic.directory`), so an interrupted
``evaluate --out NEW`` leaves nothing and its rerun starts afresh. Into an existing run, every ranking file is first
written in full to a staging directory inside it; then, with Ctrl-C and SIGTERM held, each is renamed over its
old version and the metrics file is written last: an interrupt never leaves one task's rankings from the new
evaluation beside another's from the old, or rankings that the metrics file does not describe.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import atomic
from ..runs import RANKINGS
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

    def write(self, out_dir: str | os.PathLike, run_name: str | None = None, records: dict | None = None) -> Path:
        """Write ``rankings/*.tsv.gz``, the metrics file and ``records`` (``{file name: JSON content}``, such as a
        zero-shot evaluation's ``config.json``) into ``out_dir``, all or nothing (module docstring); returns the
        metrics file's path. ``run_name``: the TREC run name in the ranking files (default
        :func:`default_run_name`)."""
        out = Path(out_dir)
        name = run_name or default_run_name(self.metrics)
        files = {metrics_filename(self.split): self.metrics, **(records or {})}
        if not out.is_dir() or not any(out.iterdir()):
            with atomic.directory(out) as tmp:
                for (task, lang), ranked in self.rankings.items():
                    write_trec(tmp / RANKINGS / ranking_name(task, lang, self.split), ranked, name)
                for file, content in files.items():
                    atomic.write_json(tmp / file, content)
            return out / metrics_filename(self.split)
        atomic.remove_stale_temporaries(out / RANKINGS)
        staging = Path(tempfile.mkdtemp(prefix=atomic._temporary_prefix(RANKINGS), suffix=".tmp", dir=out))
        try:
            names = []
            for (task, lang), ranked in self.rankings.items():
                names.append(ranking_name(task, lang, self.split))
                write_trec(staging / names[-1], ranked, name)
            (out / RANKINGS).mkdir(exist_ok=True)
            with atomic.deferred_interrupts():
                for file in names:
                    os.replace(staging / file, out / RANKINGS / file)
                for file, content in files.items():
                    atomic.write_json(out / file, content)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return out / metrics_filename(self.split)
