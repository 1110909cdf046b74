"""``elsst-bench sweep CONFIG``: train, evaluate and submit a grid of runs (see :mod:`elsst_bench.sweep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .root import app
from ..progress import quiet_libraries
from .common import print_table


@app.command()
def sweep(
    config: Path = typer.Argument(..., help="Sweep file (TOML): out, leaderboard, [defaults], [[runs]] blocks."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the planned runs and their state; train nothing."),
    no_submit: bool = typer.Option(False, "--no-submit", help="Train and evaluate only; leave the leaderboard alone."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars (one line per run)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Run shard K of N (K/N, 1-based) of the plan; "
                                        "default: the SLURM array task's, else the whole plan."),
) -> None:
    """Run every planned run not yet complete (resuming interrupted ones), submit, re-render the leaderboard."""
    from ..shard import parse_shard, select, shard_from_environment
    from ..sweep import load_plan, plan_table, run_sweep, state

    whole = load_plan(config)
    part = parse_shard(shard) if shard is not None else shard_from_environment()
    plan = select(whole, part) if part is not None else whole
    where = f"{config}" + (f" (shard {part}: {len(plan.runs)} of {len(whole.runs)} runs)" if part else "")
    if dry_run:
        print_table(*plan_table(plan))
        todo = sum(state(r) != "complete" for r in plan.runs)
        print(f"{len(plan.runs)} runs in {where}: {todo} to train, {len(plan.runs) - todo} complete")
        return
    if quiet:
        quiet_libraries()
    summary = run_sweep(plan, submit=not no_submit, progress=not quiet)
    print(f"sweep {where}: {len(plan.runs)} runs; trained {len(summary.trained)}, resumed {len(summary.resumed)}, "
          f"already complete {len(summary.skipped)}, submitted {len(summary.submitted)}; {summary.seconds:.1f} s")
