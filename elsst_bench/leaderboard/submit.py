"""``elsst-bench submit``: validate a run, re-score it from its rankings, store it as an entry.

Order: the cheap checks first (``benchmark.json``, the run's ``config.json`` and dataset fingerprint), then the
run's ``trainable_params`` re-counted from its base model, adapter and options (:mod:`.params`, the check
``--verify`` makes of every entry), then the benchmark's dataset (see :mod:`.benchmark`), then every ranking file,
then the scores, then — under the lock — the duplicate check and the writes. Any refusal raises
:class:`~elsst_bench.errors.DataError` before a single leaderboard file is touched.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation.report import metrics_filename
from ..metric_names import PRIMARY_METRIC
from . import store
from .benchmark import DEFAULT_LEADERBOARD, benchmark_dataset, read_benchmark
from .board import LABELS
from .entry import build, check_name, identity
from .params import check_trainable_params
from .validate import validate_config, validate_run


@dataclass
class Submitted:
    path: Path
    entry: dict
    notes: list[str] = field(default_factory=list)  # where the run's own metrics.json disagrees (ignored)


def reported_differences(run_dir: Path, entry: dict, split: str) -> list[str]:
    """Lines saying where ``metrics.json`` reports other numbers than the re-scored ones (informative only)."""
    path = run_dir / metrics_filename(split)
    try:
        reported = json.loads(path.read_text(encoding="utf-8"))["scores"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    notes = []
    for task, per_lang in entry["scores"].items():
        for lang, ours in per_lang.items():
            try:
                theirs = reported[task][lang][PRIMARY_METRIC]
            except (KeyError, TypeError):
                continue
            mine = ours.get(PRIMARY_METRIC)
            if isinstance(theirs, (int, float)) and mine is not None and abs(theirs - mine) > 1e-9:
                notes.append(f"{path.name} reports {LABELS[PRIMARY_METRIC]} {theirs:.4f} for {task}/{lang}; the board "
                             f"shows the re-scored {mine:.4f}")
    return notes


def submit(run_dir, leaderboard=DEFAULT_LEADERBOARD, *, name: str | None = None,
           dataset=None, submitted: _dt.date | None = None) -> Submitted:
    run_dir, leaderboard = Path(run_dir), Path(leaderboard)
    check_name(name)
    bench = read_benchmark(leaderboard)
    store.check_writable(leaderboard)
    config = validate_config(run_dir, bench)
    check_trainable_params(config, f"{run_dir}/config.json")
    ds = benchmark_dataset(bench, dataset)
    sub = validate_run(run_dir, bench, ds, config)
    eid = identity(sub)[0]
    found = store.duplicate_of(store.load_entries(leaderboard), {"id": eid})
    if found is not None:  # checked again under the lock; this one needs no scoring
        raise store.duplicate_error(found, store.rerender(leaderboard, bench))
    entry = build(sub, bench, ds, name=name, submitted=submitted)
    path = store.add(leaderboard, bench, entry)
    return Submitted(path, entry, reported_differences(run_dir, entry, bench.split))
