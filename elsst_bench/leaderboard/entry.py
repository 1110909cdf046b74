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

Every entry read from disk, and every entry ``submit`` builds, passes :func:`check_shape`: each field above is
there, of its type, and nothing else is (one line naming the file and the field otherwise). The fields the id does
not cover and the rankings cannot re-compute (name, ``trainable_params``, options, run, versions, date) are
checked here for type and consistency only: a name is one line, ``trainable_params`` is 0 exactly for an adapter
that trains nothing (``none``), the date is a real day not after today. ``trainable_params`` is moreover
re-counted from the entry's base model, adapter and options by ``submit`` and ``--verify`` (:mod:`.params`;
that needs the base model, so the listing and ``--render``, which read entries through this check, do not).

What a board shows must not be able to forge it. Every string of an entry, keys included (the ranking blobs'
``data`` aside), is one displayable line of at most :data:`~elsst_bench.jsontypes.LINE_MAX` characters
(:func:`~elsst_bench.jsontypes.is_line`: no newline, ESC, NUL or bidirectional override), so no name adds a
row to a table, clears a terminal or reorders a page. An adapter name is canonical: lower-case ASCII
(:data:`ADAPTER_NAME`), so ``LoRA``, ``lora `` and a Cyrillic ``lora`` are refused rather than shown as LoRA
with a count nothing re-checked; a canonical name the registry does not know is a method of its own, shown as
such (:func:`.board.method_label`), never in a registry method's row or colour.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re

import numpy as np

from .. import runs
from ..errors import DataError
from ..jsontypes import INTEGER, LINE_MAX, NAME_MAX, NUMBER, OBJECT, TEXT, TEXTS, is_integer, is_line, is_number, is_text
from ..evaluation.metrics import macro, score_rankings
from ..evaluation.rankings import Rankings
from ..slugs import slug
from ..tasks import TASKS, PreparedDataset
from . import codec
from .benchmark import Benchmark, Reference, reference, thesaurus
from .validate import ADAPTER_NAME, Submission, check_rows, is_zero_shot

SCHEMA = 1
_SLUG_MAX = 80  # each name's share of an entry's file name (a file name has at most 255 bytes)


#: Training options that distinguish one configuration from another (the seed aside), kept in the entry, and
#: what each must be.
OPTION_TYPES = {"rank": INTEGER, "budget": TEXT, "lr": NUMBER, "epochs": INTEGER, "batch_size": INTEGER,
                "tasks": TEXTS, "languages": TEXTS, "options": OBJECT, "max_pairs": INTEGER, "warmup_ratio": NUMBER,
                "weight_decay": NUMBER, "loss": TEXT, "recipe": TEXT, "recipe_options": OBJECT, "prompts": TEXT}
OPTION_KEYS = tuple(OPTION_TYPES)
#: What the run says about itself (shown, never used to group or rank), and what each must be.
RUN_TYPES = {"run_id": TEXT, "kind": TEXT, "device": TEXT, "train_seconds": NUMBER, "peak_memory_mb": NUMBER,
             "steps": INTEGER, "git_commit": TEXT}
RUN_KEYS = tuple(RUN_TYPES)
BLOB_TYPES = {"queries": INTEGER, "dtype": TEXT, "data": TEXT}  # rankings.runs.<task>.<lang>
#: Every field of an entry, all required.
FIELDS = ("schema", "id", "name", "model", "adapter", "trainable_params", "seed", "options", "run", "versions",
          "dataset_id", "dataset_fingerprint", "split", "primary_metric", "submitted", "scores", "rankings")
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
    parts = (slug(entry["adapter"])[:_SLUG_MAX], slug(entry["model"]["name"])[:_SLUG_MAX])
    return f"{parts[0]}-{parts[1]}-s{seed}-{entry['id'][:10]}.json"


def _summary(config: dict) -> tuple[dict, dict]:
    options = config.get("options") if isinstance(config.get("options"), dict) else {}
    chosen = {k: options[k] for k in OPTION_KEYS if k in options and options[k] is not None}
    run = {k: config[k] for k in RUN_KEYS if config.get(k) is not None}
    return chosen, run


def is_display_name(name) -> bool:
    """One displayable line of 1 to :data:`NAME_MAX` characters: what an entry's ``name`` (and ``--name``) may be."""
    return is_line(name, NAME_MAX)


def check_name(name: str | None) -> str:
    """``--name``: a display name (:func:`is_display_name`) or empty (the model name is used)."""
    name = (name or "").strip()
    if name and not is_display_name(name):
        raise DataError(f"--name must be one line of at most {NAME_MAX} printable characters (no control "
                        "characters)")
    return name


def _check_strings(value, where: str, path: str = "") -> None:
    """Every string in ``value``, keys included, is one displayable line (module docstring); the ranking blobs'
    base64 ``data`` is the one exception (it is decoded, never shown)."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if not is_line(key):
                raise DataError(f"{where}: {path or 'the entry'} has a key that is not one line of 1 to {LINE_MAX} "
                                f"printable characters: {_shown(key)}")
            if not (path.startswith("rankings.runs.") and key == "data"):
                _check_strings(item, where, here)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_strings(item, where, f"{path}[{i}]")
    elif isinstance(value, str) and not is_line(value):
        raise DataError(f"{where}: {path} must be one line of 1 to {LINE_MAX} printable characters (no control "
                        f"characters), got {_shown(value)}")


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
    blobs: dict[str, dict] = {}
    for (task, lang), top in sub.rows.items():
        blobs.setdefault(task, {})[lang] = codec.encode_rows(top, len(sub.references[(task, lang)].pool))
    options, run = _summary(config)
    # the model's name by default, its end when it is longer than a display name (a path's last part tells most)
    name = check_name(name) or (model["name"] if len(model["name"]) <= NAME_MAX else "…" + model["name"][1 - NAME_MAX:])
    entry = {
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
        "rankings": {"format": codec.FORMAT, "k": codec.TOP, "sha256": sha, "runs": blobs},
    }
    check_shape(entry, f"{sub.run_dir}/config.json")  # what verify refuses, submit never writes
    return entry


def _shown(value) -> str:
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _need(ok: bool, where: str, field: str, what: str, value) -> None:
    if not ok:
        raise DataError(f"{where}: {field} must be {what}, got {_shown(value)}")


def _object(value, where: str, field: str, required=(), known=None, nonempty: bool = False) -> dict:
    """``value`` is an object holding every ``required`` key and, when ``known`` is given, no other."""
    _need(isinstance(value, dict) and (value or not nonempty), where, field,
          "a non-empty object" if nonempty else "an object", value)
    missing = [k for k in required if k not in value]
    if missing:
        raise DataError(f"{where} lacks {', '.join(f'{field}.{k}' for k in missing)}")
    extra = sorted(set(value) - set(known)) if known is not None else []
    if extra:
        raise DataError(f"{where}: {field}.{extra[0]} is not a field of an entry's {field} "
                        f"(known: {', '.join(known)})")
    return value


def _typed(values, types: dict, where: str, field: str, required=()) -> None:
    """``values`` is an object of the keys of ``types`` (``required`` among them), each of its type."""
    _object(values, where, field, required=required, known=types)
    for key, value in values.items():
        ok, what = types[key]
        _need(ok(value), where, f"{field}.{key}", what, value)


_HEX16, _HEX64, _DAY = re.compile(r"[0-9a-f]{16}"), re.compile(r"[0-9a-f]{64}"), re.compile(r"\d{4}-\d{2}-\d{2}")


def _check_day(value, where: str) -> None:
    _need(isinstance(value, str) and _DAY.fullmatch(value) is not None, where, "submitted", "a date YYYY-MM-DD",
          value)
    try:
        day = _dt.date.fromisoformat(value)
    except ValueError:
        raise DataError(f"{where}: submitted {value!r} is not a date") from None
    today = _dt.datetime.now(_dt.timezone.utc).date()
    if day > today:
        raise DataError(f"{where}: submitted {value} is after today ({today.isoformat()})")


def _check_scores(scores, where: str) -> None:
    _object(scores, where, "scores", nonempty=True)
    for task, rows in scores.items():
        _object(rows, where, f"scores.{task}", nonempty=True)
        for row, metrics in rows.items():
            _object(metrics, where, f"scores.{task}.{row}", nonempty=True)
            for metric, value in metrics.items():
                _need(value is None or is_number(value), where, f"scores.{task}.{row}.{metric}",
                      "a finite number or null", value)


def _check_rankings(rankings, where: str) -> None:
    _object(rankings, where, "rankings", required=("format", "k", "sha256", "runs"),
            known=("format", "k", "sha256", "runs"))
    if rankings["format"] != codec.FORMAT:
        raise DataError(f"{where}: unknown rankings format {rankings['format']!r}")
    _need(rankings["k"] == codec.TOP and is_integer(rankings["k"]), where, "rankings.k", str(codec.TOP),
          rankings["k"])
    _need(isinstance(rankings["sha256"], str) and _HEX64.fullmatch(rankings["sha256"]) is not None, where,
          "rankings.sha256", "64 hex digits", rankings["sha256"])
    _object(rankings["runs"], where, "rankings.runs", nonempty=True)
    for task, per_lang in rankings["runs"].items():
        _object(per_lang, where, f"rankings.runs.{task}", nonempty=True)
        for lang, blob in per_lang.items():
            field = f"rankings.runs.{task}.{lang}"
            _typed(blob, BLOB_TYPES, where, field, required=tuple(BLOB_TYPES))


def check_shape(entry, where: str) -> None:
    """Every field of an entry is there, of its type, and nothing else is; the checks of the fields nothing
    re-computes (see the module docstring). The first problem raises a one-line DataError naming ``where`` and
    the field."""
    if not isinstance(entry, dict):
        raise DataError(f"{where} is not a JSON object")
    missing = [k for k in FIELDS if k not in entry]
    if "schema" in entry and entry["schema"] != SCHEMA:
        raise DataError(f"{where} has schema {entry['schema']!r}; this elsst-bench reads schema {SCHEMA}")
    if missing:
        raise DataError(f"{where} lacks {', '.join(missing)}")
    extra = sorted(set(entry) - set(FIELDS))
    if extra:
        raise DataError(f"{where}: {extra[0]} is not a field of an entry (schema {SCHEMA})")
    _need(isinstance(entry["id"], str) and _HEX16.fullmatch(entry["id"]) is not None, where, "id",
          "16 hex digits", entry["id"])
    _need(is_display_name(entry["name"]), where, "name", f"one line of 1 to {NAME_MAX} characters", entry["name"])
    model = _object(entry["model"], where, "model", required=("name", "sha256"), known=("name", "sha256"))
    _need(is_text(model["name"]), where, "model.name", "a non-empty string", model["name"])
    _need(model["sha256"] is None or isinstance(model["sha256"], str), where, "model.sha256", "a string or null",
          model["sha256"])
    _need(isinstance(entry["adapter"], str) and ADAPTER_NAME.fullmatch(entry["adapter"]) is not None, where,
          "adapter", "a canonical method name (lower-case ASCII, as the registry spells it)", entry["adapter"])
    params = entry["trainable_params"]
    _need(is_integer(params) and params >= 0, where, "trainable_params", "a non-negative integer", params)
    if runs.trains(entry["adapter"]) != (params > 0):
        raise DataError(f"{where}: trainable_params is {params}, but adapter {entry['adapter']} trains "
                        + ("parameters" if params == 0 else "none (zero-shot)"))
    _need(entry["seed"] is None or is_integer(entry["seed"]), where, "seed", "an integer or null", entry["seed"])
    _typed(entry["options"], OPTION_TYPES, where, "options")
    _typed(entry["run"], RUN_TYPES, where, "run")
    for package, version in _object(entry["versions"], where, "versions").items():
        _need(version is None or isinstance(version, str), where, f"versions.{package}", "a string or null",
              version)
    for key in ("dataset_id", "dataset_fingerprint", "split", "primary_metric"):
        _need(is_text(entry[key]), where, key, "a non-empty string", entry[key])
    _check_day(entry["submitted"], where)
    _check_scores(entry["scores"], where)
    _check_rankings(entry["rankings"], where)
    _check_strings(entry, where)


def decode(entry: dict, bench: Benchmark, ds: PreparedDataset, where: str):
    """The stored rankings against the benchmark: ``(rows, references, content sha256)``. Like a submitted run
    file, each task and language must rank every query of the split, and each query's top 10 must pass the
    per-query checks of ``submit`` (:func:`.validate.check_rows`, :func:`.validate.check_ranked`'s rules: concepts
    of the pool, none twice, not the query's own)."""
    rows, refs = {}, {}
    for task, per_lang in sorted(entry["rankings"]["runs"].items()):
        for lang, blob in sorted(per_lang.items()):
            if task not in ds.tasks() or lang not in ds.languages(task):
                raise DataError(f"{where}: {task}/{lang} is not a task and language of the benchmark")
            ref = reference(ds, task, lang, bench.split)
            here = f"{where} {task}/{lang}"
            top = codec.decode_rows(blob, here)
            if len(top) != len(ref.qids):
                raise DataError(f"{where}: {task}/{lang} stores {len(top)} queries, the benchmark has "
                                f"{len(ref.qids)}")
            check_rows(here, ref.qids, top, ref)
            rows[(task, lang)], refs[(task, lang)] = top, ref
    sha = codec.content_sha256({tl: (refs[tl].qids, refs[tl].pool, rows[tl]) for tl in rows})
    return rows, refs, sha


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
