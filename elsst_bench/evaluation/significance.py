"""Paired significance between evaluated runs: Fisher's randomization test on graded nDCG@10, per task.

For each task, the runs' rankings (read back from their TREC files by rank, so the tie rule holds) are
scored with graded nDCG@10 — the primary metric — per query by ranx, on the queries of the split, pooled over
the selected languages (query ids prefixed ``<lang>/``; a paired test needs one score per query, so this pooled
mean is query-weighted, unlike the macro average of metrics.json). Every pair of runs gets a two-sided p-value
from :mod:`.paired` (10,000 permutations, seed 0: the test RESULTS.md reports, so both print the same p for the
same pair), and Holm's correction over the pairs of the task. ``per_language`` adds one comparison per task and
language.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..metric_names import PRIMARY_METRIC
from ..runs import RANKINGS
from ..tasks import TASKS, open_prepared, resolve_selection
from .metrics import per_query
from .paired import PERMUTATIONS, SEED, fisher, fisher_batch, holm
from .rankings import ranking_name, read_trec
from .report import load_metrics

COMPARE_METRIC = "ndcg@10"  # ranx's name; on the graded qrels it is metrics.json's PRIMARY_METRIC


def load_runs(paths: list[str | Path], split: str = "test") -> list[tuple[str, dict, Path]]:
    """``[(name, metrics.json content, its directory)]``; all on one dataset fingerprint and split."""
    if len(paths) < 2:
        raise DataError("compare needs at least two runs (run directories or metrics.json files)")
    runs, names = [], set()
    for path in paths:
        content, base = load_metrics(path, split)
        name = base.resolve().name or str(base)
        while name in names:
            name += "'"
        names.add(name)
        runs.append((name, content, base))
    first_name, first = runs[0][0], runs[0][1]
    for name, content, _ in runs[1:]:
        if content["dataset_fingerprint"] != first["dataset_fingerprint"]:
            raise DataError(f"{name} was evaluated on dataset fingerprint {content['dataset_fingerprint'][:16]} "
                            f"and {first_name} on {first['dataset_fingerprint'][:16]}; runs must share a dataset")
        if content.get("split") != first.get("split"):
            raise DataError(f"{name} was evaluated on the {content.get('split')} split and {first_name} on "
                            f"{first.get('split')}; runs must share a split")
    return runs


def compare_runs(paths: list[str | Path], dataset: str | Path, split: str = "test",
                 tasks: list[str] | None = None, languages: list[str] | None = None, per_language: bool = False,
                 max_p: float = 0.05, n_permutations: int = PERMUTATIONS) -> list[dict]:
    """One entry per task (and, with ``per_language``, per task and language)::

        {"task", "languages", "queries", "runs": [{"name", "mean"}],
         "comparisons": [{"control", "treatment", "delta", "p", "significant"}]}

    every pair of runs (the earlier one the control), ``p`` from :func:`.paired.fisher_batch`, ``significant``
    after Holm's correction over the pairs of the entry at level ``max_p``."""
    if not 0 < max_p < 1:
        raise DataError(f"--max-p is a significance level between 0 and 1 (exclusive), got {max_p:g}")
    runs = load_runs(paths, split)
    split = runs[0][1].get("split", split)
    ds = open_prepared(dataset)
    fingerprint = runs[0][1]["dataset_fingerprint"]
    if ds.fingerprint != fingerprint:
        raise DataError(f"the runs were evaluated on dataset fingerprint {fingerprint[:16]}, but {ds.path} has "
                        f"{ds.fingerprint[:16]}; pass --dataset with the dataset they were evaluated on")
    common = [t for t in TASKS if all(t in r[1]["scores"] for r in runs)]
    task_list = resolve_selection(tasks, common, "task")
    out = []
    for task in task_list:
        langs_common = sorted(lang for lang in runs[0][1]["scores"][task] if lang != "macro"
                              and all(lang in r[1]["scores"][task] for r in runs))
        langs = resolve_selection(languages, langs_common, "language") if languages else langs_common
        groups = [[lang] for lang in langs] if per_language else []
        groups = ([langs] if len(langs) > 1 or not per_language else []) + groups
        cache = {}
        for lang in langs:
            qrels = ds.load(task, lang).qrels[split]
            per_run = []
            for name, content, base in runs:
                rel = content.get("rankings", {}).get(task, {}).get(lang) or f"{RANKINGS}/{ranking_name(task, lang, split)}"
                ranked = read_trec(base / rel)
                per_run.append({q: ranked.get(q, []) for q in qrels})
            cache[lang] = (qrels, per_run)
        for group in groups:
            qrels_dict = {f"{lang}/{q}": dict(j) for lang in group for q, j in cache[lang][0].items()}
            if not qrels_dict:
                continue
            order = {q: qrels_dict[q] for q in sorted(qrels_dict)}
            scores = []
            for i in range(len(runs)):
                ranked = {f"{lang}/{q}": docs for lang in group for q, docs in cache[lang][1][i].items()}
                scores.append(per_query(ranked, order, (COMPARE_METRIC,))[COMPARE_METRIC])
            pairs = {(i, j): (scores[i], scores[j]) for i in range(len(runs)) for j in range(i + 1, len(runs))}
            pvalues = fisher_batch(pairs) if n_permutations == PERMUTATIONS else {
                k: fisher(*v, n=n_permutations) for k, v in pairs.items()}
            rejected = holm(pvalues, alpha=max_p)
            out.append({
                "task": task, "languages": group, "queries": len(order),
                "runs": [{"name": runs[i][0], "mean": float(scores[i].mean())} for i in range(len(runs))],
                "comparisons": [{"control": runs[i][0], "treatment": runs[j][0],
                                 "delta": float(scores[j].mean() - scores[i].mean()), "p": pvalues[(i, j)],
                                 "significant": rejected[(i, j)]} for (i, j) in pairs],
            })
    return out


def report_dict(entry: dict) -> dict:
    return {"task": entry["task"], "languages": entry["languages"], "queries": entry["queries"],
            "metric": PRIMARY_METRIC, "stat_test": "fisher", "permutations": PERMUTATIONS, "seed": SEED,
            "correction": "holm", "runs": entry["runs"], "comparisons": entry["comparisons"]}
