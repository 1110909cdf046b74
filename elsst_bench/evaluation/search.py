"""Free-text concept suggestion: the practical use of a trained encoder.

Given a phrase from a catalogue record, return the nearest ELSST concepts of a language's pool (cosine
similarity, tie rule of :mod:`.rankings`) with their label, URI and broader path. The pool is the prepared
corpus of that language (the same texts the benchmark ranks, hence the same embedding-cache entries); a
language without a prepared pool falls back to the thesaurus' preferred labels, normalised like the corpus.

The broader path runs from a top concept down to the concept's parent, following at each step the parent
closest to a root (smallest depth, then smallest id), e.g. ``social structure > social groups``.

Every text of a hit (label, URI, path) is printable: a control character that a dataset still holds (one
prepared before ingestion removed them, or edited by hand) is shown escaped, ``\\x1b``, never sent raw to
a terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .. import atomic
from ..errors import DataError
from ..tasks import PreparedDataset, resolve_selection
from .encode import EmbeddingCache, EmbeddingTable, model_cache_key
from .index import build_index
from .rankings import rank


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with each control character (C0, DEL, C1) escaped as ``\\xNN``: safe to print on a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def _norm(ds: PreparedDataset):
    lower = ds.manifest.get("lowercase", True)
    return lambda text: (" ".join(text.split()).lower() if lower else " ".join(text.split()))


def search_languages(ds: PreparedDataset) -> list[str]:
    langs = set(ds.manifest.get("languages", []))
    for task in ds.tasks():
        langs.update(ds.languages(task) if task != "crosslingual" else [ds.manifest.get("pivot", "en")])
    return sorted(langs)


def pool(ds: PreparedDataset, lang: str, thesaurus=None) -> dict[str, str]:
    """``{concept_id: text}`` of the language's pool."""
    lang = resolve_selection([lang], search_languages(ds), "language")[0]
    for task in ("broader", "synonym", "definition"):
        path = ds.path / task / lang / "corpus.jsonl"
        if task in ds.tasks() and lang in ds.languages(task) and path.exists():
            return {row["_id"]: row["text"] for row in atomic.read_jsonl(path)}
    if "crosslingual" in ds.tasks() and lang == ds.manifest.get("pivot", "en"):
        other = ds.languages("crosslingual")[0]
        return {row["_id"]: row["text"] for row in atomic.read_jsonl(ds.path / "crosslingual" / other / "corpus.jsonl")}
    thesaurus = thesaurus or ds.thesaurus()
    norm = _norm(ds)
    return {cid: norm(thesaurus[cid].labels[lang]) for cid in thesaurus.live_ids if lang in thesaurus[cid].labels}


def label(thesaurus, cid: str, lang: str, norm) -> str:
    labels = thesaurus[cid].labels
    text = labels.get(lang) or labels.get("en") or next(iter(labels.values()), cid)
    return printable(norm(text))


def broader_path(thesaurus, cid: str, lang: str, norm=lambda s: s) -> list[str]:
    """Labels from a top concept down to ``cid``'s parent (empty for a top concept)."""
    path, seen, node = [], {cid}, cid
    while True:
        parents = [p for p in thesaurus.parents(node) if p not in seen]
        if not parents:
            break
        node = min(parents, key=lambda p: (thesaurus.depth(p), p))
        seen.add(node)
        path.append(label(thesaurus, node, lang, norm))
    return path[::-1]


@dataclass
class ConceptSearch:
    """An encoder plus one language's pool, indexed once; call it with phrases."""

    model: object
    dataset: PreparedDataset
    lang: str = "en"
    identity: dict | None = None
    cache_dir: str | None = None
    cache_extra: str | None = None
    batch_size: int = 128
    show_progress: bool = False
    index_kind: str = "flat"

    def __post_init__(self):
        self.thesaurus = self.dataset.thesaurus()
        docs = pool(self.dataset, self.lang, self.thesaurus)
        self.ids = sorted(docs)
        table = EmbeddingTable(self.model)
        rows = table.add([docs[c] for c in self.ids], "document")
        key = model_cache_key(self.identity, self.cache_extra)
        cache = EmbeddingCache(self.cache_dir, key, self.dataset.fingerprint) if self.cache_dir and key else None
        self.encoding = table.encode(batch_size=self.batch_size, cache=cache, show_progress=self.show_progress,
                                     desc=f"encoding {self.lang} pool")
        self.vectors = table.vectors[rows]
        self.index = build_index(self.vectors, self.index_kind)
        self._norm = _norm(self.dataset)

    def __call__(self, text: str, k: int = 10) -> list[dict]:
        if not text.strip():
            raise DataError("the search text is empty")
        if k < 1:
            raise DataError("-k must be at least 1")
        table = EmbeddingTable(self.model)
        table.add([self._norm(text)], "query")
        table.encode(batch_size=1)
        rows, scores = rank(self.index, table.vectors, k=k, pool=self.vectors)
        out = []
        for position, (row, score) in enumerate(zip(rows[0].tolist(), scores[0].tolist()), start=1):
            cid = self.ids[row]
            path = broader_path(self.thesaurus, cid, self.lang, self._norm)
            out.append({"rank": position, "score": float(np.round(score, 6)), "id": cid,
                        "label": label(self.thesaurus, cid, self.lang, self._norm),
                        "uri": printable(self.thesaurus[cid].uri), "broader_path": path, "path": " > ".join(path)})
        return out


def search_concepts(model, dataset: PreparedDataset, text: str, lang: str = "en", k: int = 10, **options) -> list[dict]:
    """One-shot helper: ``ConceptSearch(model, dataset, lang, **options)(text, k)``."""
    return ConceptSearch(model, dataset, lang, **options)(text, k)
