"""Reading a local copy of a Track 1 release, every line checked: one :class:`~elsst_bench.errors.DataError`
naming the file, the line and the field otherwise (the CLI prints it as one line and exits 2)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

FILES = {"train": "train.jsonl", "val": "val.jsonl", "test": "test_input.jsonl", "pool": "concept_pool.jsonl"}
PASSAGE_FIELDS = ("id", "text", "document_type")
LABEL_FIELDS = ("positive_ids", "hard_negative_ids")
POOL_FIELDS = ("concept_id", "term", "definition")
#: A submission ranks at least this many distinct concepts per passage, so a pool must hold them.
MIN_RANKED = 10


@dataclass(frozen=True)
class Concept:
    id: str
    term: str
    definition: str

    @property
    def text(self) -> str:
        """What a concept is encoded as: its term and definition (``term: definition``), or the term alone."""
        return f"{self.term}: {self.definition}" if self.definition.strip() else self.term


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    document_type: str
    positives: tuple[str, ...] = ()
    negatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class Release:
    path: Path
    pool: dict[str, Concept]  # in file order
    train: tuple[Passage, ...]
    val: tuple[Passage, ...]
    test: tuple[Passage, ...]
    fingerprint: str  # sha256 over the four files' sha256s

    def split(self, name: str) -> tuple[Passage, ...]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def _lines(path: Path):
    if not path.is_file():
        raise DataError(f"{path} is missing: a Track 1 release holds {', '.join(FILES.values())}")
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 ({err.reason} at byte {err.start})") from None
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise DataError(f"{path.name} line {number}: not JSON ({err})") from None
        except RecursionError:
            raise DataError(f"{path.name} line {number}: nested too deeply") from None
        if not isinstance(row, dict):
            raise DataError(f"{path.name} line {number}: not a JSON object")
        yield number, row


def _keys(row: dict, required: tuple[str, ...], where: str) -> None:
    missing = [k for k in required if k not in row]
    if missing:
        raise DataError(f"{where}: no {missing[0]!r} (a line holds {', '.join(required)})")
    extra = sorted(set(row) - set(required))
    if extra:
        raise DataError(f"{where}: {extra[0]!r} is not a field of this file (it holds {', '.join(required)})")


def _text(row: dict, key: str, where: str, empty: bool = False) -> str:
    value = row[key]
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise DataError(f"{where}: {key} must be a {'string' if empty else 'non-empty string'}, got {value!r:.60}")
    return value


def _pool(path: Path) -> dict[str, Concept]:
    pool: dict[str, Concept] = {}
    for number, row in _lines(path):
        where = f"{path.name} line {number}"
        _keys(row, POOL_FIELDS, where)
        cid = _text(row, "concept_id", where)
        if cid in pool:
            raise DataError(f"{where}: concept_id {cid!r} appears twice")
        pool[cid] = Concept(cid, _text(row, "term", where), _text(row, "definition", where, empty=True))
    if len(pool) < MIN_RANKED:
        raise DataError(f"{path.name} holds {len(pool)} concepts; a submission ranks at least {MIN_RANKED}")
    return pool


def _ids(value, where: str, field: str, pool: dict, nonempty: bool) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (nonempty and not value):
        raise DataError(f"{where}: {field} must be a {'non-empty ' if nonempty else ''}list of concept ids")
    if len(set(value)) != len(value):
        raise DataError(f"{where}: {field} names a concept twice")
    unknown = [v for v in value if v not in pool]
    if unknown:
        raise DataError(f"{where}: {field} names {unknown[0]!r}, which is not in concept_pool.jsonl")
    return tuple(value)


def _passages(path: Path, pool: dict, labelled: bool) -> tuple[Passage, ...]:
    out, seen = [], set()
    for number, row in _lines(path):
        where = f"{path.name} line {number}"
        if not labelled and "retrieval_labels" in row:
            raise DataError(f"{where}: the test input holds retrieval_labels; test_input.jsonl is unlabelled")
        _keys(row, PASSAGE_FIELDS + (("retrieval_labels",) if labelled else ()), where)
        pid = _text(row, "id", where)
        if pid in seen:
            raise DataError(f"{where}: id {pid!r} appears twice")
        seen.add(pid)
        positives = negatives = ()
        if labelled:
            labels = row["retrieval_labels"]
            if not isinstance(labels, dict):
                raise DataError(f"{where}: retrieval_labels must be an object of {', '.join(LABEL_FIELDS)}")
            _keys(labels, LABEL_FIELDS, f"{where} retrieval_labels")
            positives = _ids(labels["positive_ids"], where, "positive_ids", pool, nonempty=True)
            negatives = _ids(labels["hard_negative_ids"], where, "hard_negative_ids", pool, nonempty=False)
            both = sorted(set(positives) & set(negatives))
            if both:
                raise DataError(f"{where}: {both[0]!r} is both a positive and a hard negative")
        out.append(Passage(pid, _text(row, "text", where), _text(row, "document_type", where, empty=True),
                           positives, negatives))
    if not out:
        raise DataError(f"{path} holds no passages")
    return tuple(out)


def read_release(directory: str | Path) -> Release:
    """The four files of a Track 1 release in ``directory``, every line checked (module docstring)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory holding a Track 1 release ({', '.join(FILES.values())})")
    paths = {name: directory / file for name, file in FILES.items()}
    pool = _pool(paths["pool"])
    release = Release(
        path=directory, pool=pool, train=_passages(paths["train"], pool, True), val=_passages(paths["val"], pool, True),
        test=_passages(paths["test"], pool, False),
        fingerprint=hashlib.sha256("".join(hashlib.sha256(paths[n].read_bytes()).hexdigest()
                                           for n in FILES).encode()).hexdigest(),
    )
    shared = sorted({p.id for p in release.train} & {p.id for p in release.val})
    if shared:
        raise DataError(f"passage {shared[0]!r} is in both train.jsonl and val.jsonl")
    return release
