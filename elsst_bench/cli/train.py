"""``elsst-bench train``, ``export`` and ``inspect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import BenchError
from .root import app
from ..progress import quiet_libraries
from ..training.recipes import DEFAULT_HARD_NEGATIVES, DEFAULT_MIN_GRADE, PLAIN
from .common import device_help, old_spelling, print_json, print_table, runs_dir_from, runs_dir_option, split_list


def _parse_options(values: list[str] | None) -> dict:
    """``--option k=v`` pairs; values are read as JSON when they parse (numbers, booleans, lists)."""
    out = {}
    for value in values or []:
        if "=" not in value:
            raise BenchError(f"--option expects key=value, got {value!r}")
        key, raw = value.split("=", 1)
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


@app.command()
def train(
    adapter: str = typer.Option(..., "--adapter", "-a", help="Adapter name (see `elsst-bench adapters`), 'full' or 'none'."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Base model: multilingual-e5-small (default; $ELSST_BENCH_MODEL overrides), all-MiniLM-L6-v2, an id or a path."),
    rank: int = typer.Option(8, help="Adapter rank r."),
    budget: Optional[str] = typer.Option(None, help="Match LoRA rank N's parameter count: 'lora-rN'."),
    tasks: Optional[list[str]] = typer.Option(None, "--tasks", "-t", help="Training tasks (default broader,synonym,crosslingual)."),
    languages: Optional[list[str]] = typer.Option(None, "--languages", "-l", help="Training languages (default en)."),
    epochs: int = typer.Option(3),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: Optional[float] = typer.Option(None, help="Learning rate (default: the method's; docs/adapters.md)."),
    seed: int = typer.Option(0),
    runs_dir: Path = runs_dir_option(),
    legacy_out: Optional[Path] = old_spelling("--out"),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Run directory name (default: derived from the options)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last checkpoint."),
    device: str = typer.Option("auto", help=device_help()),
    dataset: Optional[Path] = typer.Option(None, help="Prepared dataset directory (default data/prepared/elsst-r5)."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="Adapter option key=value (repeatable)."),
    sources: Optional[list[str]] = typer.Option(None, "--sources", help="EigenLoRAx: LoRA run directories (repeatable)."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", help="At most N pairs per task and language: a fixed hash sample, the same for every method and seed."),
    eval_languages: Optional[list[str]] = typer.Option(None, "--eval-languages", help="Evaluation languages (default: training ones)."),
    eval_tasks: Optional[list[str]] = typer.Option(None, "--eval-tasks", help="Evaluation tasks (default: all prepared)."),
    dev_languages: Optional[list[str]] = typer.Option(None, "--dev-languages", help="Dev (epoch selection) "
                                                      "languages (default: the evaluation ones)."),
    test: bool = typer.Option(True, "--test/--no-test", help="Score on test at the end; --no-test: a dev-only "
                              "run (learning-rate tuning)."),
    recipe: str = typer.Option(PLAIN, "--recipe", help="Training recipe: plain, or hard-negatives, graded, "
                               "guided joined by '+' (docs/recipes.md)."),
    hard_negatives: int = typer.Option(DEFAULT_HARD_NEGATIVES, "--hard-negatives", help="Recipe hard-negatives: negatives mined per pair."),
    min_grade: int = typer.Option(DEFAULT_MIN_GRADE, "--min-grade", help="Recipe graded: the lowest grade (1 or 2) that makes a row."),
    prompts: str = typer.Option("asymmetric", "--prompts", help="Prompt convention of training and evaluation: "
                                "asymmetric (the model's query and document prompts), symmetric (the query "
                                "prompt on both sides) or none."),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="Keep Trainer checkpoints after completion."),
    spectra_every: Optional[int] = typer.Option(None, "--spectra-every", help="Log ΔW's singular values and "
                                                "effective rank every N steps to spectra.jsonl."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory of the same id."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print the run's config and metrics as JSON."),
) -> None:
    """Fine-tune the encoder with an adapter on the train split, keep the best dev epoch, evaluate on test."""
    from .. import runs
    from ..training import TrainConfig, train as run_training
    from ..training.distributed import is_main_process

    if quiet:
        quiet_libraries()
    source_dirs = [s for value in sources or [] for s in value.split(",") if s]
    config = TrainConfig(
        adapter=adapter, model=model, rank=rank, budget=budget, tasks=split_list(tasks, "--tasks"),
        languages=split_list(languages, "--languages"), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        out=str(runs_dir_from(runs_dir, legacy_out)),
        run_id=run_id, resume=resume, device=device, dataset=str(dataset) if dataset else None,
        options=_parse_options(option), sources=source_dirs, max_pairs=max_pairs,
        eval_languages=split_list(eval_languages, "--eval-languages"), eval_tasks=split_list(eval_tasks, "--eval-tasks"),
        dev_languages=split_list(dev_languages, "--dev-languages"), test=test, keep_checkpoints=keep_checkpoints, spectra_every=spectra_every, overwrite=overwrite,
        recipe=recipe, hard_negatives=hard_negatives, min_grade=min_grade, prompts=prompts,
    )
    run_dir = run_training(config, progress=not quiet)
    if not is_main_process():  # a DDP process of rank > 0: rank 0 reports the run
        return
    record = runs.read_config(run_dir)
    metrics_file = run_dir / runs.METRICS_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else None  # --no-test: none
    if as_json:
        print_json({"run_dir": str(run_dir), "config": record, "metrics": metrics})
        return
    print(f"run {run_dir}: {record['adapter']}, {record['trainable_params']:,} trainable parameters, "
          f"{record.get('steps', 0)} steps in {record.get('train_seconds', 0):.1f} s, "
          f"peak memory {record['peak_memory_mb']:.0f} MB, device {record['device']}")
    if metrics is None:
        dev = record.get("best_dev_score")
        print(f"best dev score (macro graded nDCG@10): {dev:.4f}; not scored on test (--no-test)"
              if dev is not None else "not scored on test (--no-test)")
        return
    from ..evaluation.report import table

    print_table(*table(metrics))
    print(f"main score (macro graded nDCG@10 over tasks): {metrics['main_score']:.4f}")


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="A completed run directory."),
    merged: Optional[Path] = typer.Option(None, "--merged", help="Output directory for the merged "
                                          "SentenceTransformer (new or empty; an earlier export only with "
                                          "--overwrite)."),
    peft: Optional[Path] = typer.Option(None, "--peft", help="Output directory for a PEFT adapter "
                                        "(adapter_config.json + adapter_model.safetensors): PEFT's own type for "
                                        "PEFT's methods and tuners; a LoRA with the run's exact ΔW for the others."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export in the output directory."),
) -> None:
    """Write the run as a plain sentence-transformers model with the adapter merged into the base weights
    (--merged), or as a standard PEFT adapter for the base transformer (--peft); either with a model card."""
    from ..export import export_run

    quiet_libraries()  # a few seconds of loading: no progress bar, so a refusal after it is the only line
    print(export_run(run_dir, merged=merged, peft=peft, overwrite=overwrite))


@app.command()
def inspect(
    run_dir: Path = typer.Argument(..., help="A completed run directory."),
    as_json: bool = typer.Option(False, "--json"),
    no_plots: bool = typer.Option(False, "--no-plots", help="Do not write plots/*.png."),
) -> None:
    """Trainable parameters, train time, peak memory, singular-value spectra and effective rank of ΔW."""
    from .. import diagnostics

    quiet_libraries()  # loading prints no bar, so a refusal after it is the only line

    info = diagnostics.summary(run_dir)
    plots = [] if no_plots else diagnostics.plot(run_dir, info)
    public = {k: v for k, v in info.items() if not k.startswith("_")}
    public["plots"] = [str(p) for p in plots]
    if as_json:
        print_json(public)
        return
    print(f"run {info['run_id']}: adapter {info['adapter']}, {info['trainable_params']:,} trainable parameters, "
          f"{info['steps']} steps, train {info['train_seconds']} s, peak memory {info['peak_memory_mb']} MB")
    print(f"best dev nDCG@10 (graded) {info['best_dev_score']}, test main score {info['test_main_score']}")
    if info["layers"]:
        rows = [[name, round(v["effective_rank"], 3), " ".join(f"{s:.3g}" for s in v["top_singular_values"][:4])]
                for name, v in info["layers"].items()]
        print_table(["layer", "effective rank", "top singular values"], rows)
        print(f"mean effective rank {info['mean_effective_rank']:.3f}")
    for path in plots:
        print(f"plot: {path}")
