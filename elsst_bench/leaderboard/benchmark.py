"""The benchmark a leaderboard is bound to (``benchmark.json``) and the one dataset its numbers come from.

``<leaderboard>/benchmark.json`` pins ``{"dataset_id", "fingerprint", "split", "primary_metric"}``. Every
submission is validated and re-scored against the prepared dataset with exactly that fingerprint, and the
fingerprint is *recomputed from the files on disk* (sha256 of every file the manifest lists), never read from
the manifest alone: a dataset whose qrels were edited cannot pass for the benchmark's.

Where that dataset comes from (:func:`benchmark_dataset`):

1. ``--dataset DIR`` when given (it must have the pinned fingerprint, or the command stops);
2. the default prepared dataset (``data/prepared/elsst-r5``) when its files have the pinned fingerprint;
3. otherwise it is prepared from the bundled release with ``elsst-bench prepare``'s defaults into
   ``.cache/elsst-bench/datasets/<dataset_id>-<fingerprint[:16]>`` (``$ELSST_BENCH_CACHE`` moves
   ``.cache/elsst-bench``; about 2.5 s, once), and checked the same way.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import paths
from ..errors import DataError
from ..jsontypes import read_json
from ..metric_names import PRIMARY_METRIC
from ..tasks import PreparedDataset, fingerprint as files_fingerprint, open_prepared

BENCHMARK_FILE = "benchmark.json"
DEFAULT_LEADERBOARD = Path("leaderboards")


@dataclass(frozen=True)
class Benchmark:
    dataset_id: str
    fingerprint: str
    split: str = "test"
    primary_metric: str = PRIMARY_METRIC

    def as_json(self) -> dict:
        return asdict(self)


#: What each field of ``benchmark.json`` must be. ``dataset_id`` names a cache directory, so it is one plain name
#: (no ``/``, no ``..``): the file is handed in like any other and must not steer a write outside the cache.
_DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def _field_rules() -> dict[str, tuple]:
    from ..metric_names import METRICS
    from ..tasks import SPLITS

    return {"dataset_id": (lambda v: isinstance(v, str) and _DATASET_ID.fullmatch(v) is not None,
                           "a plain name (letters, digits, '.', '_', '+', '-')"),
            "fingerprint": (lambda v: isinstance(v, str) and _FINGERPRINT.fullmatch(v) is not None, "64 hex digits"),
            "split": (lambda v: v in SPLITS, f"one of {', '.join(SPLITS)}"),
            "primary_metric": (lambda v: v in METRICS, "a metric elsst-bench computes")}


def read_benchmark(leaderboard: str | os.PathLike) -> Benchmark:
    """The leaderboard's ``benchmark.json``, every field checked (one line naming the field otherwise)."""
    path = Path(leaderboard) / BENCHMARK_FILE
    if not path.is_file():
        raise DataError(f"{path} is missing: {leaderboard} is not an elsst-bench leaderboard directory")
    raw = read_json(path)
    rules = _field_rules()
    if not isinstance(raw, dict) or set(raw) != set(rules):
        fields = ", ".join(rules)
        raise DataError(f"{path} is not a valid benchmark file: it must be an object of exactly {fields}")
    for key, (ok, what) in rules.items():
        if not ok(raw[key]):
            shown = repr(raw[key]) if isinstance(raw[key], (str, int, float, bool, type(None))) else "an object"
            raise DataError(f"{path}: {key} must be {what}, got {shown[:60]}")
    return Benchmark(**raw)


def disk_fingerprint(ds: PreparedDataset) -> str | None:
    """The fingerprint of the files actually on disk (the manifest's file list, re-hashed); None if one is missing."""
    listed = ds.manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        return None
    contents = {}
    for rel in listed:
        file = Path(ds.path) / rel
        if not file.is_file():
            return None
        contents[rel] = file.read_bytes()
    return files_fingerprint(contents)


def _matches(path: Path, bench: Benchmark) -> PreparedDataset | None:
    if not (path / "manifest.json").is_file():
        return None
    try:
        ds = open_prepared(path)
    except DataError:
        return None
    if ds.manifest.get("fingerprint") != bench.fingerprint or disk_fingerprint(ds) != bench.fingerprint:
        return None
    return ds


def cache_dir(bench: Benchmark) -> Path:
    root = Path(os.environ.get("ELSST_BENCH_CACHE", ".cache/elsst-bench"))
    return root / "datasets" / f"{bench.dataset_id}-{bench.fingerprint[:16]}"


def benchmark_dataset(bench: Benchmark, dataset: str | os.PathLike | None = None) -> PreparedDataset:
    """The prepared dataset with the benchmark's fingerprint (see the module docstring)."""
    if dataset is not None:
        ds = open_prepared(dataset)
        found = disk_fingerprint(ds)
        if found != bench.fingerprint:
            shown = f"fingerprint {found[:12]}…" if found else "missing or unlisted files"
            raise DataError(f"dataset {dataset} has {shown}, but the leaderboard's benchmark is "
                            f"{bench.dataset_id} {bench.fingerprint[:12]}…; pass the benchmark's prepared dataset")
        return ds
    ds = _matches(paths.default_dataset_dir(), bench)
    if ds is not None:
        return ds
    target = cache_dir(bench)
    ds = _matches(target, bench)
    if ds is not None:
        return ds
    from filelock import FileLock

    from ..tasks import prepare

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        ds = _matches(target, bench)
        if ds is None:
            prepare(paths.default_source(), out=target)
            ds = _matches(target, bench)
    if ds is None:
        made = open_prepared(target).fingerprint
        raise DataError(f"the bundled release prepares to fingerprint {made[:12]}…, not the benchmark's "
                        f"{bench.fingerprint[:12]}… ({bench.dataset_id}); pass --dataset with the benchmark's "
                        "prepared dataset")
    return ds


@dataclass(frozen=True)
class Reference:
    """What the benchmark judges for one task and language: the pool, the split's queries and their qrels."""

    task: str
    lang: str
    pool: tuple[str, ...]  # concept ids, ascending (row i of a ranking blob = pool[i])
    row: dict  # concept id -> pool row
    qids: tuple[str, ...]  # the split's query ids, ascending
    qrels: dict  # qid -> {concept id: grade}
    own: dict | None  # qid -> its own concept, for tasks that never rank it (broader)


_references: dict[tuple, Reference] = {}


def reference(ds: PreparedDataset, task: str, lang: str, split: str) -> Reference:
    key = (str(Path(ds.path).resolve()), ds.fingerprint, task, lang, split)
    if key not in _references:
        data = ds.load(task, lang)
        pool = tuple(sorted(data.corpus))
        qrels = data.qrels[split]
        exclude = ds.manifest.get("exclude_query_concept", {}).get(task, task == "broader")
        own = {q: data.query_concept[q] for q in qrels} if exclude else None
        _references[key] = Reference(task, lang, pool, {c: i for i, c in enumerate(pool)}, tuple(sorted(qrels)),
                                     qrels, own)
    return _references[key]


_thesauri: dict[tuple, object] = {}


def thesaurus(ds: PreparedDataset):
    key = (str(Path(ds.path).resolve()), ds.fingerprint)
    if key not in _thesauri:
        _thesauri[key] = ds.thesaurus()
    return _thesauri[key]
