"""Which concepts of a Track 1 pool are ELSST's: a ``concept_id`` that is a prepared concept's id (its UUID), or a
URI ending in one (``https://elsst.cessda.eu/id/5/<uuid>``), or else a ``term`` equal to exactly one live concept's
English preferred label (case and surrounding space aside). What maps can be compared with the benchmark's own
tasks; what does not is counted, not guessed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .release import Release


@dataclass(frozen=True)
class Mapping:
    by: dict[str, tuple[str, str]]  # Track 1 concept id -> (ELSST concept id, "id" | "uri" | "term")
    total: int

    def counts(self) -> dict[str, int]:
        how = Counter(way for _, way in self.by.values())
        return {"id": how["id"], "uri": how["uri"], "term": how["term"], "unmapped": self.total - len(self.by)}


def map_to_elsst(release: Release, thesaurus) -> Mapping:
    live = set(thesaurus.live_ids)
    by_label: dict[str, list[str]] = {}
    for cid in live:
        label = thesaurus[cid].labels.get("en")
        if label:
            by_label.setdefault(label.strip().casefold(), []).append(cid)
    out: dict[str, tuple[str, str]] = {}
    for concept in release.pool.values():
        tail = concept.id.rstrip("/").rsplit("/", 1)[-1]
        if concept.id in live:
            out[concept.id] = (concept.id, "id")
        elif tail in live:
            out[concept.id] = (tail, "uri")
        elif len(by_label.get(concept.term.strip().casefold(), ())) == 1:
            out[concept.id] = (by_label[concept.term.strip().casefold()][0], "term")
    return Mapping(out, len(release.pool))
