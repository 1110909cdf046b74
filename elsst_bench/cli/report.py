"""``elsst-bench report``: RESULTS.md and ``results/plots/`` from the published grids (:mod:`elsst_bench.reporting`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from .root import app


@app.command()
def report(
    check: bool = typer.Option(False, "--check", help="Render into a temporary folder and compare with the committed "
                               "RESULTS.md and plots; exit 2 naming the first that differs, write nothing."),
) -> None:
    """Write RESULTS.md and results/plots/ from the runs of the published sweeps and their leaderboard entries. Run
    it from the checkout, after `elsst-bench sweep results/multilingual/sweep.toml` (or another plan)."""
    from ..errors import BenchError

    root = Path.cwd().resolve()
    for needed in ("results/sweep.toml", "results/multilingual/sweep.toml", "leaderboards/benchmark.json"):
        if not (root / needed).is_file():
            raise BenchError(f"no {needed} here: run `elsst-bench report` from the repository's checkout")
    os.environ.setdefault("ELSST_BENCH_ROOT", str(root))
    from .. import reporting
    from ..reporting import common

    if common.ROOT != root:
        raise BenchError(f"the reporting layer reads {common.ROOT} ($ELSST_BENCH_ROOT), not this directory")
    if not check:
        reporting.main()
        return
    with tempfile.TemporaryDirectory() as tmp:
        text = reporting.render(plots_dir=Path(tmp))
        if not common.OUT.is_file() or common.OUT.read_text(encoding="utf-8") != text:
            raise BenchError(f"{common.OUT.relative_to(root)} is not what the runs give; run `elsst-bench report`")
        for plot in sorted(Path(tmp).iterdir()):
            committed = common.PLOTS / plot.name
            if not committed.is_file() or committed.read_bytes() != plot.read_bytes():
                raise BenchError(f"{committed.relative_to(root)} is not what the runs give; run `elsst-bench report`")
    print(f"{common.OUT.relative_to(root)} and {common.PLOTS.relative_to(root)}/ are what the runs give")
