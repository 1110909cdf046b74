"""``elsst-bench evaluate``, ``compare`` (over :mod:`elsst_bench.evaluation`) and ``search`` (over :mod:`elsst_bench.serve`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .root import app
from ..progress import quiet_libraries
from .common import VOCABULARY, device_help, either, old_spelling, print_json, print_table, split_list

_DATASET_HELP = "Prepared dataset directory. Default: data/prepared/elsst-r5."


def _progress(quiet: bool) -> bool:
    if quiet:
        quiet_libraries()
    return not quiet and sys.stderr.isatty()


@app.command()
def evaluate(
    run_dir: Optional[str] = typer.Argument(None, help="Training run directory (config.json + adapter/)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Base model id or path (zero-shot). "
                                        "Default: multilingual-e5-small (offline; $ELSST_BENCH_MODEL overrides)."),
    split: str = typer.Option("test", help="dev or test (train works too)."),
    tasks: Optional[list[str]] = typer.Option(None, "--tasks", "-t", help="Comma-separated tasks or 'all' "
                                              "(default: all; for a RUN_DIR, the run's evaluation tasks)."),
    languages: Optional[list[str]] = typer.Option(None, "--languages", "-l", help="Comma-separated codes or 'all' "
                                                  "(default: all; for a RUN_DIR, the run's evaluation languages)."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    out: Optional[Path] = typer.Option(None, help="Output directory. Default: RUN_DIR, or runs/zeroshot-<model>/."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    index: str = typer.Option("flat", help="FAISS index: flat (exact), hnsw or ivf (approximate)."),
    batch_size: int = typer.Option(128, help="Encoding batch size."),
    device: str = typer.Option("auto", help=device_help()),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json instead of a table."),
    prompts: Optional[str] = typer.Option(None, help="Prompt convention of a base model: asymmetric (the model's "
                                          "query and document prompts; default), symmetric (the query prompt on "
                                          "both sides) or none. A run uses its own."),
) -> None:
    """Encode, search (FAISS), write top-100 rankings and metrics.json, print the scores."""
    from ..evaluation.commands import evaluate_command
    from ..evaluation.report import metrics_filename, table

    result, out_dir = evaluate_command(
        run_dir, model, dataset=dataset, split=split, tasks=split_list(tasks, "--tasks"),
        languages=split_list(languages, "--languages"),
        out=out, use_cache=not no_cache, index=index, batch_size=batch_size, device=device,
        show_progress=_progress(quiet), prompts=prompts,
    )
    metrics = result.metrics
    if as_json:
        print_json(metrics)
        return
    headers, rows = table(metrics)
    print_table(headers, rows)
    enc = metrics["encoding"]
    print(f"main score (macro nDCG@10 graded) {result.main_score:.4f}  split {split}  "
          f"encoded {enc['encoded']:,} of {enc['texts']:,} texts ({enc['from_cache']:,} cached)  "
          f"{metrics['evaluation_time']:.1f} s  written to {out_dir / metrics_filename(split)}")


@app.command()
def compare(
    runs: list[str] = typer.Argument(..., help="Run directories or metrics.json files (2 or more)."),
    split: str = typer.Option("test", help="Which metrics file of a run directory to read."),
    tasks: Optional[list[str]] = typer.Option(None, "--tasks", "-t"),
    languages: Optional[list[str]] = typer.Option(None, "--languages", "-l"),
    per_language: bool = typer.Option(False, "--per-language", help="Also one table per task and language."),
    max_p: float = typer.Option(0.05, "--max-p", help="Significance level."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Paired significance (Fisher randomization, Holm) on graded nDCG@10, per task."""
    from .. import paths
    from ..evaluation.significance import compare_runs, report_dict

    entries = compare_runs(runs, dataset if dataset is not None else paths.default_dataset_dir(), split=split,
                           tasks=split_list(tasks, "--tasks"), languages=split_list(languages, "--languages"),
                           per_language=per_language,
                           max_p=max_p)
    if as_json:
        print_json([report_dict(e) for e in entries])
        return
    for entry in entries:
        print(f"\n{entry['task']} [{', '.join(entry['languages'])}], {entry['queries']:,} queries, "
              f"nDCG@10 graded (query-weighted mean):")
        print_table(["run", "nDCG@10 graded"], [[r["name"], f"{r['mean']:.4f}"] for r in entry["runs"]])
        print_table(["control", "treatment", "Δ", "p", f"significant (Holm, α = {max_p:g})"],
                    [[c["control"], c["treatment"], f"{c['delta']:+.4f}", f"{c['p']:.4f}",
                      "yes" if c["significant"] else "no"] for c in entry["comparisons"]])
    print("\nPaired Fisher randomization test (10,000 sign permutations, seed 0, two-sided), Holm's correction over "
          "the pairs of each task: the test RESULTS.md reports.")


@app.command()
def search(
    text: str = typer.Argument(..., help="A phrase, e.g. from a catalogue record."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Run directory, model id or path."),
    languages: str = typer.Option("en", *VOCABULARY["languages"], help="Language of the text and of the pool."),
    old_languages: Optional[str] = old_spelling("--lang"),
    k: int = typer.Option(10, "-k", "--limit", help="Number of concepts (1 to 1000)."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help=_DATASET_HELP),
    no_cache: bool = typer.Option(False, "--no-cache"),
    device: str = typer.Option("auto", help=device_help()),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Suggest ELSST concepts (label, URI, broader path) for a free-text phrase: what `serve` answers, once."""
    from ..serve.load import search_command

    hits = search_command(text, model, dataset=dataset, lang=either(languages, old_languages, "en", "--languages",
                                                                     "--lang"), k=k, use_cache=not no_cache, device=device,
                          show_progress=_progress(quiet))
    if as_json:
        print_json(hits)
        return
    print_table(["rank", "score", "cosine", "label", "uri", "broader path"],
                [[h["rank"], h["score"], h["cosine"], h["label"], h["uri"],
                  " > ".join(b["label"] for b in h["broader"]) or "(top concept)"] for h in hits])
