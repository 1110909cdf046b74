"""Training pairs for contrastive fine-tuning, read from a prepared dataset.

A pair is ``(anchor, positive)`` = (query text, text of a grade-3 relevant concept) taken from the
**train** qrels only, so the concepts of the dev and test splits never appear as queries in training.
MultipleNegativesRankingLoss uses the other positives in a batch as negatives; the batch sampler keeps
duplicate texts out of a batch so no false negative is an exact copy of the positive.

Default tasks are ``broader``, ``synonym`` and ``crosslingual``: the ``definition`` task is held out
as a zero-shot transfer test.

A cap of N pairs per task and language (``--max-pairs``, what makes ``--languages all`` affordable on a CPU)
is a deterministic sample: a source's pairs are ranked by ``blake2b(task/lang/query id/document id)`` and the
first N kept. So the sample is the same for every method and seed (the comparison is paired), spreads over the
whole thesaurus rather than its first concept ids, and is nested: the 96-pair sample is inside the 160-pair one.

``min_grade`` < 3 (the ``graded`` recipe, :mod:`elsst_bench.training.recipes`) adds, for every query of that sample,
its weaker train judgments with ``min_grade <= grade < 3`` as rows of their own (in ``broader``: grade 2 = the
ancestor two hops up, grade 1 = further up). The grade-3 sample is unchanged, so a graded run sees the plain run's
pairs and more.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .errors import DataError
from .tasks import PreparedDataset, resolve_selection

DEFAULT_TRAIN_TASKS = ("broader", "synonym", "crosslingual")


@dataclass(frozen=True)
class PairSet:
    anchors: list[str]
    positives: list[str]
    sources: list[str]  # "<task>/<lang>" of each pair
    counts: dict[str, int]  # pairs per "<task>/<lang>"
    query_ids: list[str]  # the anchor's query id in its source
    doc_ids: list[str]  # the positive's concept id (corpus id)
    grades: list[int]  # the pair's train grade (3 unless min_grade < 3)

    def __len__(self) -> int:
        return len(self.anchors)


def sample_key(source: str, qid: str, doc: str) -> bytes:
    """The rank of a pair in its source's sample: a hash, so no seed, method or concept id order enters."""
    return hashlib.blake2b(f"{source}/{qid}/{doc}".encode(), digest_size=8).digest()


def training_pairs(dataset: PreparedDataset, tasks: list[str] | None = None, languages: list[str] | None = None,
                   split: str = "train", limit: int | None = None, min_grade: int = 3) -> PairSet:
    """All (query, grade-3 document) pairs of ``split`` for the chosen tasks and languages, sorted.

    ``limit`` keeps a deterministic sample of at most ``limit`` pairs per task/language (:func:`sample_key`);
    ``min_grade`` < 3 adds the sampled queries' judgments of grade ``min_grade`` to 2 (module docstring).
    """
    if min_grade not in (1, 2, 3):
        raise DataError(f"min_grade must be 1, 2 or 3, got {min_grade}")
    tasks = resolve_selection(tasks or list(DEFAULT_TRAIN_TASKS), dataset.tasks(), "task")
    # Languages are checked against the whole dataset: `-l en,de --tasks crosslingual` is fine (English is
    # crosslingual's pool, so only German gives pairs there).
    all_langs = sorted({lang for task in dataset.tasks() for lang in dataset.languages(task)})
    languages = resolve_selection(languages, all_langs, "language")
    rows: dict[str, list] = {"anchors": [], "positives": [], "sources": [], "query_ids": [], "doc_ids": [], "grades": []}
    counts = {}
    for task in tasks:
        for lang in languages:
            if lang not in dataset.languages(task):
                continue  # e.g. crosslingual has no English queries: the pivot is English
            data = dataset.load(task, lang)
            source = f"{task}/{lang}"
            qrels = data.qrels[split]
            chosen = [(qid, doc) for qid in sorted(qrels) for doc, grade in sorted(qrels[qid].items()) if grade >= 3]
            if limit is not None and len(chosen) > limit:
                keep = set(sorted(chosen, key=lambda pair: sample_key(source, *pair))[:limit])
                chosen = [pair for pair in chosen if pair in keep]
            if min_grade < 3:
                sampled = {qid for qid, _ in chosen}
                chosen = sorted(chosen + [(qid, doc) for qid in sampled for doc, grade in qrels[qid].items()
                                          if min_grade <= grade < 3])
            for qid, doc in chosen:
                rows["anchors"].append(data.queries[qid])
                rows["positives"].append(data.corpus[doc])
                rows["sources"].append(source)
                rows["query_ids"].append(qid)
                rows["doc_ids"].append(doc)
                rows["grades"].append(qrels[qid][doc])
            counts[source] = len(chosen)
    if not rows["anchors"]:
        raise DataError(f"no training pairs for tasks {', '.join(tasks)} in languages {', '.join(languages)}")
    return PairSet(counts=counts, **rows)
