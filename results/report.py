"""Write RESULTS.md and results/plots/*.png from the published grids, from a checkout:

    .venv/bin/python results/report.py          # after `elsst-bench sweep results/multilingual/sweep.toml` (or another)

The reporting layer is the package's own, :mod:`elsst_bench.reporting`; this script only points it at the checkout it
lives in (the report reads that checkout's runs and leaderboard, and writes its RESULTS.md and plots).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ["ELSST_BENCH_ROOT"] = str(Path(__file__).resolve().parent.parent)

from elsst_bench.reporting import main  # noqa: E402 (reads ELSST_BENCH_ROOT when imported)

if __name__ == "__main__":
    raise SystemExit(main())
