"""``elsst-bench track1 check|evaluate|train|submit``: Track 1 of the OrthoGeoLoRA author's ELSST benchmark, from a
local copy of its files (:mod:`elsst_bench.track1`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .root import app
from .common import device_help, old_spelling, print_json, print_table, runs_dir_from, runs_dir_option

track1 = typer.Typer(help="Track 1 (implicit concept retrieval) from a local copy of its files: check them, score "
                     "a model or run on val, train on train, write a test submission.", no_args_is_help=True)
app.add_typer(track1, name="track1")

_RELEASE = "Directory holding train.jsonl, val.jsonl, test_input.jsonl and concept_pool.jsonl."
_MODEL = "Base model id or path (zero-shot), instead of RUN (default: multilingual-e5-small)."


def _release(directory: Path):
    from ..track1 import read_release

    return read_release(directory)


def _encoder(run: Optional[Path], model: Optional[str], device: str):
    """``(encoder, what it is)`` from a run directory or a base model."""
    from ..devices import resolve_device
    from ..errors import BenchError

    if run is not None and model is not None:
        raise BenchError("give either RUN or --model, not both")
    if run is not None:
        from .. import runs

        loaded, info = runs.load_run(run, device=resolve_device(device))
        return loaded, f"run {run} ({info['adapter']})"
    from ..models import load_sentence_transformer, resolve_model

    return load_sentence_transformer(model, device=resolve_device(device)), f"{resolve_model(model)[0]} (zero-shot)"


@track1.command("check")
def check(
    release: Path = typer.Argument(..., help=_RELEASE),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="Prepared ELSST dataset to map the concepts onto "
                                           "(default data/prepared/elsst-r5)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Read and check the four files (one line and exit 2 on the first problem); count them; map the concept pool
    onto ELSST's concepts where its ids or terms are ELSST's."""
    from .. import paths
    from ..tasks import open_prepared
    from ..track1.mapping import map_to_elsst

    found = _release(release)
    mapped = map_to_elsst(found, open_prepared(dataset or paths.default_dataset_dir()).thesaurus()).counts()
    summary = {"release": str(release), "fingerprint": found.fingerprint, "concepts": len(found.pool),
               **{f"{split} passages": len(found.split(split)) for split in ("train", "val", "test")},
               "positives per labelled passage": round(sum(len(p.positives) for p in found.train + found.val)
                                                       / len(found.train + found.val), 3),
               "hard negatives per labelled passage": round(sum(len(p.negatives) for p in found.train + found.val)
                                                            / len(found.train + found.val), 3),
               "ELSST concepts by id": mapped["id"], "by URI": mapped["uri"], "by English term": mapped["term"],
               "not ELSST's": mapped["unmapped"]}
    if as_json:
        print_json(summary)
        return
    print_table(["", "value"], [[k, v] for k, v in summary.items()])


@track1.command("evaluate")
def evaluate(
    release: Path = typer.Argument(..., help=_RELEASE),
    run: Optional[Path] = typer.Argument(None, help="A complete run directory (any of the benchmark's, or "
                                         "`track1 train`'s)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=_MODEL),
    split: str = typer.Option("val", help="val (or train)."),
    device: str = typer.Option("auto", help=device_help()),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Rank the concept pool for every passage of a labelled split and print Track 1's four metrics."""
    from ..errors import BenchError
    from ..track1 import METRICS, score
    from ..track1.rank import rank_passages

    if split not in ("val", "train"):
        raise BenchError(f"--split must be val or train (test_input.jsonl has no labels), got {split!r}")
    found = _release(release)
    encoder, what = _encoder(run, model, device)
    passages = found.split(split)
    values = score(rank_passages(encoder, found, passages), {p.id: p.positives for p in passages})
    if as_json:
        print_json({"encoder": what, "split": split, "passages": len(passages), **values})
        return
    print_table(["metric", split], [[m, f"{values[m]:.4f}"] for m in METRICS])
    print(f"{what}, {len(passages):,} {split} passages, {len(found.pool):,} concepts")


@track1.command("train")
def train(
    release: Path = typer.Argument(..., help=_RELEASE),
    adapter: str = typer.Option(..., "--adapter", "-a", help="Adapter name (see `elsst-bench adapters`) or full."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Base model (default multilingual-e5-small)."),
    rank: int = typer.Option(8, "--rank", help="Adapter rank r."),
    budget: Optional[str] = typer.Option(None, "--budget", help="Match LoRA rank N's parameter count: lora-rN."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="Adapter option KEY=VALUE (JSON value)."),
    epochs: int = typer.Option(1, "--epochs"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default: the method's)."),
    seed: int = typer.Option(0, "--seed"),
    hard_negatives: int = typer.Option(1, "--hard-negatives", help="Negatives per row, from hard_negative_ids."),
    max_pairs: Optional[int] = typer.Option(None, "--max-pairs", help="Train on at most this many rows."),
    runs_dir: Path = runs_dir_option(),
    legacy_out: Optional[Path] = old_spelling("--out"),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Default track1-<adapter>-s<seed>."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run of the same id."),
    device: str = typer.Option("auto", help=device_help()),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train an adapter on train.jsonl (passage → positive concept's term and definition, hard negatives from the
    file), keep the epoch with the best val nDCG@10, and print the val metrics."""
    from ..progress import quiet_libraries
    from ..track1 import METRICS
    from ..track1.train import Track1Config, train_track1
    from .train import _parse_options

    if quiet:
        quiet_libraries()
    found = _release(release)
    config = Track1Config(adapter=adapter, model=model, rank=rank, budget=budget, options=_parse_options(option),
                          epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, hard_negatives=hard_negatives,
                          max_pairs=max_pairs, out=str(runs_dir_from(runs_dir, legacy_out)), run_id=run_id, overwrite=overwrite, device=device)
    run_dir = train_track1(found, config, progress=not quiet)
    from .. import runs

    record = runs.read_config(run_dir)
    print_table(["metric", "val"], [[m, f"{record['val_metrics'][m]:.4f}"] for m in METRICS])
    print(f"run {run_dir}: {record['trainable_params']:,} trainable parameters, {record['steps']} steps in "
          f"{record['train_seconds']:.0f} s")


@track1.command("submit")
def submit(
    release: Path = typer.Argument(..., help=_RELEASE),
    run: Optional[Path] = typer.Argument(None, help="A complete run directory."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=_MODEL),
    out: Path = typer.Option(..., "--out", help="The submission file to write (JSON lines)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file at --out."),
    device: str = typer.Option("auto", help=device_help()),
) -> None:
    """Rank the concept pool for every test passage (top 100) and write the submission, checked against the
    published rules before it is written."""
    from ..errors import BenchError
    from ..outputs import check_writable
    from ..track1 import write_submission
    from ..track1.rank import rank_passages

    if out.is_symlink() or out.is_dir():
        raise BenchError(f"{out} is a {'symbolic link' if out.is_symlink() else 'directory'}, not a submission file; "
                         "choose another --out")
    if out.exists() and not overwrite:
        raise BenchError(f"{out} exists; pass --overwrite to replace it, or choose another --out")
    check_writable(out, "submission", file=True)
    found = _release(release)
    encoder, what = _encoder(run, model, device)
    path = write_submission(out, rank_passages(encoder, found, found.test), found)
    print(f"wrote {path}: {len(found.test):,} test passages, {min(100, len(found.pool))} concepts each (of "
          f"{len(found.pool):,}), from {what}")
