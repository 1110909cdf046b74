"""Every method's options as a typed, frozen config: defaults, default learning rate, validation (torch-free).

Each method declares one frozen dataclass (in the spirit of PEFT's ``LoraConfig``): its fields are the method's
options with their defaults, in the order they are saved under ``"options"`` in ``adapter_config.json``;
constructing one validates every value that needs nothing else (``LoRAConfig(alpha=-1)`` raises
:class:`~elsst_bench.errors.AdapterError`); :meth:`MethodConfig.resolve` fills the rank-dependent defaults
(α = 2r) and checks what depends on the target shapes; :meth:`MethodConfig.check_rank` says whether a rank
is usable with the options (SMoA needs rank ≥ k, HRA an even rank). ``inputs`` names what a method takes at
apply time without saving it (GeLoRA's texts, EigenLoRAx's sources), and :meth:`MethodConfig.training_inputs`
computes those inputs from what the training layer has (its training texts, its ``--sources``).

Default learning rates (``default_lr``; ``--lr`` overrides). LoRA and OrthoGeoLoRA from the measurements in
docs/methods.md (English `broader`, all-MiniLM-L6-v2: LoRA best around 1e-3–3e-3, OrthoGeoLoRA needs 1e-2 because
σ starts at 0 and carries the whole magnitude). Others: the rate of the closest relative; none is tuned per
method on dev. (RESULTS.md's learning-rate check tries other rates for some methods; the defaults stay.)

Nothing here imports torch: the training configuration, ``elsst-bench sweep --dry-run`` and ``elsst-bench
adapters`` read these classes through the registry (:mod:`.registry`) without loading any implementation.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from ..errors import AdapterError
from .names import module_type
from .values import boolean, choice, integer, positive_int, positive_number

Shapes = Mapping[str, tuple[int, int]]  # {module name: (d_out, d_in)}


def smallest_dim(shapes: Shapes) -> int:
    return min(min(s) for s in shapes.values())


# ------------------------------------------------------------------------------------------------ base classes


@dataclass(frozen=True)
class MethodConfig:
    """The options of one method. Subclasses add fields and override :meth:`check` / :meth:`resolve`."""

    method: ClassVar[str] = ""
    default_lr: ClassVar[float | None] = None
    #: apply-time inputs that are not options and are not saved (texts, source dirs, precomputed states)
    inputs: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Validate, and normalise through :meth:`_set`, every option that needs nothing but its own value."""

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``{option: default}`` in field order (a fresh copy of mutable defaults)."""
        return {f.name: f.default if f.default_factory is MISSING else f.default_factory() for f in fields(cls)}

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "MethodConfig":
        """The config of an ``{option: value}`` mapping (unknown options raise AdapterError)."""
        names = cls.option_names()
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise AdapterError(
                f"unknown option {', '.join(unknown)} for adapter '{cls.method}'; known: {', '.join(sorted(names)) or 'none'}"
            )
        return cls(**options)

    def resolve(self, rank: int, shapes: Shapes) -> "MethodConfig":
        """This config with its rank-dependent defaults filled in, checked against the target ``shapes``."""
        return self

    def check_rank(self, rank: int) -> None:
        """Raise AdapterError if ``rank`` is not usable with these options."""

    def options(self) -> dict[str, Any]:
        """``{option: value}`` in field order: what ``adapter_config.json`` saves under ``"options"``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def training_inputs(cls, anchors: Sequence[str], sources: Sequence[str],
                        options: Mapping[str, Any] | None = None, steps: int | None = None,
                        positives: Sequence[str] | None = None) -> dict[str, Any]:
        """The apply-time inputs the training layer must pass: ``{}`` unless the method needs some.

        ``anchors``: the training queries; ``sources``: the run's ``--sources``; ``options``: the options the
        caller already has (an input given there is not recomputed); ``steps``: the run's optimiser steps;
        ``positives``: each anchor's positive. An input ``pairs`` (query, document) is given without prompts: the
        training layer adds the model's own (:func:`elsst_bench.training.run.adapter_inputs`).
        """
        return {}


@dataclass(frozen=True)
class ScaledConfig(MethodConfig):
    """Methods with a scale s = α / r. ``alpha=None``: α = 2r (s = 2), as LoRA in docs/methods.md."""

    alpha: float | None = None
    #: True: ``resolve`` turns None into 2·rank (saved as a number); False: None is saved, and every module uses
    #: α = 2·(its own rank) (GeLoRA's per-block ranks, PEFT's rank_pattern)
    alpha_from_rank: ClassVar[bool] = True

    def check(self) -> None:
        super().check()
        if self.alpha is not None:
            self._set("alpha", positive_number(self.alpha, self.method, "alpha"))

    def resolve(self, rank: int, shapes: Shapes) -> "ScaledConfig":
        resolved = super().resolve(rank, shapes)
        if self.alpha_from_rank and resolved.alpha is None:
            resolved = replace(resolved, alpha=2 * rank)
        return resolved


# ------------------------------------------------------------------------------------------------ native methods


def text_spread(anchors: Sequence[str], count: int) -> list[str]:
    """An even spread of at most ``count`` of the distinct training queries, in sorted order: the sample texts a
    method that reads the data gets from the training layer."""
    texts = sorted(set(anchors))
    step = max(1, len(texts) // count)
    return texts[::step][:count]


#: ``lora``'s initialisations (:data:`.lora_inits.LORA_INITS` has their classes; a test keeps the two equal), and
#: those that read the layers' inputs over sample texts.
LORA_INIT_NAMES = ("default", "gaussian", "olora", "eva", "corda", "lora-ga")
LORA_INITS_READING_TEXTS = ("eva", "corda")
LORA_INITS_READING_PAIRS = ("lora-ga",)
LORA_INITS_REFUSED = {  # PEFT's other LoRA initialisations, each with why this LoRA does not offer it
    "loftq": "it initialises against a quantised base model; the bases here are not quantised",
    "pissa": "it is a method of its own here: --adapter pissa"}


@dataclass(frozen=True)
class LoRAConfig(ScaledConfig):
    """``init``: the starting factors (:mod:`.lora_inits`); ``rslora``: s = α/√r (lora.py)."""

    method = "lora"
    default_lr = 3e-3  # measured (docs/methods.md): best around 1e-3–3e-3
    inputs = frozenset({"texts", "pairs"})  # eva and corda read the layers' inputs over texts; lora-ga the pairs
    #: how many of the training texts (pairs) the training layer hands an init that reads them
    training_texts: ClassVar[int] = 512
    training_pairs: ClassVar[int] = 256
    init: str = "default"
    rslora: bool = False

    def check(self) -> None:
        super().check()
        if self.init in LORA_INITS_REFUSED:
            raise AdapterError(f"lora init {self.init!r} is not offered: {LORA_INITS_REFUSED[self.init]}")
        choice(self.init, LORA_INIT_NAMES, self.method, "init")
        boolean(self.rslora, self.method, "rslora")

    @classmethod
    def training_inputs(cls, anchors, sources, options=None, steps=None, positives=None):
        """``{"texts": ...}`` for an init that reads the layers' inputs (:func:`text_spread`); ``{"pairs": ...}``,
        an even spread of at most 256 (anchor, positive) pairs, for one that reads the loss's gradient; else nothing."""
        options = options or {}
        init = options.get("init")
        if init in LORA_INITS_READING_TEXTS and "texts" not in options:
            return {"texts": text_spread(anchors, cls.training_texts)}
        if init in LORA_INITS_READING_PAIRS and "pairs" not in options:
            if positives is None:
                raise AdapterError(f"lora init {init!r} reads the training pairs; the caller gave none")
            step = max(1, len(anchors) // cls.training_pairs)
            return {"pairs": list(zip(anchors[::step], positives[::step]))[: cls.training_pairs]}
        return {}


@dataclass(frozen=True)
class OrthoGeoLoRAConfig(ScaledConfig):
    method = "orthogeolora"
    default_lr = 1e-2  # measured (docs/methods.md): σ starts at 0 and carries the whole magnitude
    init: str = "haar"

    def check(self) -> None:
        super().check()
        choice(self.init, ("haar", "spectral"), self.method, "init")


@dataclass(frozen=True)
class GeLoRAConfig(ScaledConfig):
    method = "gelora"
    default_lr = 3e-3  # LoRA's
    alpha_from_rank = False
    inputs = frozenset({"texts", "hidden_states", "layer_ranks"})
    #: how many of the training texts the training layer hands GeLoRA for its intrinsic dimensions
    training_texts: ClassVar[int] = 512
    mode: str = "budget"
    max_tokens: int = 5000
    seed: int = 0

    def check(self) -> None:
        super().check()
        choice(self.mode, ("budget", "bound"), self.method, "mode")
        self._set("max_tokens", positive_int(self.max_tokens, "option max_tokens of adapter 'gelora'"))
        integer(self.seed, self.method, "seed")

    @classmethod
    def training_inputs(cls, anchors, sources, options=None, steps=None, positives=None):
        """``{"texts": ...}``: an even spread of at most 512 of the distinct training queries, in sorted order."""
        if options is not None and "texts" in options:
            return {}
        return {"texts": text_spread(anchors, cls.training_texts)}


@dataclass(frozen=True)
class SMoAConfig(ScaledConfig):
    method = "smoa"
    default_lr = 3e-3  # LoRA's
    k: int = 2

    def check(self) -> None:
        super().check()
        self._set("k", positive_int(self.k, "option k of adapter 'smoa'"))

    def resolve(self, rank, shapes):
        resolved = super().resolve(rank, shapes)
        smallest = smallest_dim(shapes)
        if resolved.k > smallest:
            raise AdapterError(f"option k of adapter 'smoa' ({resolved.k}) exceeds min(d_in, d_out) = {smallest}")
        return resolved

    def check_rank(self, rank):
        if rank < self.k:
            raise AdapterError(
                f"smoa needs rank ≥ k (one rank per spectral group); got rank {rank} and k {self.k}"
            )


@dataclass(frozen=True)
class EigenLoRAxConfig(ScaledConfig):
    method = "eigenlorax"
    default_lr = 1e-2
    inputs = frozenset({"sources"})
    #: K when the caller names none: min(default_k, Σr_i − 1) of the sources
    default_k: ClassVar[int] = 8
    k: int | None = None
    k_gs: int = 0
    seed: int = 0

    def check(self) -> None:
        super().check()
        if self.k is not None:
            self._set("k", positive_int(self.k, "option k of adapter 'eigenlorax'"))
        if isinstance(self.k_gs, bool) or not isinstance(self.k_gs, int) or self.k_gs < 0:
            raise AdapterError(f"option k_gs of adapter 'eigenlorax' must be an integer ≥ 0, got {self.k_gs!r}")
        integer(self.seed, self.method, "seed")

    def resolve(self, rank, shapes):
        resolved = super().resolve(rank, shapes)
        if resolved.k is None:  # restored configs always carry k; a bare call without sources fails earlier
            resolved = replace(resolved, k=self.default_k)
        smallest = smallest_dim(shapes)
        if resolved.k + resolved.k_gs > smallest:
            raise AdapterError(
                f"eigenlorax basis size k + k_gs = {resolved.k + resolved.k_gs} exceeds min(d_in, d_out) = {smallest}"
            )
        return resolved

    @classmethod
    def training_inputs(cls, anchors, sources, options=None, steps=None, positives=None):
        """``{"sources": [adapter dir, ...]}``: each source an adapter directory (the training layer turns a run
        directory into its ``adapter/`` first, :func:`elsst_bench.runs.adapter_dir`)."""
        from .layout import ADAPTER_CONFIG

        if not sources:
            raise AdapterError(
                "eigenlorax needs --sources RUN_DIR... : two or more LoRA runs of the same base model, e.g. "
                "`elsst-bench train --adapter lora --tasks synonym` and `--tasks crosslingual`"
            )
        for source in sources:
            if not (Path(source) / ADAPTER_CONFIG).exists():
                raise AdapterError(f"eigenlorax source {source} is neither a LoRA run directory nor an adapter directory")
        return {"sources": [str(source) for source in sources]}


@dataclass(frozen=True)
class PiCaConfig(MethodConfig):
    method = "pica"
    default_lr = 3e-3  # LoRA's
    shared: bool = True

    def check(self) -> None:
        super().check()
        boolean(self.shared, self.method, "shared")


# ------------------------------------------------------------------------------------------------ PEFT methods


@dataclass(frozen=True)
class DoRAConfig(ScaledConfig):
    method = "dora"
    default_lr = 3e-3  # LoRA's
    alpha_from_rank = False
    rank_pattern: dict[str, int] = field(default_factory=dict)  # {module type: rank}, set by the budget solver

    def check(self) -> None:
        super().check()
        if not isinstance(self.rank_pattern, dict):
            raise AdapterError("option rank_pattern of adapter 'dora' must map module types to ranks")

    def resolve(self, rank, shapes):
        resolved = super().resolve(rank, shapes)
        pattern = resolved.rank_pattern
        types = {module_type(n) for n in shapes}
        caps: dict[str, int] = {}
        for n, s in shapes.items():
            caps[module_type(n)] = min(caps.get(module_type(n), min(s)), min(s))
        for key, value in pattern.items():
            if key not in types:
                raise AdapterError(f"rank_pattern of adapter 'dora' names {key!r}, which is not a target module type")
            value = positive_int(value, f"dora rank of {key}")
            if value > caps[key]:
                raise AdapterError(f"dora rank {value} of {key} is larger than min(d_in, d_out) = {caps[key]}")
        return replace(resolved, rank_pattern={k: int(pattern[k]) for k in sorted(pattern)})


@dataclass(frozen=True)
class PiSSAConfig(ScaledConfig):
    method = "pissa"
    default_lr = 1e-3
    alpha_from_rank = False


@dataclass(frozen=True)
class VeRAConfig(MethodConfig):
    method = "vera"
    default_lr = 1e-2
    d_initial: float = 0.1
    projection_prng_key: int = 0

    def check(self) -> None:
        super().check()
        if isinstance(self.d_initial, bool) or not isinstance(self.d_initial, (int, float)):
            raise AdapterError(f"option d_initial of adapter 'vera' must be a number, got {self.d_initial!r}")
        integer(self.projection_prng_key, self.method, "projection_prng_key")


@dataclass(frozen=True)
class HRAConfig(MethodConfig):
    method = "hra"
    default_lr = 3e-3  # LoRA's
    apply_gs: bool = False

    def check(self) -> None:
        super().check()
        boolean(self.apply_gs, self.method, "apply_gs")

    def check_rank(self, rank):
        if rank % 2:
            raise AdapterError(
                f"hra needs an even rank (its identity initialisation pairs the reflections), got {rank}"
            )


# ------------------------------------------------------------------------------------------------ baselines


@dataclass(frozen=True)
class NoneConfig(MethodConfig):
    """Zero-shot: nothing trains, so there is no learning rate."""

    method = "none"
    default_lr = None


@dataclass(frozen=True)
class FullConfig(MethodConfig):
    """Full fine-tuning of every encoder weight."""

    method = "full"
    default_lr = 2e-5
