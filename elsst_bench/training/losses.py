"""The graded objective (``--recipe graded``): InfoNCE whose targets follow the benchmark's grades.

A batch holds B rows (query q_i, document d_i[, hard negatives n_i1 … n_ik]). The candidates are every document
column of every row, C = (1 + k)·B texts, each with the concept(s) it is the label of. With s_ij = scale · cos(q_i,
c_j) and g_ij = the train grade of candidate j's concept for q_i (0 if none; the largest when a text labels several
concepts), the loss is the cross-entropy against the grade-proportional target

    t_ij = g_ij / Σ_l g_il,        L = −(1/B) Σ_i Σ_j t_ij · log softmax_j(s_ij),

the graded metric's linear gains. A candidate that is q_i's own concept where the task never ranks it
(``broader``) is masked out of q_i's softmax. Every row's own document has a grade (t_ii > 0), so the target is
always defined. With no judged candidate besides d_i, t is one-hot on the diagonal and the loss is exactly
sentence-transformers' ``MultipleNegativesRankingLoss`` (same scale, cosine): a 2-hop ancestor that happens to be
in the batch is a weaker positive here, where MNRL pushes it away.

Under DDP (``gather_across_devices``) the candidates are every process's document columns, as
sentence-transformers' MNRL gathers them (with gradients flowing back to their process), and the queries this
process's own: the same loss as one process with the global batch.

Rows are identified by the dataset's ``label`` column: the row's index into ``rows`` (sentence-transformers
passes that column to the loss as ``labels`` and keeps it out of the batch sampler's duplicate check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.util import cos_sim
from sentence_transformers.util.distributed import all_gather, all_gather_with_grad
from torch import Tensor, nn


@dataclass(frozen=True)
class RowConcepts:
    """What the loss knows of one training row."""

    grades: dict[str, int]  # the query's train judgments: concept id -> grade
    masked: frozenset[str]  # concepts never ranked for this query (its own, in broader)
    columns: tuple[frozenset[str], ...]  # the concept ids each document column's text labels (positive first)


def grade_matrix(rows: list[RowConcepts], candidate_rows: list[RowConcepts] | None = None) -> tuple[Tensor, Tensor]:
    """(grades, mask) of a batch: ``[B, C]`` for the queries of ``rows`` against the document columns of
    ``candidate_rows`` (default: ``rows``; under DDP, every process's rows), candidate j = column ``j // R`` of
    candidate row ``j % R``, R = len(candidate_rows)."""
    candidate_rows = rows if candidate_rows is None else candidate_rows
    columns = len(candidate_rows[0].columns)
    candidates = [candidate_rows[r].columns[c] for c in range(columns) for r in range(len(candidate_rows))]
    grades = torch.zeros(len(rows), len(candidates))
    mask = torch.zeros(len(rows), len(candidates), dtype=torch.bool)
    for i, row in enumerate(rows):
        for j, concepts in enumerate(candidates):
            grades[i, j] = max((row.grades.get(c, 0) for c in concepts), default=0)
            mask[i, j] = bool(concepts & row.masked)
    return grades, mask


def graded_infonce(scores: Tensor, grades: Tensor, mask: Tensor) -> Tensor:
    """The loss of the module docstring from scaled similarities ``[B, C]``, grades and mask."""
    grades = grades.masked_fill(mask, 0.0).to(scores.dtype)
    targets = grades / grades.sum(dim=1, keepdim=True)
    log_probs = torch.log_softmax(scores.masked_fill(mask, float("-inf")), dim=1)
    # 0 · log p is 0 even where p is 0 (masked): take the product only where the target is positive.
    return -torch.where(targets > 0, targets * log_probs, torch.zeros_like(log_probs)).sum(dim=1).mean()


class GradedInfoNCELoss(nn.Module):
    """Soft-target InfoNCE over in-batch (and hard-negative) candidates; see the module docstring."""

    def __init__(self, model, rows: list[RowConcepts], scale: float = 20.0, gather_across_devices: bool = False):
        super().__init__()
        self.model = model
        self.rows = rows
        self.scale = scale
        self.gather_across_devices = gather_across_devices

    def forward(self, sentence_features, labels: Tensor) -> Tensor:
        embeddings = embed_columns(self.model, sentence_features)
        queries, documents = embeddings[0], embeddings[1:]
        batch = [self.rows[int(i)] for i in labels.tolist()]
        if self.gather_across_devices:
            documents = [all_gather_with_grad(d) for d in documents]
            labels = all_gather(labels)
        candidates = torch.cat(documents, dim=0)
        grades, mask = grade_matrix(batch, [self.rows[int(i)] for i in labels.tolist()])
        scores = self.scale * cos_sim(queries, candidates)
        return graded_infonce(scores, grades.to(scores.device), mask.to(scores.device))

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "similarity_fct": "cos_sim", "targets": "linear grades",
                "gather_across_devices": self.gather_across_devices}

    @property
    def citation(self) -> str | None:
        return None
