"""Hierarchy-aware hard negatives, mined once with the base model before training (``--recipe hard-negatives``).

For a training query q made from concept c, the k negatives are the pool documents the base model ranks highest
for q (cosine of the model's query and document embeddings, with its prompts), except that a negative is never

- c itself, an ancestor of c or a descendant of c (the thesaurus' broader/narrower closure), nor
- a concept with a grade for q in the train qrels (for ``synonym`` and ``crosslingual``: c's direct broader and
  narrower concepts),

nor any document whose text equals such a concept's text (the encoder sees texts, not ids).

sentence-transformers' ``mine_hard_negatives`` does the encoding, the search and the top-k. It never returns a
query's own positives, so every excluded concept's text is handed to it as one more "positive" of that query (the
mining rows, :func:`mining_rows`), and it returns the k best of the rest. ``sampling_strategy="top"`` and a CPU
encoder make the result a deterministic function of the base model, the pairs and k.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict

from ..errors import DataError
from ..pairs import PairSet


def excluded_concepts(thesaurus, data, qid: str, split: str = "train") -> set[str]:
    """The concepts that must never be a negative of query ``qid`` (module docstring)."""
    concept = data.query_concept[qid]
    return {concept, *thesaurus.ancestors(concept), *thesaurus.descendants(concept), *data.qrels[split].get(qid, {})}


def mining_rows(thesaurus, data, qids: list[str], split: str = "train") -> tuple[list[str], list[str]]:
    """(anchor, excluded text) rows: every pool text of an excluded concept, for each query of ``qids``."""
    anchors, texts = [], []
    for qid in qids:
        for doc in sorted(excluded_concepts(thesaurus, data, qid, split) & data.corpus.keys()):
            anchors.append(data.queries[qid])
            texts.append(data.corpus[doc])
    return anchors, texts


def mine_negatives(model, dataset, pairs: PairSet, k: int, split: str = "train") -> list[tuple[str, ...]]:
    """``k`` hard-negative texts for every pair of ``pairs``, in pair order, from the pair's own pool."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    from ..models import role_prompt

    if k < 1:
        raise DataError(f"--hard-negatives must be >= 1, got {k}")
    thesaurus = dataset.thesaurus()
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, source in enumerate(pairs.sources):
        by_source[source].append(i)
    out: list[tuple[str, ...] | None] = [None] * len(pairs)
    # One temporary embedding cache per call: sources that share a pool (broader/en, synonym/en) encode it once, and
    # no embedding outlives the model that made it.
    with tempfile.TemporaryDirectory(prefix="elsst-bench-mining-") as cache:
        for source, rows in by_source.items():
            task, lang = source.split("/")
            data = dataset.load(task, lang)
            qids = list(dict.fromkeys(pairs.query_ids[i] for i in rows))
            anchors, texts = mining_rows(thesaurus, data, qids, split)
            mined = mine_hard_negatives(
                Dataset.from_dict({"anchor": anchors, "positive": texts}), model,
                corpus=list(data.corpus.values()), num_negatives=k, sampling_strategy="top", output_format="n-tuple",
                query_prompt=role_prompt(model, "query"), corpus_prompt=role_prompt(model, "document"),
                batch_size=128, verbose=False, cache_folder=cache,
            )
            found = {row["anchor"]: tuple(row[f"negative_{j}"] for j in range(1, k + 1)) for row in mined}
            for i in rows:
                if pairs.anchors[i] not in found:
                    raise DataError(f"{source}: fewer than {k} admissible negatives for query "
                                    f"{pairs.query_ids[i]!r}; lower --hard-negatives")
                out[i] = found[pairs.anchors[i]]
    return out  # type: ignore[return-value]
