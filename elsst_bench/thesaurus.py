"""Concepts, the broader/narrower hierarchy, and the hierarchy measures the evaluation layer reuses.

A :class:`Thesaurus` holds :class:`Concept` records keyed by their version-independent id (the ELSST UUID).
The hierarchy is the polyhierarchy formed by ``skos:broader`` and the inverse of ``skos:narrower`` among
*live* (non-deprecated) concepts. Measures, for concepts ``a``, ``b``:

- ``ancestors(a)``: every concept reachable upwards, with its shortest distance in hops (BFS, so a cycle
  in a broken source file is visited once, never looped over).
- ``depth(a)``: 1 + the shortest number of hops from ``a`` up to a root (a concept with no live broader);
  ``depth(root) = 1``. In a broken file where concepts reach only a cycle and no root, the cycle's
  members count as roots (depth 1); :meth:`Thesaurus.cycles` reports such cycles, a concept stated as its
  own broader or narrower (a self-loop, never a parent of itself) as a cycle of length 1.
- Wu–Palmer similarity over the polyhierarchy, best over common ancestors ``c`` (``a`` and ``b`` included):
  ``WuP(a, b) = max_c 2·depth(c) / (2·depth(c) + dist(a, c) + dist(b, c))``. On a tree this is the
  textbook ``2·depth(LCA) / (depth(a) + depth(b))``; with several parents it takes the best path.
  Concepts in different trees score 0; ``WuP(a, a) = 1``.
- ``lca(a, b)``: the common ancestor that attains that maximum (ties: deeper first, then smaller id).

Parsing lives in :mod:`elsst_bench.skos`; :meth:`Thesaurus.from_concepts_jsonl` reloads the
``concepts.jsonl`` of a prepared dataset.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path


@dataclass(frozen=True)
class Concept:
    """One SKOS concept. Labels keep the source's case; task builders normalise."""

    id: str
    uri: str
    labels: dict[str, str] = field(default_factory=dict)  # lang -> preferred label
    alt: dict[str, list[str]] = field(default_factory=dict)  # lang -> alternative labels (sorted)
    definitions: dict[str, str] = field(default_factory=dict)
    scope_notes: dict[str, str] = field(default_factory=dict)
    broader: tuple[str, ...] = ()  # as stated in the source (may name deprecated concepts)
    narrower: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    top: bool = False
    deprecated: bool = False

    def to_json(self, depth: int | None = None, split: str | None = None) -> dict:
        row = {
            "id": self.id,
            "uri": self.uri,
            "labels": self.labels,
            "alt": self.alt,
            "definitions": self.definitions,
            "scope_notes": self.scope_notes,
            "broader": list(self.broader),
            "narrower": list(self.narrower),
            "related": list(self.related),
            "top": self.top,
            "deprecated": self.deprecated,
        }
        if depth is not None:
            row["depth"] = depth
        if split is not None:
            row["split"] = split
        return row

    @classmethod
    def from_json(cls, row: dict) -> "Concept":
        return cls(
            id=row["id"],
            uri=row["uri"],
            labels=dict(row.get("labels", {})),
            alt={k: list(v) for k, v in row.get("alt", {}).items()},
            definitions=dict(row.get("definitions", {})),
            scope_notes=dict(row.get("scope_notes", {})),
            broader=tuple(row.get("broader", ())),
            narrower=tuple(row.get("narrower", ())),
            related=tuple(row.get("related", ())),
            top=bool(row.get("top", False)),
            deprecated=bool(row.get("deprecated", False)),
        )


class Thesaurus:
    """A set of concepts and the live polyhierarchy between them."""

    def __init__(self, concepts: dict[str, Concept], scheme: dict | None = None):
        self.concepts = dict(sorted(concepts.items()))
        self.scheme = dict(scheme or {})  # e.g. {"uri": ..., "version": "5"}
        live = {cid for cid, c in self.concepts.items() if not c.deprecated}
        parents: dict[str, set[str]] = {cid: set() for cid in live}
        self._self_loops: list[str] = []
        for cid in live:
            concept = self.concepts[cid]
            if cid in concept.broader or cid in concept.narrower:
                self._self_loops.append(cid)
            parents[cid].update(b for b in concept.broader if b in live and b != cid)
            for n in concept.narrower:
                if n in live and n != cid:
                    parents[n].add(cid)
        self._parents = {cid: tuple(sorted(p)) for cid, p in parents.items()}
        children: dict[str, list[str]] = {cid: [] for cid in live}
        for cid, ps in self._parents.items():
            for p in ps:
                children[p].append(cid)
        self._children = {cid: tuple(sorted(c)) for cid, c in children.items()}
        self._ancestor_cache: dict[str, dict[str, int]] = {}
        self._wup_cache: dict[tuple[str, str], float] = {}  # scoring asks for the same pairs run after run

    # ----- views -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.concepts)

    def __getitem__(self, cid: str) -> Concept:
        return self.concepts[cid]

    def __contains__(self, cid: object) -> bool:
        return cid in self.concepts

    @cached_property
    def live_ids(self) -> list[str]:
        """Ids of non-deprecated concepts, sorted."""
        return [cid for cid, c in self.concepts.items() if not c.deprecated]

    @cached_property
    def languages(self) -> list[str]:
        langs: set[str] = set()
        for c in self.concepts.values():
            langs.update(c.labels)
        return sorted(langs)

    def parents(self, cid: str) -> tuple[str, ...]:
        """Direct live broader concepts."""
        return self._parents.get(cid, ())

    def children(self, cid: str) -> tuple[str, ...]:
        """Direct live narrower concepts."""
        return self._children.get(cid, ())

    @cached_property
    def links(self) -> int:
        """Number of distinct live broader links (child, parent)."""
        return sum(len(p) for p in self._parents.values())

    # ----- hierarchy measures ------------------------------------------------------------------
    def ancestors(self, cid: str) -> dict[str, int]:
        """All live ancestors of ``cid`` (itself excluded) with their shortest distance in hops."""
        cached = self._ancestor_cache.get(cid)
        if cached is not None:
            return cached
        dist: dict[str, int] = {}
        queue = deque((p, 1) for p in self.parents(cid))
        while queue:
            node, d = queue.popleft()
            if node in dist or node == cid:
                continue
            dist[node] = d
            queue.extend((p, d + 1) for p in self.parents(node) if p not in dist)
        self._ancestor_cache[cid] = dist
        return dist

    def descendants(self, cid: str) -> set[str]:
        """All live descendants of ``cid`` (itself excluded): every concept below it along narrower links."""
        seen: set[str] = set()
        stack = list(self.children(cid))
        while stack:
            node = stack.pop()
            if node in seen or node == cid:
                continue
            seen.add(node)
            stack.extend(self.children(node))
        return seen

    @cached_property
    def _depths(self) -> dict[str, int]:
        depth: dict[str, int] = {}

        def spread(seeds: list[str]) -> None:
            for seed in seeds:
                depth[seed] = 1
            queue = deque(seeds)
            while queue:
                node = queue.popleft()
                for child in self._children[node]:
                    if child not in depth:
                        depth[child] = depth[node] + 1
                        queue.append(child)

        spread([cid for cid, ps in self._parents.items() if not ps])
        # Concepts with no way up to a root hang below a cycle: its members act as roots.
        # (A self-loop is no edge of the hierarchy, so its concept is no such root.)
        spread([cid for cycle in self.cycles() if len(cycle) > 1 for cid in cycle if cid not in depth])
        return depth

    def depth(self, cid: str) -> int:
        """1 + shortest number of hops to a root; ``depth(root) == 1``."""
        return self._depths[cid]

    def _best_common(self, a: str, b: str) -> tuple[float, str | None]:
        up_a = {a: 0, **self.ancestors(a)}
        up_b = {b: 0, **self.ancestors(b)}
        candidates = [
            (-2.0 * self.depth(c) / (2.0 * self.depth(c) + up_a[c] + up_b[c]), -self.depth(c), c)
            for c in up_a.keys() & up_b.keys()
        ]
        if not candidates:
            return 0.0, None
        score, _, best = min(candidates)  # best score, then deeper, then smaller id
        return -score, best

    def lca(self, a: str, b: str) -> str | None:
        """The common ancestor (``a``/``b`` included) that maximises Wu–Palmer; None if none."""
        return self._best_common(a, b)[1]

    def wu_palmer(self, a: str, b: str) -> float:
        """Wu–Palmer similarity in [0, 1] over the polyhierarchy (see module docstring)."""
        if a == b:
            return 1.0
        sim = self._wup_cache.get((a, b))
        if sim is None:
            sim = self._wup_cache[(a, b)] = self._best_common(a, b)[0]
        return sim

    def cycles(self) -> list[list[str]]:
        """Broader cycles among live concepts, sorted: strongly connected components of size > 1, and a
        self-loop as ``[cid]``."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        on_stack: set[str] = set()
        stack: list[str] = []
        found: list[list[str]] = []
        counter = 0
        for start in self._parents:
            if start in index:
                continue
            work = [(start, iter(self._parents[start]))]
            index[start] = low[start] = counter
            counter += 1
            stack.append(start)
            on_stack.add(start)
            while work:
                node, it = work[-1]
                advanced = False
                for nxt in it:
                    if nxt not in index:
                        index[nxt] = low[nxt] = counter
                        counter += 1
                        stack.append(nxt)
                        on_stack.add(nxt)
                        work.append((nxt, iter(self._parents[nxt])))
                        advanced = True
                        break
                    if nxt in on_stack:
                        low[node] = min(low[node], index[nxt])
                if advanced:
                    continue
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
        return sorted(found + [[cid] for cid in self._self_loops])

    # ----- persistence -------------------------------------------------------------------------
    @classmethod
    def from_concepts_jsonl(cls, path: str | Path) -> "Thesaurus":
        """Rebuild a thesaurus from a prepared dataset's ``concepts.jsonl``."""
        concepts: dict[str, Concept] = {}
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    concept = Concept.from_json(json.loads(line))
                    concepts[concept.id] = concept
        return cls(concepts)
