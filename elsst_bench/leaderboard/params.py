"""``trainable_params``, re-counted from what an entry states: one rule for ``submit`` and ``leaderboard --verify``.

An entry, and the run ``config.json`` that ``submit`` builds it from, states the base model (``model.name``,
``model.sha256``), the ``adapter`` and the ``options`` (``rank``, ``budget``, and ``options``: the method's
options). These decide the count that ``elsst-bench train`` records (``_make_trainable`` in
:mod:`elsst_bench.training.run`), and :func:`expected_trainable_params` re-counts it:

- ``none`` trains 0; ``full`` every parameter of the base SentenceTransformer;
- an adapter of the registry what ``apply_adapter`` leaves trainable, counted from the shapes of its target
  layers by :func:`elsst_bench.adapters.planned_counts` (the options, the budget and the rank resolved by the
  same code as ``apply_adapter``; a rank the options do not state is ``train``'s default, 8);
- a method the registry does not know (a submitter's own) cannot be re-counted: its number is taken as stated,
  and ``--verify`` says how many entries that is (:attr:`Expected.checked`).

Two methods' counts can depend on data an entry does not hold: EigenLoRAx's basis size ``k`` when
``options.options`` names none (its source adapters decide; its targets are then taken to be the default ones,
as an elsst-bench LoRA source's are), and GeLoRA's per-block ranks (the intrinsic dimensions of its training texts
decide) unless ``layer_ranks`` is given or, in mode ``budget`` on alike blocks, no block can reach its cap (the
usual case: then the count is exact). There the stated number must be one of the counts the method can have.

The base is found on this machine by name and sha256 (:func:`elsst_bench.models.locate_base`) and built on the
``meta`` device: its modules and shapes, no weights read. A base that is not here is a refusal, never a skip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from .. import runs
from ..errors import BenchError, DataError
from ..training.config import TrainConfig
from .entry import OPTION_TYPES, _shown as _repr

#: the rank ``elsst-bench train`` uses when none is given (what a run that states none trained with)
DEFAULT_RANK = TrainConfig.rank


@dataclass(frozen=True)
class Expected:
    """What a stated setup trains: ``setup`` in words and its ``counts`` (one, or, when data the entry does not
    hold decide, every count they can give, increasing); ``counts`` is None for a method elsst-bench does not
    implement."""

    setup: str
    counts: Sequence[int] | None

    @property
    def checked(self) -> bool:
        return self.counts is not None

    def allows(self, stated: int) -> bool:
        return self.counts is None or stated in self.counts

    def describe(self) -> str:
        counts = self.counts
        if counts is None:
            return "an unknown number"
        if len(counts) == 1:
            return str(counts[0])
        if isinstance(counts, range):
            lo, hi = counts[0], counts[-1]
            within = f"a multiple of {counts.step} from {lo} to {hi}" if counts.step > 1 else f"from {lo} to {hi}"
        else:
            within = "one of " + ", ".join(map(str, counts[:-1])) + f" or {counts[-1]}"
        return f"{within} (data the entry does not hold decide which)"


class Bases:
    """The base models of one ``--verify`` or ``submit``, each located and built (on ``meta``) once."""

    def __init__(self) -> None:
        self._built: dict[tuple, object] = {}

    def structure(self, identity: dict):
        """The SentenceTransformer of ``identity`` (``{"name", "sha256"}``) on the meta device."""
        key = (identity.get("name"), identity.get("sha256"))
        if key not in self._built:
            self._built[key] = _build(identity)
        return self._built[key]


def _build(identity: dict):
    from ..models import locate_base

    location = locate_base(identity)
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # "Loading weights" onto meta: nothing is read, nothing to show
    try:
        return SentenceTransformer(location, model_kwargs={"device_map": "meta"})
    except (OSError, ValueError, RuntimeError) as err:
        raise BenchError(f"cannot build base model {identity.get('name')} ({str(err).splitlines()[0]})") from err
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _shown(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:39] + "…"


def _stated(record: dict, where: str) -> tuple[int, str | None, dict]:
    """``(rank, budget, method options)`` from ``record["options"]`` (each checked for type: a run's config.json
    has not been through an entry's checks)."""
    options = record.get("options")
    options = options if isinstance(options, dict) else {}
    stated = {}
    for key, default in (("rank", DEFAULT_RANK), ("budget", None), ("options", {})):
        value = options.get(key)
        if value is None:
            stated[key] = default
            continue
        ok, what = OPTION_TYPES[key]
        if not ok(value):
            raise DataError(f"{where}: options.{key} must be {what}, got {_repr(value)}")
        stated[key] = value
    clash = sorted({"rank", "budget"} & set(stated["options"]))
    if clash:
        raise DataError(f"{where}: options.options.{clash[0]} is not a method option (options.{clash[0]} is)")
    return stated["rank"], stated["budget"], stated["options"]


def expected_trainable_params(record: dict, bases: Bases | None = None, where: str = "the entry") -> Expected:
    """What the setup ``record`` states (an entry or a run's config.json: ``model``, ``adapter``, ``options``)
    trains, re-counted as the module docstring says. A base that is not on this machine, or options the method
    refuses, raise a one-line DataError naming ``where``."""
    adapter, model = record["adapter"], record["model"]
    info = runs.method(adapter)
    name = model.get("name")
    if info is None:
        return Expected(f"{adapter} (a method elsst-bench does not implement)", None)
    if not info.trains:
        return Expected(f"{adapter} (zero-shot)", (0,))
    rank, budget, options = _stated(record, where)
    size = f"budget {budget}" if budget is not None else f"rank {rank}"
    knobs = "".join(f" {k}={_shown(v)}" for k, v in sorted(options.items()))
    setup = f"{adapter}{knobs} at {size} on {name}" if info.is_adapter else f"{adapter} fine-tuning of {name}"
    try:
        structure = (bases or Bases()).structure(model)
    except (BenchError, ImportError) as err:  # ImportError: the package of an offline base is not installed
        raise DataError(f"{where}: cannot re-count trainable_params: {err}") from err
    if not info.is_adapter:  # full fine-tuning: every parameter of the encoder
        return Expected(setup, (sum(p.numel() for p in structure.parameters()),))
    from ..adapters import planned_counts

    try:
        counts = planned_counts(structure, adapter, rank, budget=budget, **options)
    except BenchError as err:  # AdapterError: options, rank or budget the method refuses
        raise DataError(f"{where}: cannot re-count trainable_params of {setup}: {err}") from err
    return Expected(setup, counts)


def check_trainable_params(record: dict, where: str, bases: Bases | None = None) -> Expected:
    """Refuse ``record`` (one line naming ``where``, both numbers) unless its ``trainable_params`` is what its
    stated setup trains (:func:`expected_trainable_params`). Returns the expectation."""
    expected = expected_trainable_params(record, bases, where)
    stated = record["trainable_params"]
    if not expected.allows(stated):
        raise DataError(f"{where}: trainable_params is {stated}, but {expected.setup} trains {expected.describe()}")
    return expected
