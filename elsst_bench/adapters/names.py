"""What a module's name says about its place in the encoder (torch-free: plain strings).

A module belongs to the transformer block given by the first numeric component of its name
(``encoder.layer.3.attention.self.query`` -> block 3); its *type* is the name with that index replaced by ``*``
(``encoder.layer.*.attention.self.query``). Target selection, GeLoRA's per-block ranks, PiCa's shared M and
DoRA's ``rank_pattern`` all read names this way; the option validation in :mod:`.configs` does too, which is
why this lives apart from :mod:`.targets` (that one needs torch).
"""

from __future__ import annotations

import re

_BLOCK_RE = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")


def block_index(name: str) -> int | None:
    """Index of the transformer block a module belongs to: the first numeric component of its name."""
    match = _BLOCK_RE.search(name)
    return int(match.group(1)) if match else None


def module_type(name: str) -> str:
    """The module's name with its block index replaced by ``*`` (``encoder.layer.*.attention.self.query``)."""
    return _BLOCK_RE.sub(lambda m: m.group(0).replace(m.group(1), "*"), name, count=1)
