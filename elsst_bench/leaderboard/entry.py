"""A leaderboard entry: what a submission stores, how its id is made, and how it is (re-)scored.

``entries/<adapter>-<model>-s<seed>-<id[:10]>.json`` (canonical JSON, sorted keys)::

    {"schema": 1, "id": sha256(model, adapter, seed, rankings.sha256)[:16], "name": display name,
     "model": {"name", "sha256"}, "adapter", "trainable_params", "seed" (null: zero-shot),
     "options": {lr, rank, budget, epochs, batch_size, tasks, languages, options, ...: what distinguishes runs},
     "run": {run_id, device, train_seconds, peak_memory_mb, git_commit, ... when the run recorded them},
     "versions": {package: version}, "dataset_id", "dataset_fingerprint", "split", "primary_metric",
     "submitted": "YYYY-MM-DD",
     "scores": {task: {lang: {metric: value, "queries", "queries_binary"}, "macro": {...}}},   # re-computed
     "rankings": {"format": "pool-index-top10/v1", "k": 10, "sha256": content hash,
                  "runs": {task: {lang: {"queries", "dtype", "data"}}}}}

``scores`` are computed here with :func:`~elsst_bench.evaluation.metrics.score_rankings` on the stored top 10
against the benchmark's qrels (see :mod:`.codec` for why the top 10 is exact); a run's own ``metrics.json``
is never read. An *exact duplicate* is an entry with the same id: same model, adapter, seed and rankings.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math

import numpy as np

from ..errors import DataError
from ..evaluation.metrics import macro, score_rankings
from ..evaluation.rankings import Rankings
from ..slugs import slug
from ..tasks import TASKS, PreparedDataset
from . import codec
from .benchmark import Benchmark, Reference, reference, thesaurus
from .validate import Submission, is_zero_shot

SCHEMA = 1
#: Training options that distinguish one configuration from another (the seed aside); kept in the entry.
OPTION_KEYS = ("rank", "budget", "lr", "epochs", "batch_size", "tasks", "languages", "options", "max_pairs",
               "warmup_ratio", "weight_decay", "loss")
#: What the run says about itself (shown, never used to group or rank).
RUN_KEYS = ("run_id", "kind", "device", "train_seconds", "peak_memory_mb", "steps", "git_commit")
REQUIRED = ("schema", "id", "name", "model", "adapter", "trainable_params", "seed", "dataset_fingerprint",
            "split", "submitted", "scores", "rankings")
TOLERANCE = 1e-9  # re-scored metrics must agree to this (they are the same float computation)


def score(rows: dict[tuple[str, str], np.ndarray], refs: dict[tuple[str, str], Reference], th) -> dict:
    """``{task: {lang: metrics, "macro": metrics}}`` from top-10 pool rows, in task then language order."""
    order = {t: i for i, t in enumerate(TASKS)}
    scores: dict[str, dict] = {}
    for task, lang in sorted(rows, key=lambda tl: (order.get(tl[0], len(order)), tl[0], tl[1])):
        ref, top = refs[(task, lang)], rows[(task, lang)]
        ranked = Rankings(list(ref.qids), list(ref.pool), top, np.zeros(top.shape, dtype=np.float32))
        scores.setdefault(task, {})[lang] = score_rankings(ranked, ref.qrels, th)
    for task in scores:
        scores[task]["macro"] = macro(dict(scores[task]))
    return scores


def entry_id(model: dict, adapter: str, seed, rankings_sha256: str) -> str:
    key = json.dumps({"model": model, "adapter": adapter, "seed": seed, "rankings": rankings_sha256},
                     sort_keys=True)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def filename(entry: dict) -> str:
    seed = "x" if entry["seed"] is None else entry["seed"]
    return f"{slug(entry['adapter'])}-{slug(entry['model']['name'])}-s{seed}-{entry['id'][:10]}.json"


def _summary(config: dict) -> tuple[dict, dict]:
    options = config.get("options") if isinstance(config.get("options"), dict) else {}
    chosen = {k: options[k] for k in OPTION_KEYS if k in options and options[k] is not None}
    run = {k: config[k] for k in RUN_KEYS if config.get(k) is not None}
    return chosen, run


def check_name(name: str | None) -> str:
    """A display name is one line of at most 120 characters (empty: the model name is used)."""
    name = (name or "").strip()
    if "\n" in name or "\r" in name or len(name) > 120:
        raise DataError("--name must be one line of at most 120 characters")
    return name


def identity(sub: Submission) -> tuple[str, str, dict, object]:
    """``(entry id, rankings sha256, model, seed)`` of a validated submission, before any scoring."""
    config = sub.config
    parts = {tl: (ref.qids, ref.pool, sub.rows[tl]) for tl, ref in sub.references.items()}
    sha = codec.content_sha256(parts)
    model = {"name": config["model"]["name"], "sha256": config["model"].get("sha256")}
    seed = None if is_zero_shot(config) and config.get("seed") is None else config["seed"]
    return entry_id(model, config["adapter"], seed, sha), sha, model, seed


def build(sub: Submission, bench: Benchmark, ds: PreparedDataset, name: str | None = None,
          submitted: _dt.date | None = None) -> dict:
    config = sub.config
    eid, sha, model, seed = identity(sub)
    runs: dict[str, dict] = {}
    for (task, lang), top in sub.rows.items():
        runs.setdefault(task, {})[lang] = codec.encode_rows(top, len(sub.references[(task, lang)].pool))
    options, run = _summary(config)
    name = check_name(name) or model["name"]
    return {
        "schema": SCHEMA,
        "id": eid,
        "name": name,
        "model": model,
        "adapter": config["adapter"],
        "trainable_params": config["trainable_params"],
        "seed": seed,
        "options": options,
        "run": run,
        "versions": config["versions"],
        "dataset_id": bench.dataset_id,
        "dataset_fingerprint": bench.fingerprint,
        "split": bench.split,
        "primary_metric": bench.primary_metric,
        "submitted": (submitted or _dt.datetime.now(_dt.timezone.utc).date()).isoformat(),
        "scores": score(sub.rows, sub.references, thesaurus(ds)),
        "rankings": {"format": codec.FORMAT, "k": codec.TOP, "sha256": sha, "runs": runs},
    }


def check_shape(entry, where: str) -> None:
    if not isinstance(entry, dict):
        raise DataError(f"{where} is not a JSON object")
    missing = [k for k in REQUIRED if k not in entry]
    if missing:
        raise DataError(f"{where} lacks {', '.join(missing)}")
    if entry["schema"] != SCHEMA:
        raise DataError(f"{where} has schema {entry['schema']!r}; this elsst-bench reads schema {SCHEMA}")
    if entry["rankings"].get("format") != codec.FORMAT:
        raise DataError(f"{where}: unknown rankings format {entry['rankings'].get('format')!r}")


def decode(entry: dict, bench: Benchmark, ds: PreparedDataset, where: str):
    """The stored rankings against the benchmark: ``(rows, references, content sha256)``."""
    rows, refs = {}, {}
    for task, per_lang in sorted(entry["rankings"]["runs"].items()):
        for lang, blob in sorted(per_lang.items()):
            if task not in ds.tasks() or lang not in ds.languages(task):
                raise DataError(f"{where}: {task}/{lang} is not a task and language of the benchmark")
            ref = reference(ds, task, lang, bench.split)
            top = codec.decode_rows(blob, len(ref.pool), f"{where} {task}/{lang}")
            if len(top) != len(ref.qids):
                raise DataError(f"{where}: {task}/{lang} stores {len(top)} queries, the benchmark has "
                                f"{len(ref.qids)}")
            rows[(task, lang)], refs[(task, lang)] = top, ref
    sha = codec.content_sha256({tl: (refs[tl].qids, refs[tl].pool, rows[tl]) for tl in rows})
    return rows, refs, sha


def rescore(entry: dict, bench: Benchmark, ds: PreparedDataset, where: str) -> dict:
    """Score the stored rankings again (the numbers ``--verify`` compares with the entry's)."""
    rows, refs, _ = decode(entry, bench, ds, where)
    return score(rows, refs, thesaurus(ds))


def first_difference(stored, fresh, path: str = "scores") -> str | None:
    """Where two score trees differ (numbers within :data:`TOLERANCE`), or None."""
    if isinstance(stored, dict) and isinstance(fresh, dict):
        for key in sorted(set(stored) | set(fresh)):
            here = f"{path}/{key}"
            if key not in stored or key not in fresh:
                return f"{here} is {'missing from' if key not in stored else 'extra on'} the board"
            found = first_difference(stored[key], fresh[key], here)
            if found:
                return found
        return None
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (stored, fresh))
    if numbers and math.isclose(stored, fresh, rel_tol=0, abs_tol=TOLERANCE):
        return None
    if not numbers and stored == fresh:
        return None
    return f"{path} is {stored!r} on the board but re-scores to {fresh!r}"
