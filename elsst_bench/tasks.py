"""ELSST-Bench v1 tasks: concept-level splits, graded qrels, and the BEIR-layout prepared dataset.

Tasks (the pool is every live concept; a document is a concept's preferred label in the pool language):

=============  =====================================  ===============================================
task           query                                  relevant (grade)
=============  =====================================  ===============================================
broader        preferred label of a concept with a    direct broader 3, 2 hops up 2, further 1;
               broader concept                        the query's own concept is never a candidate
synonym        an alternative label (entry term)      its concept 3, its direct broader/narrower 1
crosslingual   preferred label in language X          same concept 3, direct broader/narrower 1
               (pool: the pivot language, default en)
definition     a definition text                      its concept 3
=============  =====================================  ===============================================

Splits are by concept: ``h = int(sha256(f"{seed}:{uuid}")[:16], 16) % 100``; train if h < 70, dev if
h < 80, test otherwise. A query belongs to the split of the concept it was made from, so a concept keeps
its split across tasks, languages and releases; training pairs (train qrels) come only from train
concepts. Texts are lower-cased by default (ELSST labels and definitions are upper case in the source).

Every file is written deterministically (sorted rows, sorted JSON keys), so the same release and seed
give byte-identical files; the dataset fingerprint is a sha256 over every file's path and sha256 (the
manifest excluded), independent of the RDF serialisation the release was read from.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, atomic
from .errors import DataError
from .jsontypes import read_json
from .metric_names import PRIMARY_METRIC
from .thesaurus import Thesaurus

TASKS = ("broader", "synonym", "crosslingual", "definition")
SPLITS = ("train", "dev", "test")
SPLIT_BOUNDS = {"train": 70, "dev": 80, "test": 100}
#: Tasks whose query is made from a concept that is itself in the pool and must not be retrieved.
EXCLUDE_QUERY_CONCEPT = {"broader": True, "synonym": False, "crosslingual": False, "definition": False}
QRELS_HEADER = "query-id\tcorpus-id\tscore\n"


def split_of(concept_id: str, seed: int = 0) -> str:
    """The split of a concept: a stable hash of its version-independent id (see module docstring)."""
    h = int(hashlib.sha256(f"{seed}:{concept_id}".encode()).hexdigest()[:16], 16) % 100
    for name in SPLITS:
        if h < SPLIT_BOUNDS[name]:
            return name
    raise AssertionError("unreachable")


@dataclass
class TaskData:
    """One task in one language: corpus, queries (with the concept each came from) and graded qrels."""

    task: str
    language: str
    pool_language: str
    corpus: dict[str, str] = field(default_factory=dict)  # concept id -> document text
    queries: dict[str, str] = field(default_factory=dict)  # query id -> text
    query_concept: dict[str, str] = field(default_factory=dict)  # query id -> concept id
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=lambda: {s: {} for s in SPLITS})

    def query_counts(self) -> dict[str, int]:
        return {split: len(self.qrels[split]) for split in SPLITS}


class TaskBuilder:
    """Builds :class:`TaskData` from a thesaurus. One method per task; texts normalised once."""

    def __init__(self, thesaurus: Thesaurus, seed: int = 0, lowercase: bool = True, pivot: str = "en",
                 documents: str = "label"):
        if documents not in ("label", "label+definition"):
            raise DataError(f"unknown document format {documents!r}; known: label, label+definition")
        self.th = thesaurus
        self.seed = seed
        self.lowercase = lowercase
        self.pivot = pivot
        self.documents = documents
        self.split = {cid: split_of(cid, seed) for cid in thesaurus.live_ids}

        self._corpora: dict[tuple[str, bool], dict[str, str]] = {}
        self._labels: dict[str, dict[str, str]] = {}
        # Relevance that does not depend on the language, computed once per concept.
        self._up = {cid: {a: 3 if d == 1 else 2 if d == 2 else 1 for a, d in thesaurus.ancestors(cid).items()}
                    for cid in thesaurus.live_ids}
        self._near = {cid: {n: 1 for n in (*thesaurus.parents(cid), *thesaurus.children(cid))}
                      for cid in thesaurus.live_ids}

    def norm(self, text: str) -> str:
        text = " ".join(text.split())
        return text.lower() if self.lowercase else text

    def labels(self, lang: str) -> dict[str, str]:
        """Normalised preferred labels of live concepts in ``lang`` (cached)."""
        if lang not in self._labels:
            self._labels[lang] = {
                cid: self.norm(self.th[cid].labels[lang]) for cid in self.th.live_ids if lang in self.th[cid].labels
            }
        return self._labels[lang]

    def corpus(self, lang: str, with_definitions: bool | None = None) -> dict[str, str]:
        """The pool in ``lang``: live concepts with a preferred label in it (cached per language)."""
        with_definitions = self.documents == "label+definition" if with_definitions is None else with_definitions
        key = (lang, with_definitions)
        if key not in self._corpora:
            self._corpora[key] = self._build_corpus(lang, with_definitions)
        return self._corpora[key]

    def _build_corpus(self, lang: str, with_definitions: bool) -> dict[str, str]:
        labels = self.labels(lang)
        if not with_definitions:
            return labels
        definitions = {cid: self.th[cid].definitions.get(lang) for cid in labels}
        return {cid: f"{text}: {self.norm(d)}" if d else text for cid, text in labels.items() for d in [definitions[cid]]}

    def _add(self, data: TaskData, qid: str, text: str, cid: str, rel: dict[str, int]) -> None:
        rel = {doc: grade for doc, grade in rel.items() if doc in data.corpus}
        if EXCLUDE_QUERY_CONCEPT[data.task]:
            rel.pop(cid, None)
        if not rel or not text:
            return
        data.queries[qid] = text
        data.query_concept[qid] = cid
        data.qrels[self.split[cid]][qid] = dict(sorted(rel.items()))

    def broader(self, lang: str) -> TaskData:
        data = TaskData("broader", lang, lang, corpus=self.corpus(lang))
        for cid, label in self.labels(lang).items():
            self._add(data, cid, label, cid, self._up[cid])
        return data

    def synonym(self, lang: str) -> TaskData:
        data = TaskData("synonym", lang, lang, corpus=self.corpus(lang))
        for cid in self.th.live_ids:
            concept = self.th[cid]
            alt = concept.alt.get(lang)
            if not alt:
                continue
            texts = sorted({self.norm(a) for a in alt} - {self.labels(lang).get(cid, ""), ""})
            rel = {**self._near[cid], cid: 3}
            for k, text in enumerate(texts):
                self._add(data, f"{cid}#{k}", text, cid, rel)
        return data

    def crosslingual(self, lang: str) -> TaskData | None:
        if lang == self.pivot:
            return None
        data = TaskData("crosslingual", lang, self.pivot, corpus=self.corpus(self.pivot))
        for cid, label in self.labels(lang).items():
            self._add(data, cid, label, cid, {**self._near[cid], cid: 3})
        return data

    def definition(self, lang: str) -> TaskData:
        # Documents are labels only here, whatever --documents says: a definition query must not be
        # matched against its own text.
        data = TaskData("definition", lang, lang, corpus=self.corpus(lang, with_definitions=False))
        for cid in self.th.live_ids:
            text = self.th[cid].definitions.get(lang)
            if text:
                self._add(data, cid, self.norm(text), cid, {cid: 3})
        return data

    def build(self, task: str, lang: str) -> TaskData | None:
        return getattr(self, task)(lang)


# ----- writing --------------------------------------------------------------------------------------
def _qrels_text(qrels: dict[str, dict[str, int]]) -> str:
    rows = [f"{qid}\t{doc}\t{grade}\n" for qid in sorted(qrels) for doc, grade in sorted(qrels[qid].items())]
    return QRELS_HEADER + "".join(rows)


def task_files(data: TaskData, corpus_cache: dict | None = None) -> dict[str, bytes]:
    """Relative path -> file content for one task/language, BEIR layout.

    ``corpus_cache`` (keyed by the corpus object's id) reuses the serialised pool, which the crosslingual
    task shares across languages.
    """
    base = f"{data.task}/{data.language}"
    cache = corpus_cache if corpus_cache is not None else {}
    key = id(data.corpus)
    if key not in cache:
        cache[key] = atomic.jsonl_bytes({"_id": cid, "text": text} for cid, text in sorted(data.corpus.items()))
    files = {
        f"{base}/corpus.jsonl": cache[key],
        f"{base}/queries.jsonl": atomic.jsonl_bytes(
            {"_id": qid, "text": data.queries[qid], "concept": data.query_concept[qid]} for qid in sorted(data.queries)
        ),
    }
    for split in SPLITS:
        files[f"{base}/qrels/{split}.tsv"] = _qrels_text(data.qrels[split]).encode("utf-8")
    return files


def fingerprint(files: dict[str, bytes]) -> str:
    """sha256 over ``path\\0sha256(content)\\n`` for every file, sorted by path (manifest excluded)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path}\0{hashlib.sha256(files[path]).hexdigest()}\n".encode())
    return digest.hexdigest()


#: The options of the benchmark's own preparation (``prepare``'s defaults). With every language and task of
#: the published release they give the dataset ``elsst-r<release>``; any other selection is another dataset.
BENCHMARK_OPTIONS = {"seed": 0, "pivot": "en", "lowercase": True, "documents": "label"}


def dataset_id_for(thesaurus: Thesaurus, source, *, languages: list[str], tasks: list[str], seed: int, pivot: str,
                   lowercase: bool, documents: str) -> str:
    """The id (default directory name) of a prepared dataset; different data never share one.

    - ``elsst-r<N>``: the published file of ELSST release N (:data:`elsst_bench.skos.PUBLISHED_RELEASES`), every
      language and task, :data:`BENCHMARK_OPTIONS`;
    - ``elsst-r<N>-<sha256[:12]>``: another file that claims release N; ``skos-<sha256[:12]>``: any other SKOS;
    - either followed by ``-<8 hex>`` (a hash of the selection) for a subset of languages or tasks or other options.
    """
    from . import skos

    release = skos.claimed_release(thesaurus)
    if skos.is_published_release(release, source):
        base = f"elsst-r{release}"
    else:
        base = f"{f'elsst-r{release}' if release else 'skos'}-{source.sha256[:12]}"
    options = {"seed": seed, "pivot": pivot, "lowercase": lowercase, "documents": documents}
    selection = {"languages": sorted(languages), "tasks": [t for t in TASKS if t in tasks], **options}
    if selection == {"languages": thesaurus.languages, "tasks": list(TASKS), **BENCHMARK_OPTIONS}:
        return base
    return f"{base}-{hashlib.sha256(json.dumps(selection, sort_keys=True).encode()).hexdigest()[:8]}"


def build_dataset(thesaurus: Thesaurus, languages: list[str], tasks: list[str], seed: int = 0,
                  pivot: str = "en", lowercase: bool = True, documents: str = "label"):
    """All files of a prepared dataset except the manifest, plus query counts and the task list.

    Returns ``(files: {relpath: bytes}, queries: {task: {lang: {split: n}}})``.
    """
    builder = TaskBuilder(thesaurus, seed=seed, lowercase=lowercase, pivot=pivot, documents=documents)
    concept_rows = atomic.jsonl_bytes(
        thesaurus[cid].to_json(
            depth=thesaurus.depth(cid) if not thesaurus[cid].deprecated else None,
            split=builder.split.get(cid),
        )
        for cid in thesaurus.concepts
    )
    files: dict[str, bytes] = {"concepts.jsonl": concept_rows}
    counts: dict[str, dict[str, dict[str, int]]] = {}
    corpus_cache: dict = {}
    for task in tasks:
        for lang in languages:
            data = builder.build(task, lang)
            if data is None or not data.queries:
                continue
            files.update(task_files(data, corpus_cache))
            counts.setdefault(task, {})[lang] = data.query_counts()
    return files, counts


def write_dataset(out_dir: Path, files: dict[str, bytes], manifest: dict) -> None:
    """Write all files into a temporary directory and swap it into ``out_dir`` (atomic as a whole)."""
    from .outputs import DATASET

    with atomic.directory(out_dir, DATASET) as tmp:
        for rel, content in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        (tmp / "manifest.json").write_text(atomic.dumps_json(manifest), encoding="utf-8")


# ----- reading (used by evaluation and training) ------------------------------------------------------
@dataclass
class PreparedDataset:
    """A prepared dataset directory: its manifest and per-task loaders."""

    path: Path
    manifest: dict

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def dataset_id(self) -> str:
        return self.manifest["dataset_id"]

    def languages(self, task: str) -> list[str]:
        return sorted(self.manifest["queries"].get(task, {}))

    def tasks(self) -> list[str]:
        return [t for t in TASKS if t in self.manifest["queries"]]

    def thesaurus(self) -> Thesaurus:
        return Thesaurus.from_concepts_jsonl(self.path / "concepts.jsonl")

    def load(self, task: str, lang: str) -> TaskData:
        """Read one task/language back into a :class:`TaskData`."""
        if task not in self.manifest["queries"]:
            raise DataError(f"task {task!r} is not in {self.path}; prepared tasks: {', '.join(self.tasks())}")
        if lang not in self.manifest["queries"][task]:
            raise DataError(
                f"language {lang!r} is not prepared for task {task!r}; available: {', '.join(self.languages(task))}"
            )
        base = self.path / task / lang
        pool = self.manifest.get("pivot", "en") if task == "crosslingual" else lang
        data = TaskData(task, lang, pool)
        data.corpus = {row["_id"]: row["text"] for row in atomic.read_jsonl(base / "corpus.jsonl")}
        for row in atomic.read_jsonl(base / "queries.jsonl"):
            data.queries[row["_id"]] = row["text"]
            data.query_concept[row["_id"]] = row.get("concept", row["_id"])
        for split in SPLITS:
            qrels: dict[str, dict[str, int]] = {}
            with open(base / "qrels" / f"{split}.tsv", encoding="utf-8") as handle:
                next(handle, None)
                for line in handle:
                    qid, doc, grade = line.rstrip("\n").split("\t")
                    qrels.setdefault(qid, {})[doc] = int(grade)
            data.qrels[split] = qrels
        return data


def open_prepared(path: str | os.PathLike) -> PreparedDataset:
    """Open a prepared dataset, with a one-line error that says how to make one when it is missing."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise DataError(f"no prepared dataset at {path}; run `elsst-bench prepare` first")
    manifest = read_json(manifest_path, hint="re-run `elsst-bench prepare`")
    return PreparedDataset(path, manifest)


def manifest_for(thesaurus: Thesaurus, stats, source, files: dict[str, bytes], counts: dict, *, dataset_id: str,
                 languages: list[str], tasks: list[str], seed: int, pivot: str, lowercase: bool, documents: str) -> dict:
    from .skos import source_warnings

    return {
        "dataset_id": dataset_id,
        "release": thesaurus.scheme.get("version"),
        "scheme": thesaurus.scheme.get("uri"),
        "source": {"name": source.name, "sha256": source.sha256, "format": source.format_name},
        "fingerprint": fingerprint(files),
        "elsst_bench_version": __version__,
        "seed": seed,
        "pivot": pivot,
        "lowercase": lowercase,
        "documents": documents,
        "languages": languages,
        "tasks": [t for t in tasks if t in counts],
        "splits": {"train": 70, "dev": 10, "test": 20},
        "exclude_query_concept": {t: EXCLUDE_QUERY_CONCEPT[t] for t in tasks},
        "primary_metric": PRIMARY_METRIC,
        "counts": {
            "triples": stats.triples,
            "concepts": stats.concepts,
            "live_concepts": len(thesaurus.live_ids),
            "deprecated_concepts": stats.deprecated,
            "pref_labels_live": stats.live_pref_labels,
            "alt_labels_live": stats.live_alt_labels,
            "broader_links": thesaurus.links,
            "polyhierarchy_concepts": sum(1 for c in thesaurus.live_ids if len(thesaurus.parents(c)) > 1),
            "related_links": stats.related,
            "top_concepts": stats.top_concepts,
            "definitions": stats.definitions,
            "languages": len(thesaurus.languages),
            "cycles": thesaurus.cycles(),
            "control_characters_removed": stats.control_characters,
            "empty_labels_dropped": stats.empty_labels,
        },
        "split_concepts": _split_counts(thesaurus, seed),
        "queries": counts,
        "files": {path: hashlib.sha256(files[path]).hexdigest() for path in sorted(files)},
        "warnings": source_warnings(thesaurus, stats, source),
    }


def _split_counts(thesaurus: Thesaurus, seed: int) -> dict[str, int]:
    out = {s: 0 for s in SPLITS}
    for cid in thesaurus.live_ids:
        out[split_of(cid, seed)] += 1
    return out


def resolve_selection(requested: list[str] | None, available: list[str], what: str) -> list[str]:
    """Validate a user's language/task selection (``None`` or ``all`` = everything available)."""
    if not requested or requested == ["all"]:
        return list(available)
    unknown = [x for x in requested if x not in available]
    if unknown:
        raise DataError(f"unknown {what} {', '.join(map(repr, unknown))}; available: {', '.join(available)}")
    return [x for x in available if x in requested]


def prepare(source, out: str | os.PathLike | None = None, languages: list[str] | None = None,
            tasks: list[str] | None = None, seed: int = 0, pivot: str = "en", lowercase: bool = True,
            documents: str = "label", fmt: str | None = None, overwrite: bool = False) -> tuple[Path, dict]:
    """Parse ``source``, build the tasks and write the prepared dataset. Returns ``(directory, manifest)``.

    ``out`` is the dataset directory itself; by default ``data/prepared/<dataset_id>``. The target must be new,
    empty, or a prepared dataset (:mod:`elsst_bench.outputs`); one with another fingerprint is replaced only
    with ``overwrite``, one with the same fingerprint is rewritten as it is (preparing twice is harmless).
    """
    from . import outputs, paths, skos

    if out is not None:  # before the parse: fail fast
        outputs.check_target(out, outputs.DATASET, replace=True)
    else:
        outputs.check_writable(paths.prepared_root(), "directory of prepared datasets")
    thesaurus, stats, src = skos.load(source, fmt)
    languages = resolve_selection(languages, thesaurus.languages, "language")
    tasks = resolve_selection(tasks, list(TASKS), "task")
    if "crosslingual" in tasks and pivot not in thesaurus.languages:
        raise DataError(f"pivot language {pivot!r} has no labels; available: {', '.join(thesaurus.languages)}")
    files, counts = build_dataset(thesaurus, languages, tasks, seed=seed, pivot=pivot, lowercase=lowercase,
                                  documents=documents)
    if not counts:
        raise DataError("the selected tasks and languages produce no queries")
    dataset_id = dataset_id_for(thesaurus, src, languages=languages, tasks=tasks, seed=seed, pivot=pivot,
                                lowercase=lowercase, documents=documents)
    manifest = manifest_for(thesaurus, stats, src, files, counts, dataset_id=dataset_id, languages=languages,
                            tasks=tasks, seed=seed, pivot=pivot, lowercase=lowercase, documents=documents)
    out_dir = Path(out) if out is not None else paths.prepared_root() / dataset_id
    if outputs.check_target(out_dir, outputs.DATASET, replace=True) and not overwrite:
        previous = _manifest_fingerprint(out_dir)
        if previous != manifest["fingerprint"]:
            raise DataError(f"{out_dir} holds another prepared dataset (fingerprint {str(previous)[:16]}, this one "
                            f"{manifest['fingerprint'][:16]}); pass --overwrite to replace it, or choose --out")
    write_dataset(out_dir, files, manifest)
    return out_dir, manifest


def _manifest_fingerprint(path: Path) -> str | None:
    try:
        return json.loads((path / "manifest.json").read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
