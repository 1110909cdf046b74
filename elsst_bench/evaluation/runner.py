"""``evaluate_model``: encode → index → rank → score, for any in-memory encoder; returns an EvaluationResult.

The training loop calls it after each epoch on the dev split with no cache; the CLI calls it through
:mod:`.commands` with the on-disk embedding cache. One call:

1. loads the selected tasks/languages of the split (memoised per dataset fingerprint, so repeated calls
   in a training loop do not re-read files);
2. collects every pool and query text, de-duplicated (see :mod:`.encode`), and encodes what the cache does
   not hold in one batched pass with one progress bar;
3. builds one FAISS index per distinct pool (the English pool serves four tasks);
4. ranks the top 100 per query with the tie rule and own-concept removal of :mod:`.rankings`;
5. scores with :mod:`.metrics` per language, macro-averages per task, and assembles metrics.json
   (:mod:`.report`) into an :class:`~.result.EvaluationResult`, whose ``write(out_dir)`` stores
   ``rankings/*.tsv.gz`` and then the metrics file, each atomically.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..models import portable_identity
from ..metric_names import PRIMARY_METRIC
from ..runs import RANKINGS, versions
from ..tasks import SPLITS, PreparedDataset, open_prepared, resolve_selection
from .encode import EmbeddingCache, EmbeddingTable, model_cache_key
from .index import build_index
from .metrics import macro, score_rankings, warm_up
from .rankings import TOP_K, Rankings, rank, ranking_name
from .report import main_score
from .result import EvaluationResult


@dataclass(frozen=True)
class Selection:
    task: str
    lang: str
    pool: tuple[str, ...]  # concept ids, ascending
    pool_texts: tuple[str, ...]
    qids: tuple[str, ...]  # the split's queries, ascending
    query_texts: tuple[str, ...]
    own: tuple[str, ...] | None  # each query's own concept when the task removes it
    qrels: dict


def as_dataset(dataset) -> PreparedDataset:
    return dataset if isinstance(dataset, PreparedDataset) else open_prepared(dataset)


def select(ds: PreparedDataset, tasks: list[str] | None, languages: list[str] | None,
           strict: bool = False) -> list[tuple[str, list[str]]]:
    """Validate a task/language selection: ``[(task, [lang, ...]), ...]`` in canonical order.

    Unknown tasks or languages raise :class:`DataError`. Languages are checked against the union over the
    selected tasks; a task without any selected language is skipped (e.g. crosslingual, which has no English
    queries, under ``languages=["en"]``), or refused with ``strict`` when tasks were named explicitly (the CLI).
    """
    task_list = resolve_selection(tasks, ds.tasks(), "task")
    union = sorted({lang for task in task_list for lang in ds.languages(task)})
    lang_list = resolve_selection(languages, union, "language")
    out = []
    for task in task_list:
        langs = [lang for lang in lang_list if lang in ds.languages(task)]
        if langs:
            out.append((task, langs))
        elif tasks and strict:
            raise DataError(f"task {task!r} has no queries in {', '.join(lang_list)}; "
                            f"its languages: {', '.join(ds.languages(task))}")
    if not out:
        raise DataError("the selected tasks and languages have no queries")
    return out


@lru_cache(maxsize=256)
def _load(path: str, fingerprint: str, task: str, lang: str, split: str) -> Selection:
    ds = open_prepared(path)
    data = ds.load(task, lang)
    qrels = data.qrels[split]
    pool = tuple(sorted(data.corpus))
    qids = tuple(sorted(qrels))
    exclude = ds.manifest.get("exclude_query_concept", {}).get(task, task == "broader")
    return Selection(task, lang, pool, tuple(data.corpus[c] for c in pool), qids,
                     tuple(data.queries[q] for q in qids),
                     tuple(data.query_concept[q] for q in qids) if exclude else None, qrels)


@lru_cache(maxsize=8)
def _thesaurus(path: str, fingerprint: str):
    return open_prepared(path).thesaurus()


def load_selection(ds: PreparedDataset, task: str, lang: str, split: str) -> Selection:
    return _load(str(Path(ds.path).resolve()), ds.fingerprint, task, lang, split)


def load_thesaurus(ds: PreparedDataset):
    return _thesaurus(str(Path(ds.path).resolve()), ds.fingerprint)


@dataclass(frozen=True)
class EvaluationOptions:
    """The knobs of :func:`evaluate_model` that callers rarely change.

    - ``cache_dir``: the on-disk embedding cache (:mod:`.encode`); ``None``: no cache. Used only for a model
      identity with a weights ``sha256`` (a model being trained has none and is never cached);
    - ``cache_extra``: extra cache-key material, e.g. the hash of a run's adapter files;
    - ``batch_size``: encoding batch size; ``index``: ``flat`` (exact), ``hnsw`` or ``ivf`` (:mod:`.index`);
    - ``top_k``: how many concepts are ranked per query (the run files hold them; metrics cut at 10).
    """

    cache_dir: str | os.PathLike | None = None
    cache_extra: str | None = None
    batch_size: int = 128
    index: str = "flat"
    top_k: int = TOP_K


DEFAULT_OPTIONS = EvaluationOptions()


def evaluate_model(model, dataset, split: str = "test", tasks: list[str] | None = None,
                   languages: list[str] | None = None, *, identity: dict | None = None, adapter: str = "none",
                   trainable_params: int = 0, options: EvaluationOptions = DEFAULT_OPTIONS,
                   show_progress: bool = False) -> EvaluationResult:
    """Evaluate an encoder on a prepared dataset; returns an :class:`EvaluationResult` (nothing is written:
    ``result.write(out_dir)`` puts the rankings and metrics.json on disk).

    ``model``: a SentenceTransformer (or anything with ``encode_query``/``encode_document``/``encode``
    taking sentence-transformers' keyword arguments). ``dataset``: a :class:`PreparedDataset` or its path.
    ``identity``: the model's identity, recorded as metrics.json ``"model"`` and keying the embedding cache.
    ``adapter`` and ``trainable_params`` are recorded as they are (``"none"``, 0: a zero-shot model).
    """
    start = time.perf_counter()
    ds = as_dataset(dataset)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    identity = dict(identity) if identity else {"name": type(model).__name__, "location": None, "sha256": None}
    selections = [load_selection(ds, task, lang, split) for task, langs in select(ds, tasks, languages)
                  for lang in langs]
    selections = [s for s in selections if s.qids]
    if not selections:
        raise DataError(f"the selected tasks and languages have no {split} queries")
    thesaurus = load_thesaurus(ds)
    warm_up()

    table = EmbeddingTable(model)
    pool_rows = [table.add(s.pool_texts, "document") for s in selections]
    query_rows = [table.add(s.query_texts, "query") for s in selections]
    key = model_cache_key(identity, options.cache_extra)
    cache = EmbeddingCache(options.cache_dir, key, ds.fingerprint) if options.cache_dir is not None and key else None
    stats = table.encode(batch_size=options.batch_size, cache=cache, show_progress=show_progress,
                         desc=f"encoding {split} ({len(table.items):,} texts)")

    indexes: dict[bytes, tuple[object, np.ndarray]] = {}
    scores: dict[str, dict[str, dict]] = {}
    rankings: dict[tuple[str, str], Rankings] = {}
    for sel, prow, qrow in zip(selections, pool_rows, query_rows):
        pool_key = hashlib.blake2b(prow.tobytes(), digest_size=16).digest()
        if pool_key not in indexes:
            vectors = table.vectors[prow]
            indexes[pool_key] = (build_index(vectors, options.index), vectors)
        faiss_index, vectors = indexes[pool_key]
        exclude = None
        if sel.own is not None:
            pos = {cid: i for i, cid in enumerate(sel.pool)}
            exclude = np.array([pos.get(c, -1) for c in sel.own], dtype=np.int64)
        rows, sims = rank(faiss_index, table.vectors[qrow], k=options.top_k, exclude=exclude, pool=vectors)
        ranked = Rankings(list(sel.qids), list(sel.pool), rows, sims)
        rankings[(sel.task, sel.lang)] = ranked
        scores.setdefault(sel.task, {})[sel.lang] = score_rankings(ranked, sel.qrels, thesaurus)
    for task in scores:
        scores[task]["macro"] = macro({lang: s for lang, s in scores[task].items()})

    metrics = {
        "dataset_id": ds.dataset_id,
        "dataset_fingerprint": ds.fingerprint,
        "split": split,
        "model": portable_identity(identity),
        "adapter": adapter,
        "trainable_params": int(trainable_params),
        "scores": scores,
        "main_score": main_score(scores),
        "primary_metric": PRIMARY_METRIC,
        "rankings": {t: {lang: f"{RANKINGS}/{ranking_name(t, lang, split)}" for lang in per if lang != "macro"}
                     for t, per in scores.items()},
        "encoding": stats.as_dict(),
        "index": options.index,
        "versions": versions(),
        "evaluation_time": round(time.perf_counter() - start, 3),
        "evaluated_at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    return EvaluationResult(metrics, rankings)
