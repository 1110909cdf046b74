"""``elsst-bench prepare``: SKOS release -> prepared multilingual retrieval tasks."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer

from .root import app
from .common import print_json, print_table, split_list


@app.command()
def prepare(
    source: Optional[str] = typer.Option(None, help="SKOS file (RDF/XML, Turtle, N-Triples; .gz ok) or URL. "
                                         "Default: the ELSST release 5 shipped in data/."),
    out: Optional[Path] = typer.Option(None, help="Dataset directory. Default: data/prepared/<dataset_id>."),
    languages: Optional[list[str]] = typer.Option(None, "--languages", "-l", help="Comma-separated codes or 'all'."),
    tasks: Optional[list[str]] = typer.Option(None, "--tasks", "-t", help="broader,synonym,crosslingual,definition"),
    seed: int = typer.Option(0, help="Salt of the concept-level split hash."),
    pivot: str = typer.Option("en", help="Pool language of the crosslingual task."),
    keep_case: bool = typer.Option(False, "--keep-case", help="Do not lower-case labels and definitions."),
    documents: str = typer.Option("label", help="Document text: 'label' or 'label+definition'."),
    rdf_format: Optional[str] = typer.Option(None, "--format", help="Force rdfxml|turtle|ntriples."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON instead of a table."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing prepared dataset at the target."),
) -> None:
    """Parse an ELSST (or any SKOS) release into the ELSST-Bench v1 tasks, BEIR layout."""
    from .. import paths, tasks as task_mod

    start = time.perf_counter()
    out_dir, manifest = task_mod.prepare(
        source if source is not None else paths.default_source(),
        out=out,
        languages=split_list(languages, "--languages"),
        tasks=split_list(tasks, "--tasks"),
        seed=seed,
        pivot=pivot,
        lowercase=not keep_case,
        documents=documents,
        fmt=rdf_format,
        overwrite=overwrite,
    )
    elapsed = time.perf_counter() - start
    for warning in manifest.get("warnings", []):
        print(f"elsst-bench: warning: {warning}", file=sys.stderr)
    if as_json:
        print_json({"path": str(out_dir), "seconds": round(elapsed, 3), **manifest})
        return
    counts = manifest["counts"]
    print(f"{manifest['dataset_id']}: {counts['live_concepts']:,} live concepts "
          f"({counts['concepts']:,} in the file, {counts['deprecated_concepts']} deprecated), "
          f"{len(manifest['languages'])} languages, {counts['broader_links']:,} broader links "
          f"({counts['polyhierarchy_concepts']} concepts with 2+ parents), cycles: {len(counts['cycles'])}")
    rows = []
    for task, per_lang in manifest["queries"].items():
        totals = {s: sum(v[s] for v in per_lang.values()) for s in task_mod.SPLITS}
        rows.append([task, len(per_lang), totals["train"], totals["dev"], totals["test"], sum(totals.values())])
    print_table(["task", "languages", "train", "dev", "test", "queries"], rows)
    print(f"fingerprint {manifest['fingerprint'][:16]}  written to {out_dir}  in {elapsed:.2f} s")


@app.command("export-dataset")
def export_dataset(
    out: Path = typer.Argument(..., help="Output directory: one Hugging Face dataset per task, OUT/<task>/."),
    dataset: Optional[Path] = typer.Option(None, help="Prepared dataset directory (default data/prepared/elsst-r5)."),
    tasks: Optional[list[str]] = typer.Option(None, "--tasks", "-t", help="Tasks to export (default: all prepared)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export in OUT."),
) -> None:
    """Write the prepared tasks as Hugging Face datasets in MTEB's corpus / queries / qrels layout, with cards."""
    from .. import paths
    from ..hf_dataset import export_dataset as export
    from ..tasks import open_prepared, resolve_selection

    ds = open_prepared(dataset if dataset is not None else paths.default_dataset_dir())
    chosen = resolve_selection(split_list(tasks, "--tasks"), ds.tasks(), "task") if tasks else None
    path, summary = export(ds, out, tasks=chosen, overwrite=overwrite)
    rows = [[task, len(per_lang), sum(c["test"] for c in per_lang.values())] for task, per_lang in summary.items()]
    print_table(["task", "languages", "test queries"], rows)
    print(f"wrote {path}: load one with datasets.load_dataset({str(path / next(iter(summary)))!r}, 'en-qrels', "
          "split='test')")
