"""``elsst-bench submit`` and ``elsst-bench leaderboard``: thin wrappers over :mod:`elsst_bench.leaderboard`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .root import app
from .common import VOCABULARY, either, old_spelling, print_json, print_table, split_list

_BOARD_HELP = "Leaderboard directory (benchmark.json, entries/). Default: leaderboards/."
_DATASET_HELP = ("Prepared dataset with the benchmark's fingerprint. Default: data/prepared/elsst-r5 if it matches, "
                 "else prepared once into .cache/elsst-bench/datasets/.")


@app.command()
def submit(
    run_dir: Path = typer.Argument(..., help="Run directory: config.json + rankings/<task>.<lang>.test.tsv.gz."),
    leaderboard: Path = typer.Option(Path("leaderboards"), "--leaderboard", help=_BOARD_HELP),
    name: Optional[str] = typer.Option(None, "--name", help="Display name on the board. Default: the model name."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the stored entry (without its rankings) as JSON."),
) -> None:
    """Validate a run, re-score it from its rankings (metrics.json is ignored) and add it to the leaderboard."""
    from ..leaderboard import submit as do_submit
    from ..leaderboard.board import LABELS, SHOWN, fmt

    result = do_submit(run_dir, leaderboard, name=name, dataset=dataset)
    entry = result.entry
    if as_json:
        print_json({**{k: v for k, v in entry.items() if k != "rankings"}, "path": str(result.path),
                    "rankings_sha256": entry["rankings"]["sha256"], "notes": result.notes})
        return
    seed = "–" if entry["seed"] is None else entry["seed"]
    print(f"added {result.path}: {entry['name']} · {entry['adapter']} · {entry['trainable_params']:,} trainable "
          f"params · seed {seed} (re-scored from the rankings)")
    rows = [[task, lang, s["queries"], *[fmt(s.get(m)) for m in SHOWN]]
            for task, per_lang in entry["scores"].items() for lang, s in per_lang.items()
            if lang != "macro" or len(per_lang) > 2]
    print_table(["task", "lang", "queries", *[LABELS[m] for m in SHOWN]], rows)
    for note in result.notes:
        print(f"note: {note}")
    print(f"next: commit {leaderboard}/ and open a pull request (see CONTRIBUTING.md)")


@app.command("leaderboard")
def show_leaderboard(
    tasks: Optional[list[str]] = typer.Option(None, *VOCABULARY["tasks"], help="Only these tasks (comma-separated)."),
    old_tasks: Optional[list[str]] = old_spelling("--task"),
    leaderboard: Path = typer.Option(Path("leaderboards"), "--leaderboard", help=_BOARD_HELP),
    verify: bool = typer.Option(False, "--verify", help="Re-score every entry from its rankings and check that "
                                "README.md and index.html are up to date; exit 2 on the first mismatch."),
    render: bool = typer.Option(False, "--render", help="Re-write README.md and index.html from the entries."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the tables as JSON."),
) -> None:
    """Print the leaderboard (one table per task and language set), or verify / re-render it."""
    from ..errors import BenchError
    from ..leaderboard import read_benchmark, tables, verify as do_verify
    from ..leaderboard import render as views
    from ..leaderboard import store
    from ..tasks import TASKS

    chosen = split_list(either(tasks, old_tasks, None, "--tasks", "--task"), "--tasks")
    unknown = [t for t in chosen or [] if t not in TASKS]
    if unknown:
        raise BenchError(f"unknown task {', '.join(map(repr, unknown))}; known: {', '.join(TASKS)}")
    if verify:
        print(do_verify(leaderboard, dataset))
        return
    bench = read_benchmark(leaderboard)
    if render:
        written = store.rerender(leaderboard, bench)
        print(f"rendered {', '.join(map(str, written))}" if written else f"{leaderboard}: already up to date")
        return
    entries = [e for _, e in store.load_entries(leaderboard)]
    shown = tables(entries, chosen)
    if as_json:
        print_json(views.as_json(shown))
        return
    if not shown:
        print(f"{leaderboard}: no entries yet" + (f" for {', '.join(chosen)}" if chosen else "")
              + "; see CONTRIBUTING.md to submit one")
        return
    print(f"{bench.dataset_id} ({bench.split}, fingerprint {bench.fingerprint[:12]}…): {len(entries)} entries, "
          "every number re-scored from the submitted rankings")
    for table in shown:
        print(f"\n{table.title}  ({len(table.groups)} rows)")
        print_table(views.headers(table), views.terminal_rows(table))
