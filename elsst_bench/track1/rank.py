"""Ranking a release's concept pool for its passages with an encoder: passages encoded as queries, concepts as
documents (their term and definition, :attr:`.release.Concept.text`), each with the model's own prompts; exact
FAISS inner product over L2-normalised vectors, top 100, ties in pool order (the evaluation layer's rule)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .release import Passage, Release
from .submission import MAX_RANKED


def rank_passages(model, release: Release, passages: Sequence[Passage], k: int = MAX_RANKED,
                  batch_size: int = 64) -> dict[str, list[str]]:
    """``{passage id: [concept id, ...]}``, best first, ``k`` concepts each (the pool's size if smaller)."""
    from ..evaluation.encode import encode_role
    from ..evaluation.index import build_index
    from ..evaluation.rankings import rank

    concepts = list(release.pool.values())
    documents = encode_role(model, [c.text for c in concepts], "document", batch_size=batch_size)
    queries = encode_role(model, [p.text for p in passages], "query", batch_size=batch_size)
    rows, _ = rank(build_index(documents, "flat"), queries, k=k, pool=documents)
    ids = np.array([c.id for c in concepts], dtype=object)
    return {p.id: [ids[r] for r in row if r >= 0] for p, row in zip(passages, rows)}
