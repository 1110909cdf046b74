"""Slugs: the one rule that turns a model or adapter name into a piece of a file name or run name.

``slug("sentence-transformers/all-MiniLM-L6-v2") == "all-minilm-l6-v2"``: the last path segment, lower-cased,
every run of characters other than ``a-z0-9`` replaced by one ``-``, no ``-`` at either end. A name with
nothing left gives ``default``.

Leaderboard entry file names (``<adapter>-<model>-s<seed>-<id>.json``), the zero-shot output directory
(``runs/zeroshot-<model>``) and the TREC run name of ``rankings/*.tsv.gz`` (``elsst-bench:<model>:<adapter>``)
are made with it: changing the rule renames committed files, so it does not change.
"""

from __future__ import annotations

import re

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text, default: str = "x") -> str:
    return _NOT_SLUG.sub("-", str(text).lower().rsplit("/", 1)[-1]).strip("-") or default
