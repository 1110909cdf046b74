"""The leaderboard: trusted submissions, re-scoring from rankings, and a static board (Markdown + HTML).

``<leaderboard>/`` (``leaderboards/`` in the repository) holds ``benchmark.json`` (the dataset fingerprint and
split every number is computed on), ``entries/*.json`` (one per submitted run, with its top-10 rankings) and
the generated ``README.md`` and ``index.html``. Modules, one idea each:

- :mod:`.benchmark` — ``benchmark.json`` and the verified dataset it pins;
- :mod:`.validate` — what a submitted run directory must satisfy;
- :mod:`.codec` — the compact top-10 rankings stored in an entry (and why the top 10 is exact);
- :mod:`.entry` — the entry document, its id, scoring and re-scoring;
- :mod:`.params` — ``trainable_params`` re-counted from an entry's base model, adapter and options;
- :mod:`.board` — grouping entries into ranked rows (mean ± std over seeds);
- :mod:`.render` — README.md, index.html and the terminal table;
- :mod:`.store` — files on disk, the lock, atomic writes;
- :mod:`.submit`, :mod:`.verify` — the two commands.
"""

from __future__ import annotations

from pathlib import Path

from .benchmark import BENCHMARK_FILE, DEFAULT_LEADERBOARD, Benchmark, benchmark_dataset, read_benchmark
from .board import tables
from .submit import Submitted, submit
from .verify import verify

__all__ = ["BENCHMARK_FILE", "DEFAULT_LEADERBOARD", "Benchmark", "Submitted", "benchmark_dataset", "init_board",
           "read_benchmark", "submit", "tables", "verify"]


def init_board(leaderboard, dataset, split: str = "test") -> Benchmark:
    """Bind a (new) leaderboard directory to a prepared dataset and render it (used for the repository's board
    and by tests with a small dataset)."""
    from ..tasks import PreparedDataset, open_prepared
    from . import store
    from .benchmark import disk_fingerprint

    ds = dataset if isinstance(dataset, PreparedDataset) else open_prepared(dataset)
    bench = Benchmark(ds.dataset_id, disk_fingerprint(ds) or ds.fingerprint, split)
    leaderboard = Path(leaderboard)
    (leaderboard / store.ENTRIES).mkdir(parents=True, exist_ok=True)
    store.write_benchmark(leaderboard, bench)
    store.rerender(leaderboard, bench)
    return bench
