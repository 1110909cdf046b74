"""A Track 1 test submission: JSON lines ``{"id", "ranked_ids"}``, checked against the published rules before a
byte is written — every test passage once, no other id, each ranking a list of at least 10 distinct concept ids of
the pool and at most 100 — and written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from .. import atomic
from ..errors import DataError
from .release import MIN_RANKED, Release

MAX_RANKED = 100


def check_submission(rows: Sequence[Mapping], release: Release, where: str = "the submission") -> None:
    """Refuse (one DataError naming the line) anything the hosted evaluator would refuse."""
    expected = [p.id for p in release.test]
    seen: set[str] = set()
    for number, row in enumerate(rows, 1):
        here = f"{where} line {number}"
        if not isinstance(row, Mapping) or set(row) != {"id", "ranked_ids"}:
            raise DataError(f"{here}: a line is an object of exactly id and ranked_ids")
        pid, ranked = row["id"], row["ranked_ids"]
        if not isinstance(pid, str) or pid not in set(expected):
            raise DataError(f"{here}: id {pid!r:.60} is not a passage of test_input.jsonl")
        if pid in seen:
            raise DataError(f"{here}: id {pid!r} appears twice")
        seen.add(pid)
        if not isinstance(ranked, list) or not all(isinstance(c, str) for c in ranked):
            raise DataError(f"{here}: ranked_ids must be a list of concept ids")
        if len(ranked) > MAX_RANKED:
            raise DataError(f"{here}: ranked_ids holds {len(ranked)} concepts; at most {MAX_RANKED} are used")
        if len(set(ranked)) != len(ranked):
            raise DataError(f"{here}: ranked_ids names a concept twice")
        unknown = [c for c in ranked if c not in release.pool]
        if unknown:
            raise DataError(f"{here}: ranked_ids names {unknown[0]!r:.60}, which is not in concept_pool.jsonl")
        if len(ranked) < MIN_RANKED:
            raise DataError(f"{here}: ranked_ids holds {len(ranked)} concepts; at least {MIN_RANKED} are required")
    missing = [p for p in expected if p not in seen]
    if missing:
        raise DataError(f"{where} has no ranking for {len(missing)} test passages, first {missing[0]!r}")


def write_submission(path: str | Path, ranked: Mapping[str, Sequence[str]], release: Release) -> Path:
    """Write ``{passage id: [concept ids]}`` for every test passage, in test_input.jsonl's order, after
    :func:`check_submission`; atomically (a reader sees no file or the whole one)."""
    rows = [{"id": p.id, "ranked_ids": list(ranked.get(p.id, ()))[:MAX_RANKED]} for p in release.test]
    check_submission(rows, release)
    path = Path(path)
    atomic.write_bytes(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8"))
    return path


def read_submission(path: str | Path, release: Release) -> list[dict]:
    """A submission file's lines, checked (:func:`check_submission`)."""
    path = Path(path)
    rows = []
    try:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                rows.append(json.loads(line))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{path} is not a readable JSON-lines submission ({err})") from None
    check_submission(rows, release, where=str(path))
    return rows
