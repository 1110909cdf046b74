"""A prepared dataset as Hugging Face datasets in the corpus / queries / qrels layout of MTEB's hub retrieval tasks.

``elsst-bench export-dataset OUT`` writes one dataset per ELSST task, ``OUT/<task>/``, each with a dataset card
(``README.md``) whose ``configs`` name, per language, three subsets:

- ``<lang>-corpus``, split ``corpus``: ``_id``, ``title`` (empty), ``text`` — the task's documents (for
  ``crosslingual`` the pivot language's labels, the same in every language);
- ``<lang>-queries``, split ``queries``: ``_id``, ``text``, ``concept`` (the concept the query came from: in
  ``broader`` it is never a candidate);
- ``<lang>-qrels``, splits ``train``, ``dev``, ``test``: ``query-id``, ``corpus-id``, ``score`` (graded 1..3).

``datasets.load_dataset("OUT/broader", "en-qrels", split="test")`` reads them offline. Files are JSON Lines,
byte-stable; the card carries ELSST's attribution and licence (CC BY-SA 4.0) and the source dataset's id and
fingerprint, which ``elsst_bench_export.json`` (the marker of such a directory) records too.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import atomic, outputs
from .cards import DATA_ATTRIBUTION
from .tasks import SPLITS, PreparedDataset

MARKER = "elsst_bench_export.json"
KIND = outputs.Kind("an exported Hugging Face dataset", (MARKER,))


def _card(ds: PreparedDataset, task: str, languages: list[str], counts: dict) -> str:
    configs = []
    for lang in languages:
        configs += [f"- config_name: {lang}-corpus", "  data_files:", "  - split: corpus",
                    f"    path: {lang}/corpus.jsonl",
                    f"- config_name: {lang}-queries", "  data_files:", "  - split: queries",
                    f"    path: {lang}/queries.jsonl",
                    f"- config_name: {lang}-qrels", "  data_files:"]
        configs += [line for split in SPLITS for line in (f"  - split: {split}", f"    path: {lang}/qrels/{split}.jsonl")]
    rows = [f"| {lang} | {counts[lang]['corpus']:,} | " + " | ".join(f"{counts[lang][s]:,}" for s in SPLITS) + " |"
            for lang in languages]
    return "\n".join([
        "---",
        "license: cc-by-sa-4.0",
        f"language: [{', '.join(json.dumps(lang) for lang in languages)}]",
        "task_categories: [text-retrieval]",
        "tags: [elsst, elsst-bench, thesaurus, mteb]",
        "configs:", *configs,
        "---", "",
        f"# ELSST-Bench `{task}`", "",
        f"The `{task}` task of ELSST-Bench, from the prepared dataset `{ds.dataset_id}` (fingerprint "
        f"`{ds.fingerprint}`), in the corpus / queries / qrels layout of MTEB's retrieval tasks: per language, "
        "the subsets `<lang>-corpus`, `<lang>-queries` and `<lang>-qrels` (splits train, dev, test; graded "
        "relevance 1..3).", "",
        "| language | documents | " + " | ".join(f"{s} queries" for s in SPLITS) + " |",
        "|---|---|" + "---|" * len(SPLITS), *rows, "",
        f"Data: {DATA_ATTRIBUTION}. Share what you derive from it under the same licence.", "",
    ])


def export_dataset(ds: PreparedDataset, out: str | Path, *, tasks: list[str] | None = None,
                   overwrite: bool = False) -> tuple[Path, dict]:
    """Write ``ds`` (every task, or ``tasks``) under ``out``; returns ``(out, {task: {lang: counts}})``."""
    out = Path(out)
    outputs.check_target(out, KIND, replace=overwrite)
    chosen = [t for t in ds.tasks() if tasks is None or t in tasks]
    summary: dict[str, dict[str, dict[str, int]]] = {}
    with atomic.directory(out, KIND if overwrite else None) as tmp:
        for task in chosen:
            languages = ds.languages(task)
            counts: dict[str, dict[str, int]] = {}
            for lang in languages:
                data = ds.load(task, lang)
                base = tmp / task / lang
                (base / "qrels").mkdir(parents=True)
                (base / "corpus.jsonl").write_bytes(atomic.jsonl_bytes(
                    {"_id": doc, "title": "", "text": text} for doc, text in sorted(data.corpus.items())))
                (base / "queries.jsonl").write_bytes(atomic.jsonl_bytes(
                    {"_id": qid, "text": text, "concept": data.query_concept[qid]}
                    for qid, text in sorted(data.queries.items())))
                for split in SPLITS:
                    (base / "qrels" / f"{split}.jsonl").write_bytes(atomic.jsonl_bytes(
                        {"query-id": qid, "corpus-id": doc, "score": grade}
                        for qid, docs in sorted(data.qrels[split].items()) for doc, grade in sorted(docs.items())))
                counts[lang] = {"corpus": len(data.corpus), **{s: len(data.qrels[s]) for s in SPLITS}}
            (tmp / task / "README.md").write_text(_card(ds, task, languages, counts), encoding="utf-8")
            summary[task] = counts
        atomic.write_json(tmp / MARKER, {"dataset_id": ds.dataset_id, "fingerprint": ds.fingerprint,
                                         "tasks": chosen, "counts": summary})
    return out, summary
