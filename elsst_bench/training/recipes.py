"""Training recipes: what a run trains on and with which loss (``--recipe``), on top of any adapter.

A recipe is ``plain`` or ``+``-joined components (written in any order; recorded in the order below):

================  ==========================================================================================
component         what it changes
================  ==========================================================================================
hard-negatives    each pair gets ``--hard-negatives`` k negatives mined with the base model
                  (:mod:`.negatives`): never the query's concept, its ancestors or descendants, nor any concept
                  the train qrels grade for that query
graded            the sampled queries' weaker judgments (grade >= ``--min-grade``, default 2: the ancestor two
                  hops up) become rows too, and the loss is :class:`~.losses.GradedInfoNCELoss`: in-batch
                  targets follow the grades instead of treating every other document as a negative
guided            GISTEmbed (sentence-transformers' ``GISTEmbedLoss``) with the base model as guide: an in-batch
                  candidate the guide scores above the row's own positive is not used as a negative
================  ==========================================================================================

``plain`` is the published grid's objective: MultipleNegativesRankingLoss over (query, grade-3 document) pairs.
Every loss uses cosine similarity at scale 20 (temperature 0.05), so recipes differ only in what they name.
``graded`` and ``guided`` both decide which in-batch candidates count as negatives; combining them is refused.
A recipe never changes the benchmark: its corpus, queries and qrels are the same for every run.

This module imports no torch: ``sweep --dry-run`` resolves recipes with it. :func:`build_objective` imports what
the components need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BenchError

PLAIN = "plain"
DEFAULT_HARD_NEGATIVES = 1
DEFAULT_MIN_GRADE = 2
#: The components, in their recorded order.
COMPONENTS = ("hard-negatives", "graded", "guided")
SCALE = 20.0
LOSSES = {
    "plain": "MultipleNegativesRankingLoss(scale=20, cos_sim)",
    "graded": "GradedInfoNCELoss(scale=20, cos_sim, linear grade targets)",
    "guided": "GISTEmbedLoss(guide=base, temperature=0.05)",
}


def parse_recipe(text: str) -> tuple[str, ...]:
    """The components of a recipe string (empty for ``plain``), or one clear BenchError."""
    if not isinstance(text, str) or not text.strip():
        raise BenchError("--recipe must be 'plain' or components joined by '+': " + ", ".join(COMPONENTS))
    if text.strip() == PLAIN:
        return ()
    parts = [p.strip() for p in text.split("+")]
    if PLAIN in parts:  # plain is the empty recipe: it is a recipe of its own, never a component
        raise BenchError(f"recipe {text!r} joins 'plain' to other components; plain means none of them: give "
                         f"'plain' alone, or components joined by '+': {', '.join(COMPONENTS)}")
    unknown = [p for p in parts if p not in COMPONENTS]
    if unknown:
        raise BenchError(f"unknown recipe component {unknown[0]!r}; known: {', '.join(COMPONENTS)} (or 'plain' "
                         "alone)")
    if len(set(parts)) != len(parts):
        raise BenchError(f"recipe {text!r} names a component twice")
    if {"graded", "guided"} <= set(parts):
        raise BenchError("recipe components 'graded' and 'guided' both decide the in-batch negatives; pick one")
    return tuple(c for c in COMPONENTS if c in parts)


def recipe_name(components: tuple[str, ...]) -> str:
    return "+".join(components) if components else PLAIN


@dataclass(frozen=True)
class Recipe:
    """A resolved recipe: its components and the parameters they use."""

    components: tuple[str, ...]
    hard_negatives: int = DEFAULT_HARD_NEGATIVES
    min_grade: int = DEFAULT_MIN_GRADE

    @classmethod
    def resolve(cls, text: str, hard_negatives: int, min_grade: int) -> "Recipe":
        components = parse_recipe(text)
        if "hard-negatives" in components and hard_negatives < 1:
            raise BenchError(f"--hard-negatives must be >= 1, got {hard_negatives}")
        if "graded" in components and min_grade not in (1, 2):
            raise BenchError(f"--min-grade must be 1 or 2 (grade 3 pairs are the plain rows), got {min_grade}")
        return cls(components, hard_negatives, min_grade)

    @property
    def name(self) -> str:
        return recipe_name(self.components)

    @property
    def options(self) -> dict[str, Any]:
        """The parameters this recipe's components use (what a run records beside the name)."""
        out: dict[str, Any] = {}
        if "hard-negatives" in self.components:
            out["hard_negatives"] = self.hard_negatives
        if "graded" in self.components:
            out["min_grade"] = self.min_grade
        return out

    @property
    def loss(self) -> str:
        for component in ("graded", "guided"):
            if component in self.components:
                return LOSSES[component]
        return LOSSES[PLAIN]

    @property
    def pair_min_grade(self) -> int:
        """The lowest grade that makes a training row (3: grade-3 pairs only)."""
        return self.min_grade if "graded" in self.components else 3


def from_options(options: dict) -> Recipe:
    """The recipe a run's resolved options record (``plain`` for runs recorded before recipes existed)."""
    extra = options.get("recipe_options") or {}
    return Recipe(parse_recipe(options.get("recipe", PLAIN)), extra.get("hard_negatives", DEFAULT_HARD_NEGATIVES),
                  extra.get("min_grade", DEFAULT_MIN_GRADE))


def build_objective(recipe: Recipe, model, pairs, dataset, base_loader, gather: bool = False):
    """``(train dataset, loss)`` for ``recipe`` on ``pairs``. ``model`` is the base encoder, not yet trainable:
    negatives are mined with it here, before the method is applied. ``base_loader()`` loads another copy of the
    base (the guide). ``gather``: the loss takes its in-batch candidates from every DDP process."""
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss, MultipleNegativesRankingLoss

    from .losses import GradedInfoNCELoss

    columns: dict[str, list] = {"anchor": pairs.anchors, "positive": pairs.positives}
    negatives = None
    if "hard-negatives" in recipe.components:
        from .negatives import mine_negatives

        negatives = mine_negatives(model, dataset, pairs, recipe.hard_negatives)
        for j in range(recipe.hard_negatives):
            columns[f"negative_{j + 1}"] = [row[j] for row in negatives]
    if "graded" in recipe.components:
        rows = graded_rows(dataset, pairs, negatives)
        columns["label"] = list(range(len(pairs)))
        make_loss = lambda m: GradedInfoNCELoss(m, rows, scale=SCALE, gather_across_devices=gather)  # noqa: E731
    elif "guided" in recipe.components:
        guide = base_loader()
        guide.requires_grad_(False)
        guide.eval()
        make_loss = lambda m: GISTEmbedLoss(m, guide, temperature=1 / SCALE,  # noqa: E731
                                             gather_across_devices=gather)
    else:
        make_loss = lambda m: MultipleNegativesRankingLoss(m, scale=SCALE,  # noqa: E731
                                                            gather_across_devices=gather)
    return Dataset.from_dict(columns), make_loss


def graded_rows(dataset, pairs, negatives):
    """Each pair's :class:`~.losses.RowConcepts`: its query's train grades, the concepts never ranked for it, and
    the concepts its positive's (and negatives') texts label in its own pool."""
    from ..tasks import EXCLUDE_QUERY_CONCEPT
    from .losses import RowConcepts

    loaded: dict[str, tuple] = {}
    rows = []
    for i, source in enumerate(pairs.sources):
        if source not in loaded:
            task, lang = source.split("/")
            data = dataset.load(task, lang)
            by_text: dict[str, set[str]] = {}
            for cid, text in data.corpus.items():
                by_text.setdefault(text, set()).add(cid)
            loaded[source] = (data, {t: frozenset(ids) for t, ids in by_text.items()}, EXCLUDE_QUERY_CONCEPT[task])
        data, by_text, exclude_own = loaded[source]
        qid = pairs.query_ids[i]
        texts = [pairs.positives[i], *(negatives[i] if negatives else ())]
        rows.append(RowConcepts(
            grades=data.qrels["train"][qid],
            masked=frozenset({data.query_concept[qid]}) if exclude_own else frozenset(),
            columns=tuple(by_text[t] for t in texts),
        ))
    return rows
