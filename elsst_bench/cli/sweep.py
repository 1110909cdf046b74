"""``elsst-bench sweep CONFIG``: train, evaluate and submit a grid of runs (see :mod:`elsst_bench.sweep`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
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
    from ..sweep import load_plan, run_sweep, state, submitted_entry, tuned_lr
    from ..training import size_label
    from ..models import DEFAULT_PROMPTS
    from ..training.recipes import PLAIN

    whole = load_plan(config)
    part = parse_shard(shard) if shard is not None else shard_from_environment()
    plan = select(whole, part) if part is not None else whole
    where = f"{config}" + (f" (shard {part}: {len(plan.runs)} of {len(whole.runs)} runs)" if part else "")
    if dry_run:
        rows = []
        recipes = any(run.config.recipe != PLAIN for run in plan.runs)  # a column only where a recipe is set
        prompts = any(run.config.prompts != DEFAULT_PROMPTS for run in plan.runs)  # likewise a prompt convention
        for run in plan.runs:
            on_board = "–"
            if run.submit and plan.leaderboard is not None:
                on_board = "yes" if submitted_entry(run, plan.leaderboard) else "no"
            size = size_label(run.config.adapter, run.config.rank, run.config.budget)
            if run.lr_from is not None:
                picked = tuned_lr(plan, run)
                lr = f"{picked[0]:g} (dev)" if picked else "tuned (pending)"
            else:
                lr = f"{run.config.lr:g}" if run.config.lr is not None else "default"
            test = "yes" if run.config.test else "dev only"
            rows.append([run.id, run.config.adapter, size, lr, run.config.seed, test, state(run), on_board])
            if prompts:
                rows[-1].insert(3, run.config.prompts)
            if recipes:
                rows[-1].insert(3, run.config.recipe)
        print_table(["run", "adapter", "size", *(["recipe"] if recipes else []), *(["prompts"] if prompts else []),
                     "lr", "seed", "test", "state", "submitted"], rows)
        todo = sum(state(r) != "complete" for r in plan.runs)
        print(f"{len(plan.runs)} runs in {where}: {todo} to train, {len(plan.runs) - todo} complete")
        return
    if quiet:
        quiet_libraries()
    summary = run_sweep(plan, submit=not no_submit, progress=not quiet)
    print(f"sweep {where}: {len(plan.runs)} runs; trained {len(summary.trained)}, resumed {len(summary.resumed)}, "
          f"already complete {len(summary.skipped)}, submitted {len(summary.submitted)}; {summary.seconds:.1f} s")
