"""ELSST-Bench inside MTEB: one ``AbsTaskRetrieval`` per ELSST task, read from the prepared dataset (no hub).

``mteb.evaluate(model, tasks=elsst_bench.mteb.tasks(languages=["en"]), cache=None)`` evaluates any
SentenceTransformer offline. What maps to what (docs/mteb.md has the metric correspondence):

- ELSST task → MTEB task ``ELSST<Task>Retrieval`` (:data:`TASK_NAMES`); type ``Retrieval``, category ``t2t``,
  licence CC BY-SA 4.0, ``revision`` = the prepared dataset's fingerprint;
- language (ISO 639-1, ``en``) → an ``eval_langs`` subset of the same name, with MTEB's code (:data:`LANGUAGES`,
  ``eng-Latn``); a ``crosslingual`` subset lists the query language and the pool's (the pivot, ``["deu-Latn",
  "eng-Latn"]``). The default subsets are the selected languages with test queries;
- split → ``eval_splits`` (``test``; ``task.filter_eval_splits(["dev"])`` for dev);
- pool → ``corpus`` (``id``, ``text``), the split's queries → ``queries``, the graded qrels (1–3) →
  ``relevant_docs`` as they are, so MTEB's own ``ndcg_at_10`` is our primary metric, graded nDCG@10;
- the query's own concept in ``broader`` → ``ignore_identical_ids`` (its query id is the concept id, which MTEB
  drops from the ranking before scoring); every other task keeps it, since there it is the answer;
- our metrics (:data:`~elsst_bench.metric_names.METRICS`) → extra scores ``elsst_<name>`` (:data:`SCORE_KEYS`),
  computed by :func:`elsst_bench.evaluation.score_rankings` on MTEB's own ranking (tie rule: score, then concept
  id) in :meth:`ElsstRetrievalTask.task_specific_scores`, MTEB's hook for task-specific scores;
  ``main_score`` is ``elsst_ndcg_at_10_graded``, the benchmark's primary metric.
"""

from __future__ import annotations

import heapq
from pathlib import Path

import numpy as np

try:
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata
except ImportError as err:  # the optional extra
    raise ImportError(f"elsst_bench.mteb needs mteb ({err}); install it with pip install 'elsst-bench[mteb]'") from err

from . import __version__
from .cards import CITATION, DATA_ATTRIBUTION
from .errors import DataError
from .tasks import TASKS
from .evaluation.metrics import CUTOFF, score_rankings
from .evaluation.rankings import Rankings
from .evaluation.runner import load_thesaurus, select
from .metric_names import METRICS, PRIMARY_METRIC
from .paths import default_dataset_dir
from .tasks import SPLITS, PreparedDataset, open_prepared, resolve_selection

#: ELSST's languages (ISO 639-1, as the prepared dataset names them) → MTEB's ``<ISO 639-3>-<ISO 15924>``.
LANGUAGES = {
    "cs": "ces-Latn", "de": "deu-Latn", "el": "ell-Grek", "en": "eng-Latn", "es": "spa-Latn",
    "fi": "fin-Latn", "fr": "fra-Latn", "hu": "hun-Latn", "is": "isl-Latn", "lt": "lit-Latn",
    "nl": "nld-Latn", "no": "nor-Latn", "ro": "ron-Latn", "sl": "slv-Latn", "sv": "swe-Latn",
}
TASK_NAMES = {task: f"ELSST{task.capitalize()}Retrieval" for task in TASKS}
#: Our metric names → the keys of the scores MTEB reports for them (``ndcg@10_graded`` → ``elsst_ndcg_at_10_graded``).
SCORE_KEYS = {metric: "elsst_" + metric.replace("@", "_at_") for metric in METRICS}
REFERENCE = "https://elsst.cessda.eu/"
#: When the data of a release was written: its oldest ``dct:modified`` and its ``dct:issued`` date.
RELEASE_DATES = {"5": ("2018-08-31", "2024-09-23")}
DESCRIPTIONS = {
    "broader": "Given the preferred label of an ELSST concept, retrieve its broader concepts (direct broader "
               "grade 3, two hops up 2, further ancestors 1); the query's own concept is never a candidate.",
    "synonym": "Given an alternative label (entry term) of an ELSST concept, retrieve the concept by its "
               "preferred label (grade 3) or its direct broader and narrower concepts (grade 1).",
    "crosslingual": "Given the preferred label of an ELSST concept in one language, retrieve the same concept "
                    "among the preferred labels in the pivot language, {pivot} (grade 3), or its direct broader and "
                    "narrower concepts (grade 1).",
    "definition": "Given the definition of an ELSST concept, retrieve the concept by its preferred label (grade 3).",
}

__all__ = ["LANGUAGES", "SCORE_KEYS", "TASK_NAMES", "ElsstRetrievalTask", "rankings_from_run", "task_metadata",
           "tasks"]


def _open(dataset) -> PreparedDataset:
    if isinstance(dataset, PreparedDataset):
        return dataset
    return open_prepared(default_dataset_dir() if dataset is None else dataset)


def _mteb_code(lang: str) -> str:
    if lang not in LANGUAGES:
        raise DataError(f"language {lang!r} has no MTEB language code here; known: {', '.join(LANGUAGES)}")
    return LANGUAGES[lang]


def _elsst_code(code: str) -> str:
    """``en``, ``eng`` and ``eng-Latn`` all name English; anything else is left for the selection to refuse."""
    for ours, theirs in LANGUAGES.items():
        if code in (theirs, theirs.split("-")[0]):
            return ours
    return code


def task_metadata(ds: PreparedDataset, task: str) -> TaskMetadata:
    """The complete ``TaskMetadata`` of one ELSST task on a prepared dataset (every language it has)."""
    pivot = ds.manifest.get("pivot", "en")
    return TaskMetadata(
        name=TASK_NAMES[task],
        description=f"{DESCRIPTIONS[task].format(pivot=pivot)} ELSST-Bench, prepared dataset {ds.dataset_id} "
                    f"(fingerprint {ds.fingerprint[:16]}). Data: {DATA_ATTRIBUTION}.",
        dataset={"path": str(Path(ds.path).resolve()), "revision": ds.fingerprint},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        reference=REFERENCE,
        eval_splits=["test"],
        eval_langs={lang: [_mteb_code(lang)] + ([_mteb_code(pivot)] if task == "crosslingual" and lang != pivot
                                                else [])
                    for lang in ds.languages(task)},
        main_score=SCORE_KEYS[PRIMARY_METRIC],
        date=RELEASE_DATES.get(str(ds.manifest.get("release"))),
        domains=["Academic", "Written"],
        task_subtypes=[],
        license="cc-by-sa-4.0",
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        bibtex_citation=CITATION % __version__,
        contributed_by="elsst-bench",
    )


def rankings_from_run(run: dict[str, dict[str, float]], pool: list[str], k: int = CUTOFF) -> Rankings:
    """MTEB's run ``{qid: {concept_id: score}}`` as :class:`~elsst_bench.evaluation.Rankings` over ``pool``
    (ascending ids): each query's top ``k`` by score descending, then concept id ascending (our tie rule)."""
    row = {cid: i for i, cid in enumerate(pool)}
    qids = sorted(run)
    rows = np.full((len(qids), k), -1, dtype=np.int64)
    scores = np.full((len(qids), k), -np.inf, dtype=np.float32)
    for i, qid in enumerate(qids):
        top = heapq.nsmallest(k, run[qid].items(), key=lambda item: (-item[1], item[0]))
        rows[i, :len(top)] = [row[cid] for cid, _ in top]
        scores[i, :len(top)] = [score for _, score in top]
    return Rankings(qids, list(pool), rows, scores)


class ElsstRetrievalTask(AbsTaskRetrieval):
    """One ELSST task of a prepared dataset as an MTEB retrieval task (see the module docstring).

    ``ElsstRetrievalTask("broader", dataset, languages=["en", "de"])``; :func:`tasks` makes them for a selection.
    ``elsst_task`` is the ELSST task, ``prepared`` the :class:`~elsst_bench.tasks.PreparedDataset`; its subsets
    (``hf_subsets``) are the chosen languages that have test queries.
    """

    def __init__(self, task: str, dataset=None, languages: list[str] | None = None, **kwargs):
        ds = _open(dataset)
        task = resolve_selection([task], ds.tasks(), "task")[0]
        languages = None if languages is None else [_elsst_code(lang) for lang in languages]
        chosen = resolve_selection(languages, ds.languages(task), "language")
        self.elsst_task = task
        self.prepared = ds
        self.metadata = task_metadata(ds, task)
        self.ignore_identical_ids = bool(ds.manifest.get("exclude_query_concept", {}).get(task, task == "broader"))
        super().__init__(**kwargs)
        counts = ds.manifest["queries"][task]
        self.hf_subsets = [lang for lang in chosen if counts[lang].get("test", 0)]

    def load_data(self, num_proc: int | None = None, **kwargs) -> None:
        """``self.dataset[lang][split]``: corpus, queries and graded qrels, read from the prepared files."""
        if self.data_loaded:
            return
        from datasets import Dataset

        ds = open_prepared(self.prepared.path)
        if ds.fingerprint != self.metadata.revision:
            raise DataError(f"the prepared dataset at {ds.path} changed since its MTEB tasks were made; "
                            "call elsst_bench.mteb.tasks() again")
        unknown = [split for split in self.eval_splits if split not in SPLITS]
        if unknown:
            raise DataError(f"unknown split {unknown[0]!r}; known: {', '.join(SPLITS)}")
        self.dataset = {}
        for lang in self.hf_subsets:
            data = ds.load(self.elsst_task, lang)
            ids = sorted(data.corpus)
            corpus = Dataset.from_dict({"id": ids, "text": [data.corpus[cid] for cid in ids]})
            self.dataset[lang] = {}
            for split in self.eval_splits:
                qids = sorted(data.qrels[split])
                if not qids:
                    raise DataError(f"{self.elsst_task} has no {split} queries in {lang}; leave {lang} out")
                if self.ignore_identical_ids and any(data.query_concept[q] != q for q in qids):
                    raise DataError(f"{self.elsst_task} removes the query's own concept, but a query id in {lang} "
                                    "is not its concept id, which MTEB's ignore_identical_ids needs")
                queries = Dataset.from_dict({"id": qids, "text": [data.queries[q] for q in qids]})
                self.dataset[lang][split] = RetrievalSplitData(
                    corpus=corpus, queries=queries, relevant_docs={q: dict(data.qrels[split][q]) for q in qids},
                    top_ranked=None)
        self.data_loaded = True

    def task_specific_scores(self, scores, qrels, results, hf_split: str, hf_subset: str) -> dict[str, float]:
        """Our metrics on MTEB's ranking (own concept already removed) and graded qrels, as ``elsst_<name>``."""
        pool = sorted(self.dataset[hf_subset][hf_split]["corpus"]["id"])
        ours = score_rankings(rankings_from_run(results, pool), qrels, load_thesaurus(self.prepared))
        return {SCORE_KEYS[metric]: ours[metric] for metric in METRICS if ours.get(metric) is not None}

    def unload_data(self) -> None:
        """Free the data. MTEB's own also drops a task's instance metadata to restore the published one; ours is
        the only one there is, so it stays."""
        self.dataset = None
        self.data_loaded = False


def _names(value, what: str) -> list[str] | None:
    """``None`` (every one), one name, or a non-empty list of names; anything else is refused in one line (an
    empty list would otherwise mean "all", and ``b"broader"`` or ``123`` fail deep inside)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise DataError(f"{what} must be a name or a list of names (str), got {type(value).__name__} "
                        f"{repr(value)[:40]}")
    if not value:
        raise DataError(f"{what} is an empty list; pass None for every one")
    return list(value)


def tasks(tasks: list[str] | str | None = None, languages: list[str] | str | None = None,
          dataset=None) -> list[ElsstRetrievalTask]:
    """MTEB retrieval tasks for the selected ELSST tasks and languages of a prepared dataset.

    ``tasks``, ``languages``: names as in the CLI (``None`` or ``["all"]``: every one); languages may also be
    given as MTEB codes (``deu``, ``deu-Latn``). ``dataset``: a prepared dataset or its directory (default
    ``data/prepared/elsst-r5``). Unknown tasks or languages, or a missing dataset, raise :class:`DataError`.
    """
    tasks, languages = _names(tasks, "tasks"), _names(languages, "languages")
    ds = _open(dataset)
    if languages is not None:
        languages = [_elsst_code(lang) for lang in languages]
    made = [ElsstRetrievalTask(task, ds, langs) for task, langs in select(ds, tasks, languages, strict=True)]
    made = [task for task in made if task.hf_subsets]
    if not made:
        raise DataError("the selected tasks and languages have no test queries")
    return made
