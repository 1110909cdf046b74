"""Validation of a submitted run directory: its config and its TREC run files against the benchmark.

A submission is a run directory with ``config.json`` and ``rankings/<task>.<lang>.<split>.tsv.gz`` (the TREC
run format ``qid Q0 concept rank score run``, as ``elsst-bench evaluate`` writes it). ``metrics.json`` is
never read: every number on the board is re-computed from the rankings. A run is refused, with one line naming
the file and the query, when

- ``config.json`` is missing or lacks the model identity (``model.name``), ``adapter``, ``trainable_params``
  (a non-negative integer), ``seed`` (not needed for a zero-shot run, ``"kind": "zero-shot"``, which is
  deterministic), ``versions`` or ``dataset_fingerprint``; or a training run is not ``"status": "complete"``;
- the run's dataset fingerprint is not the benchmark's;
- there is no ranking file of the benchmark's split, or one names a task or language the benchmark lacks;
- a file is not readable gzip, or a line is not six fields with an integer rank and a finite score;
- a file ranks a query outside the split, or misses one of the split's queries of its task and language;
- a query's ranks are not 1, 2, …, n; it ranks fewer than 10 concepts or more than 100; it ranks an unknown
  concept id, the same concept twice, or its own concept in a task that never retrieves it (``broader``);
  or its scores increase with rank.

The per-query concept rules (in the pool, none twice, not the query's own) live in :func:`check_ranked`, which
``leaderboard --verify`` applies to the top 10 stored in every entry as well (:func:`check_rows` finds the queries
that break them with array operations and has :func:`check_ranked` word the first).
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import runs
from ..errors import DataError
from ..jsontypes import LINE_MAX, is_line
from ..evaluation.metrics import repeats
from ..evaluation.rankings import TOP_K
from ..tasks import PreparedDataset
from .benchmark import Benchmark, Reference, reference
from .codec import TOP

MIN_RANKED = TOP  # 10: every metric cuts at 10
MAX_RANKED = TOP_K  # 100
FIELDS = "query Q0 concept rank score run"


@dataclass
class Submission:
    """A validated run: its config and, per (task, lang), the top 10 of every split query as pool rows."""

    run_dir: Path
    config: dict
    rows: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    references: dict[tuple[str, str], Reference] = field(default_factory=dict)


#: What a submission must be, said when the directory has no config.json.
SUBMISSION_HINT = ("a submission is a run directory (elsst-bench train or evaluate) or one laid out like it "
                   "(see CONTRIBUTING.md)")


def is_zero_shot(config: dict) -> bool:
    return config.get("kind") == "zero-shot"


#: A canonical adapter name: the registry's own spelling (lower-case ASCII letters, digits, '-', '_', '.'); a
#: lookalike (``LoRA``, ``lora ``, a Cyrillic ``о``) is refused, never shown as a registry method.
ADAPTER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_config(config: dict, run_dir: Path, bench: Benchmark) -> None:
    where = f"{run_dir}/config.json"
    required = ["model", "adapter", "trainable_params", "versions", "dataset_fingerprint"]
    if not is_zero_shot(config):
        required.insert(3, "seed")
    for key in required:
        if config.get(key) in (None, "", {}, []):
            raise DataError(f"{where} lacks {key}")
    model = config["model"]
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) or not model["name"].strip():
        raise DataError(f"{where} lacks model.name (the base model's identity)")
    if not isinstance(config["adapter"], str) or ADAPTER_NAME.fullmatch(config["adapter"]) is None:
        raise DataError(f"{where}: adapter must be a canonical method name (lower-case ASCII, as the registry "
                        f"spells it: lora, orthogeolora, ...), got {repr(config['adapter'])[:60]}")
    if not is_line(model["name"]):
        raise DataError(f"{where}: model.name must be one line of 1 to {LINE_MAX} printable characters (no "
                        f"control characters), got {repr(model['name'])[:60]}")
    params = config["trainable_params"]
    if not isinstance(params, int) or isinstance(params, bool) or params < 0:
        raise DataError(f"{where}: trainable_params must be a non-negative integer, got {params!r}")
    seed = config.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise DataError(f"{where}: seed must be an integer, got {seed!r}")
    if not isinstance(config["versions"], dict):
        raise DataError(f"{where}: versions must be an object of package versions")
    if not is_zero_shot(config) and config.get("status") != "complete":
        raise DataError(f"{where}: the run is not complete (status: {config.get('status')}); finish it first")
    from ..training.config import scores_test

    if not scores_test(config.get("options") or {}):
        raise DataError(f"run {run_dir} is a dev-only run (trained with --no-test): it has no test rankings to submit")
    theirs = config["dataset_fingerprint"]
    if theirs != bench.fingerprint:
        raise DataError(f"run {run_dir} was prepared on dataset fingerprint {str(theirs)[:12]}… but the benchmark "
                        f"is {bench.dataset_id} {bench.fingerprint[:12]}…; re-run elsst-bench prepare and "
                        "evaluate the run on that dataset")


def ranking_files(run_dir: Path, bench: Benchmark, ds: PreparedDataset) -> list[tuple[str, str, Path]]:
    """``[(task, lang, path)]`` of the run's files for the benchmark's split, in task/language order."""
    pattern = re.compile(rf"^([^.]+)\.([^.]+)\.{re.escape(bench.split)}\.tsv\.gz$")
    found = []
    for path in sorted((run_dir / runs.RANKINGS).glob(f"*.{bench.split}.tsv.gz")):
        match = pattern.match(path.name)
        task, lang = match.groups() if match else (None, None)
        if task not in ds.tasks() or lang not in ds.languages(task):
            raise DataError(f"{path}: not a task and language of the benchmark ({bench.dataset_id}); "
                            "remove the file")
        found.append((task, lang, path))
    if not found:
        raise DataError(f"{run_dir} has no rankings/*.{bench.split}.tsv.gz; run `elsst-bench evaluate` on it first")
    order = {t: i for i, t in enumerate(ds.tasks())}
    return sorted(found, key=lambda f: (order[f[0]], f[1]))


def _parse(path: Path) -> dict[str, list[tuple[int, str, float]]]:
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable gzip TREC run file ({err})") from err
    ranked: dict[str, list[tuple[int, str, float]]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise DataError(f"{path}: line {number} has {len(fields)} fields, expected 6 ({FIELDS})")
        qid, _, doc, rank, score, _ = fields
        try:
            rank_i, score_f = int(rank), float(score)
        except ValueError:
            raise DataError(f"{path}: line {number}: rank {rank!r} must be an integer and score {score!r} "
                            "a number") from None
        if not math.isfinite(score_f):
            raise DataError(f"{path}: line {number}: score {score!r} is not finite")
        ranked.setdefault(qid, []).append((rank_i, doc, score_f))
    return ranked


def check_ranked(where: str, qid: str, ranked: Sequence[str | int], ref: Reference) -> list[int]:
    """One query's ranking, best first: concept ids (a run file) or pool rows (a stored entry). Each must be a
    concept of the task's pool, none may come twice, and none may be the query's own concept in a task that never
    retrieves it (``broader``). Returns the pool rows; a one-line DataError names ``where``, the query and the
    concept. The one home of these rules: ``submit`` applies them to run files, ``--verify`` to stored entries."""
    own = ref.own.get(qid) if ref.own is not None else None
    seen: set[int] = set()
    rows = []
    for rank, item in enumerate(ranked, start=1):
        if isinstance(item, str):
            row = ref.row.get(item)
            if row is None:
                raise DataError(f"{where}: query {qid} ranks unknown concept id {item} (rank {rank})")
        else:
            row = int(item)
            if not 0 <= row < len(ref.pool):
                raise DataError(f"{where}: query {qid} ranks pool row {row} (rank {rank}), outside the "
                                f"{len(ref.pool)} concepts of the {ref.task}/{ref.lang} pool")
        doc = ref.pool[row]
        if row in seen:
            raise DataError(f"{where}: query {qid} ranks concept {doc} twice")
        if doc == own:
            raise DataError(f"{where}: query {qid} ranks its own concept {doc}, which the {ref.task} task never "
                            "retrieves")
        seen.add(row)
        rows.append(row)
    return rows


def check_rows(where: str, qids: Sequence[str], rows: np.ndarray, ref: Reference) -> None:
    """:func:`check_ranked` for every query of a stored ranking at once (``rows``: queries × k pool rows): array
    operations find the queries that break a rule (a row outside the pool, one twice, the query's own concept
    where ``own`` is set), and :func:`check_ranked` words the first of them. ``--verify`` re-checks every stored
    query of every entry; one Python loop per query made that the slowest part of it."""
    rows = np.asarray(rows, dtype=np.int64)
    broken = ((rows < 0) | (rows >= len(ref.pool))).any(axis=1)
    broken |= repeats(rows)
    if ref.own is not None:
        own = np.fromiter((ref.row.get(ref.own.get(q), -1) for q in qids), dtype=np.int64, count=len(qids))
        broken |= (rows == own[:, None]).any(axis=1)
    for i in np.flatnonzero(broken).tolist():
        check_ranked(where, qids[i], rows[i].tolist(), ref)  # raises: the rules' own message
        raise AssertionError(f"{where}: query {qids[i]} was flagged but passes check_ranked")  # pragma: no cover


def _check_query(path: Path, qid: str, candidates: list[tuple[int, str, float]], ref: Reference) -> list[int]:
    """The query's concepts as pool rows in rank order, or a one-line DataError."""
    candidates.sort(key=lambda c: c[0])
    n = len(candidates)
    for expected, (rank, _, _) in enumerate(candidates, start=1):
        if rank != expected:
            problem = f"gives rank {rank} twice" if rank < expected else f"skips rank {expected}"
            raise DataError(f"{path}: query {qid} {problem} (ranks must be 1, 2, …, n)")
    if n < MIN_RANKED:
        raise DataError(f"{path}: query {qid} ranks {n} concepts (at least {MIN_RANKED} required)")
    if n > MAX_RANKED:
        raise DataError(f"{path}: query {qid} ranks {n} concepts (at most {MAX_RANKED} allowed)")
    rows = check_ranked(str(path), qid, [doc for _, doc, _ in candidates], ref)
    previous = math.inf
    for rank, _, score in candidates:
        if score > previous:
            raise DataError(f"{path}: query {qid} scores rank {rank} higher than rank {rank - 1} "
                            "(scores must not increase with rank)")
        previous = score
    return rows[:TOP]


def check_rankings(path: Path, ref: Reference, split: str) -> np.ndarray:
    """Validate one run file against the benchmark; the top 10 of every split query, (n, 10) pool rows."""
    ranked = _parse(path)
    unknown = sorted(set(ranked) - set(ref.qrels))
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise DataError(f"{path}: query {unknown[0]} is not a {split} query of {ref.task}/{ref.lang}{more}")
    missing = [qid for qid in ref.qids if qid not in ranked]
    if missing:
        raise DataError(f"{path} is missing {len(missing)} of {len(ref.qids)} {split} queries "
                        f"(first: {missing[0]})")
    rows = np.empty((len(ref.qids), TOP), dtype=np.int64)
    for i, qid in enumerate(ref.qids):
        rows[i] = _check_query(path, qid, ranked[qid], ref)
    return rows


def validate_config(run_dir: str | Path, bench: Benchmark) -> dict:
    """The cheap checks (no dataset needed): config completeness and the dataset fingerprint."""
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir, hint=SUBMISSION_HINT)
    check_config(config, run_dir, bench)
    return config


def validate_run(run_dir: str | Path, bench: Benchmark, ds: PreparedDataset, config: dict | None = None) -> Submission:
    run_dir = Path(run_dir)
    if config is None:
        config = validate_config(run_dir, bench)
    sub = Submission(run_dir, config)
    for task, lang, path in ranking_files(run_dir, bench, ds):
        ref = reference(ds, task, lang, bench.split)
        if not ref.qids:
            raise DataError(f"{path}: {task}/{lang} has no {bench.split} queries in the benchmark")
        sub.rows[(task, lang)] = check_rankings(path, ref, bench.split)
        sub.references[(task, lang)] = ref
    return sub
