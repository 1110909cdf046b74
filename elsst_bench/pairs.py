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

    def __len__(self) -> int:
        return len(self.anchors)

    def to_dataset(self):
        from datasets import Dataset

        return Dataset.from_dict({"anchor": self.anchors, "positive": self.positives})


def sample_key(source: str, qid: str, doc: str) -> bytes:
    """The rank of a pair in its source's sample: a hash, so no seed, method or concept id order enters."""
    return hashlib.blake2b(f"{source}/{qid}/{doc}".encode(), digest_size=8).digest()


def training_pairs(dataset: PreparedDataset, tasks: list[str] | None = None, languages: list[str] | None = None,
                   split: str = "train", limit: int | None = None) -> PairSet:
    """All (query, grade-3 document) pairs of ``split`` for the chosen tasks and languages, sorted.

    ``limit`` keeps a deterministic sample of at most ``limit`` pairs per task/language (:func:`sample_key`).
    """
    tasks = resolve_selection(tasks or list(DEFAULT_TRAIN_TASKS), dataset.tasks(), "task")
    # Languages are checked against the whole dataset: `-l en,de --tasks crosslingual` is fine (English is
    # crosslingual's pool, so only German gives pairs there).
    all_langs = sorted({lang for task in dataset.tasks() for lang in dataset.languages(task)})
    languages = resolve_selection(languages, all_langs, "language")
    anchors, positives, sources, counts = [], [], [], {}
    for task in tasks:
        for lang in languages:
            if lang not in dataset.languages(task):
                continue  # e.g. crosslingual has no English queries: the pivot is English
            data = dataset.load(task, lang)
            source = f"{task}/{lang}"
            chosen = [(qid, doc) for qid in sorted(data.qrels[split])
                      for doc, grade in sorted(data.qrels[split][qid].items()) if grade >= 3]
            if limit is not None and len(chosen) > limit:
                keep = set(sorted(chosen, key=lambda pair: sample_key(source, *pair))[:limit])
                chosen = [pair for pair in chosen if pair in keep]
            for qid, doc in chosen:
                anchors.append(data.queries[qid])
                positives.append(data.corpus[doc])
                sources.append(source)
            counts[source] = len(chosen)
    if not anchors:
        raise DataError(f"no training pairs for tasks {', '.join(tasks)} in languages {', '.join(languages)}")
    return PairSet(anchors, positives, sources, counts)
