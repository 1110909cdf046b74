"""The concept suggester: one object that ``elsst-bench search`` and ``elsst-bench serve`` both call.

It holds an encoder (a base model, or a base with a run's adapter merged into its weights), one FAISS index per
served language over that language's label pool, and every live concept's URI, labels and broader path, the way
an Annif project holds a backend and a vocabulary. Building it encodes each pool once per model (the vectors come
from, and go to, the embedding cache of :mod:`elsst_bench.evaluation.encode`); a suggestion then encodes only the
document's text and searches the index.

For a document ``d`` (normalised like the pool: lower-cased, whitespace collapsed) and a concept ``c`` with pool
text ``t_c`` in the project's language::

    cos(d, c) = <e_query(d), e_document(t_c)>          (both L2-normalised)
    score(d, c) = (1 + cos(d, c)) / 2                   in [0, 1], strictly increasing in the cosine

Concepts are ranked by the benchmark's tie rule (score descending, then pool row, i.e. concept id); a suggestion
list keeps the ``limit`` best with ``score >= threshold``, as Annif filters. Scores are rounded to 6 decimals so
that the same text gives the same answer however requests are interleaved.

The broader path of a concept runs from a top concept down to its parent, following at each step the parent
closest to a root (smallest depth, then smallest id), e.g. ``social structure > social groups``. Every text of a
suggestion is printable: a control character that a dataset still holds is shown escaped, ``\\x1b``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .. import atomic
from ..errors import DataError
from ..tasks import PreparedDataset, resolve_selection
from .thread import on_encoder_thread

#: ELSST's languages and their English names (the page's language menu and the projects' names).
LANGUAGE_NAMES = {
    "cs": "Czech", "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "fi": "Finnish",
    "fr": "French", "hu": "Hungarian", "is": "Icelandic", "lt": "Lithuanian", "nl": "Dutch", "no": "Norwegian",
    "ro": "Romanian", "sl": "Slovenian", "sv": "Swedish",
}
#: A project is ``elsst-<language>``, as Annif names one project per vocabulary and language (``yso-en``).
PROJECT_PREFIX = "elsst-"
#: Annif's default ``limit`` and ``threshold``, and the largest ``limit`` this service answers.
DEFAULT_LIMIT = 10
DEFAULT_THRESHOLD = 0.0
MAX_LIMIT = 1000
#: Annif's suggest-batch takes at most 32 documents.
MAX_BATCH = 32
PIVOT = "en"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with each control character (C0, DEL, C1) escaped as ``\\xNN``: safe to print on a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def normaliser(ds: PreparedDataset):
    """The dataset's text normalisation (whitespace collapsed; lower-cased unless prepared with ``--keep-case``)."""
    lower = ds.manifest.get("lowercase", True)
    return lambda text: (" ".join(text.split()).lower() if lower else " ".join(text.split()))


def search_languages(ds: PreparedDataset) -> list[str]:
    """The languages a dataset has a label pool for."""
    langs = set(ds.manifest.get("languages", []))
    for task in ds.tasks():
        langs.update(ds.languages(task) if task != "crosslingual" else [ds.manifest.get("pivot", PIVOT)])
    return sorted(langs)


def pool(ds: PreparedDataset, lang: str, thesaurus=None) -> dict[str, str]:
    """``{concept_id: text}`` of the language's pool: the prepared corpus (the texts the benchmark ranks, hence the
    same embedding-cache entries); a language without a prepared corpus falls back to the preferred labels."""
    lang = resolve_selection([lang], search_languages(ds), "language")[0]
    for task in ("broader", "synonym", "definition"):
        path = ds.path / task / lang / "corpus.jsonl"
        if task in ds.tasks() and lang in ds.languages(task) and path.exists():
            return {row["_id"]: row["text"] for row in atomic.read_jsonl(path)}
    if "crosslingual" in ds.tasks() and lang == ds.manifest.get("pivot", PIVOT):
        other = ds.languages("crosslingual")[0]
        return {row["_id"]: row["text"] for row in atomic.read_jsonl(ds.path / "crosslingual" / other / "corpus.jsonl")}
    thesaurus = thesaurus or ds.thesaurus()
    norm = normaliser(ds)
    return {cid: norm(thesaurus[cid].labels[lang]) for cid in thesaurus.live_ids if lang in thesaurus[cid].labels}


def broader_chain(thesaurus, cid: str) -> list[str]:
    """Concept ids from a top concept down to ``cid``'s parent (empty for a top concept)."""
    path, seen, node = [], {cid}, cid
    while True:
        parents = [p for p in thesaurus.parents(node) if p not in seen]
        if not parents:
            break
        node = min(parents, key=lambda p: (thesaurus.depth(p), p))
        seen.add(node)
        path.append(node)
    return path[::-1]


def concept_label(thesaurus, cid: str, lang: str, norm=lambda s: s) -> str:
    """The concept's preferred label in ``lang`` (else English, else any), normalised and printable."""
    labels = thesaurus[cid].labels
    text = labels.get(lang) or labels.get(PIVOT) or next(iter(labels.values()), cid)
    return printable(norm(text))


def broader_path(thesaurus, cid: str, lang: str, norm=lambda s: s) -> list[str]:
    """Labels from a top concept down to ``cid``'s parent (empty for a top concept)."""
    return [concept_label(thesaurus, p, lang, norm) for p in broader_chain(thesaurus, cid)]


def check_limit(limit, name: str = "limit") -> int:
    """``limit`` if it is an integer from 1 to :data:`MAX_LIMIT`, else a one-line :class:`DataError`."""
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 1 <= limit <= MAX_LIMIT:
        raise DataError(f"{name} must be an integer from 1 to {MAX_LIMIT}, not {limit!r}")
    return limit


def score_of(cosine: np.ndarray) -> np.ndarray:
    """``(1 + cos) / 2``, clipped to [0, 1] and rounded to 6 decimals (see the module docstring)."""
    return np.round(np.clip((1.0 + cosine.astype(np.float64)) / 2.0, 0.0, 1.0), 6)


@dataclass
class LanguagePool:
    """One language's pool: concept ids in row order, their L2-normalised vectors and the FAISS index."""

    lang: str
    ids: list[str]
    vectors: np.ndarray
    index: object


@dataclass
class ModelInfo:
    """What a project reports about the model behind it (Annif's ``is_trained``, ``modification_time``)."""

    name: str  # the base model's name
    adapter: str = "none"
    run: str | None = None
    backend: str = "torch"
    trained: bool = False
    modified: str | None = None  # ISO 8601 UTC, when the run (or the model) was written
    extra: dict = field(default_factory=dict)

    @property
    def description(self) -> str:
        what = self.name if self.adapter == "none" else f"{self.name} + {self.adapter}"
        return what + (f" ({self.run})" if self.run else "") + (f", {self.backend}" if self.backend != "torch" else "")


class ConceptSuggester:
    """An encoder, one indexed pool per served language and the thesaurus: ``suggest(texts, lang)``.

    ``model`` is anything with ``encode_query``/``encode_document`` (or ``encode``) as sentence-transformers has;
    ``identity`` and ``cache_extra`` address its embedding cache (:func:`~elsst_bench.evaluation.encode.
    model_cache_key`); ``cache_dir=None`` encodes every pool afresh.
    """

    def __init__(self, model, dataset: PreparedDataset, languages: list[str] | None = None, *,
                 identity: dict | None = None, cache_dir: str | None = None, cache_extra: str | None = None,
                 info: ModelInfo | None = None, batch_size: int = 128, show_progress: bool = False):
        from ..evaluation.encode import EmbeddingCache, EmbeddingTable, model_cache_key
        from ..evaluation.index import build_index

        self.model, self.dataset, self.batch_size = model, dataset, batch_size
        self.info = info or ModelInfo(name=str((identity or {}).get("name", "model")))
        available = search_languages(dataset)
        self.languages = resolve_selection(languages, available, "language") if languages else available
        self.thesaurus = dataset.thesaurus()
        self.normalise = normaliser(dataset)
        docs = {lang: pool(dataset, lang, self.thesaurus) for lang in self.languages}
        table = EmbeddingTable(model)
        rows = {}
        for lang in self.languages:
            ids = sorted(docs[lang])
            rows[lang] = (ids, table.add([docs[lang][c] for c in ids], "document"))
        key = model_cache_key(identity, cache_extra)
        cache = EmbeddingCache(cache_dir, key, dataset.fingerprint) if cache_dir and key else None
        self.encoding = on_encoder_thread(table.encode, batch_size=batch_size, cache=cache, show_progress=show_progress,
                                          desc=f"encoding the label pools of {len(self.languages)} language(s)")
        self.pools: dict[str, LanguagePool] = {}
        for lang, (ids, lang_rows) in rows.items():
            vectors = np.ascontiguousarray(table.vectors[lang_rows])
            self.pools[lang] = LanguagePool(lang, ids, vectors, build_index(vectors, "flat"))
        # Language-independent facts of each concept, computed once: its URI and broader chain.
        self._uri = {cid: printable(self.thesaurus[cid].uri) for cid in self.thesaurus.live_ids}
        self._chain = {cid: broader_chain(self.thesaurus, cid) for cid in self.thesaurus.live_ids}
        self._labels: dict[str, dict[str, str]] = {}

    # ----- what a project is --------------------------------------------------------------------------------
    @property
    def label_languages(self) -> list[str]:
        """Languages a label can be asked in (every language of the thesaurus)."""
        return self.thesaurus.languages

    def project_id(self, lang: str) -> str:
        return PROJECT_PREFIX + lang

    def project_language(self, project_id: str) -> str | None:
        """The served language of ``project_id``, or None for a project this service does not have."""
        if project_id.startswith(PROJECT_PREFIX) and project_id[len(PROJECT_PREFIX):] in self.pools:
            return project_id[len(PROJECT_PREFIX):]
        return None

    def project(self, lang: str) -> dict:
        """The project as Annif's ``GET /v1/projects/{id}`` reports it."""
        name = LANGUAGE_NAMES.get(lang, lang)
        return {
            "project_id": self.project_id(lang),
            "name": f"ELSST {name} ({self.info.description})",
            "language": lang,
            "backend": {"backend_id": "elsst-bench"},
            "vocab": {"vocab_id": "elsst", "languages": self.label_languages, "size": len(self._uri), "loaded": True},
            "vocab_language": lang,
            "is_trained": True,  # a served project always has its model and index ready
            "modification_time": self.info.modified,
        }

    def projects(self) -> list[dict]:
        return [self.project(lang) for lang in self.languages]

    # ----- suggesting ---------------------------------------------------------------------------------------
    def label(self, cid: str, lang: str) -> str:
        labels = self._labels.setdefault(lang, {})
        if cid not in labels:
            labels[cid] = concept_label(self.thesaurus, cid, lang, self.normalise)
        return labels[cid]

    def check(self, lang: str, limit: int = DEFAULT_LIMIT, threshold: float = DEFAULT_THRESHOLD,
              label_language: str | None = None) -> None:
        """Refuse (:class:`DataError`, one line) a language that is not served, a limit outside 1..MAX_LIMIT, a
        threshold outside [0, 1] (NaN included) and a label language the thesaurus does not have."""
        if lang not in self.pools:
            raise DataError(f"language {lang!r} is not served; served: {', '.join(self.languages)}")
        check_limit(limit)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise DataError(f"threshold must be a number from 0 to 1, not {threshold!r}")
        if label_language is not None and label_language not in self.label_languages:
            raise DataError(f'language "{label_language}" not supported by vocabulary')

    def encode(self, texts: list[str]) -> np.ndarray:
        """Query embeddings (m, d) of normalised ``texts``, encoded on the encoder thread (:mod:`.thread`)."""
        from ..evaluation.encode import encode_role

        return on_encoder_thread(encode_role, self.model, [self.normalise(t) for t in texts], "query", self.batch_size)

    def _rank(self, texts: list[str], pool_: LanguagePool, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``limit`` ``(rows, cosines)`` of each text in the pool (on the encoder thread: FAISS and torch both
        run OpenMP teams, which must not multiply)."""
        from ..evaluation.rankings import rank

        return rank(pool_.index, self.encode(texts), k=limit, pool=pool_.vectors)

    def suggest(self, texts: list[str], lang: str, limit: int = DEFAULT_LIMIT, threshold: float = DEFAULT_THRESHOLD,
                label_language: str | None = None) -> list[list[dict]]:
        """For each text, up to ``limit`` concepts with ``score >= threshold``, best first: Annif's fields
        (``uri``, ``label``, ``notation``, ``score``) and elsst-bench's (``concept_id``, ``rank``, ``cosine``,
        ``label_en``, ``broader``: ``[{"uri", "label"}]`` from the top concept down)."""
        self.check(lang, limit, threshold, label_language)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise DataError("text is empty")
        rows, cosines = on_encoder_thread(self._rank, texts, self.pools[lang], limit)
        pool_ = self.pools[lang]
        shown = label_language or lang
        out = []
        for row_ids, row_cos in zip(rows.tolist(), cosines):
            hits = []
            for position, (row, cos, score) in enumerate(zip(row_ids, row_cos.tolist(), score_of(row_cos).tolist()),
                                                        start=1):
                if score < threshold:
                    break  # ranked by score: every later one is lower
                cid = pool_.ids[row]
                hits.append({
                    "uri": self._uri[cid], "label": self.label(cid, shown), "notation": None, "score": score,
                    "concept_id": cid, "rank": position, "cosine": round(cos, 6), "label_en": self.label(cid, PIVOT),
                    "broader": [{"uri": self._uri[p], "label": self.label(p, shown)} for p in self._chain[cid]],
                })
            out.append(hits)
        return out

    def suggest_one(self, text: str, lang: str, **options) -> list[dict]:
        return self.suggest([text], lang, **options)[0]


__all__ = ["ConceptSuggester", "DEFAULT_LIMIT", "DEFAULT_THRESHOLD", "LANGUAGE_NAMES", "LanguagePool",
           "MAX_BATCH", "MAX_LIMIT", "ModelInfo", "PROJECT_PREFIX", "broader_chain", "broader_path", "normaliser",
           "pool", "printable", "score_of", "search_languages"]
