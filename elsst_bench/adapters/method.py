"""What one adapter method implements (:class:`Method`), and the state an applied adapter leaves on the model.

A method is a :class:`Method` subclass in its own module, tied to its typed config (:mod:`.configs`) by
``config_class`` and listed in the registry (:mod:`.registry`), which says what it is without importing it.
The method counts its parameters for every value of its size knob (the budget solver picks one), builds its
layers from a :class:`BuildContext`, says which tensors train and which are saved, and gives ΔW per layer.
:class:`NativeMethod` is the common case: every target ``nn.Linear`` is replaced by an
:class:`~.layers.AdaptedLinear`.

The applied adapter's :class:`AdapterState` is kept on the inner Hugging Face model as ``_elsst_adapter`` (a
plain attribute, not a submodule), which is how every other operation finds it (:func:`get_state`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Sequence

import torch
from torch import nn

from ..errors import AdapterError
from .configs import MethodConfig
from .layers import AdaptedLinear
from .layout import CONFIG_FORMAT
from .registry import MethodInfo, method_info
from .targets import count_trainable, inner_model, set_submodule

STATE_ATTR = "_elsst_adapter"


@dataclass
class BuildContext:
    """Everything a method needs to inject itself."""

    model: nn.Module  # what the caller passed (SentenceTransformer or module)
    root: nn.Module  # the inner encoder; module names are relative to it
    targets: dict[str, nn.Linear]
    rank: int
    options: dict[str, Any]  # resolved, JSON-serialisable options (saved)
    inputs: dict[str, Any]  # apply-time inputs that are not saved (texts, sources, hidden states)
    restore: dict | None = None  # the adapter config when load_adapter rebuilds the structure
    extra: dict[str, Any] = field(default_factory=dict)  # method-specific config fields to save
    fingerprint: str | None = None
    scratch: dict[str, Any] = field(default_factory=dict)  # per-build working data (not saved)


@dataclass
class AdapterState:
    method: str
    rank: int
    options: dict[str, Any]
    target_modules: list[str]
    layers: dict[str, nn.Module]
    base_model: dict | None
    base_fingerprint: str
    extra: dict[str, Any]
    frozen: list[tuple[nn.Parameter, bool]]  # every parameter's requires_grad before apply_adapter
    runtime: dict[str, Any] = field(default_factory=dict)  # what a build leaves for training (never saved)

    def config(self, model: nn.Module, base_model: dict | None = None) -> dict:
        from .. import __version__

        cfg = {
            "format": CONFIG_FORMAT,
            "method": self.method,
            "rank": self.rank,
            "options": self.options,
            "target_modules": self.target_modules,
            "base_model": base_model if base_model is not None else self.base_model,
            "base_fingerprint": self.base_fingerprint,
            "trainable_params": count_trainable(model),
            "elsst_bench_version": __version__,
        }
        for key, value in self.extra.items():
            cfg.setdefault(key, value)
        return cfg


def get_state(model: nn.Module) -> AdapterState | None:
    return getattr(inner_model(model), STATE_ATTR, None)


def require_state(model: nn.Module) -> AdapterState:
    state = get_state(model)
    if state is None:
        raise AdapterError("the model has no adapter; call apply_adapter or load_adapter first")
    return state


def has_adapter(model: nn.Module) -> bool:
    return get_state(model) is not None


class Method(abc.ABC):
    """One adapter method. Subclasses set ``config_class`` and implement ``count`` and ``build``."""

    config_class: ClassVar[type[MethodConfig]]
    #: keys of method-specific top-level config fields (saved next to the options, restored by load_adapter)
    config_fields: ClassVar[tuple[str, ...]] = ()

    # -- what the registry says about it -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config_class.method

    @property
    def info(self) -> MethodInfo:
        return method_info(self.name)

    source = property(lambda self: self.info.source)
    formula = property(lambda self: self.info.formula)
    knob = property(lambda self: self.info.knob)
    summary = property(lambda self: self.info.summary)

    @property
    def defaults(self) -> dict[str, Any]:
        return self.config_class.defaults()

    @property
    def inputs(self) -> frozenset[str]:
        return self.config_class.inputs

    # -- options -------------------------------------------------------------------------------------------
    def resolve_options(self, rank: int, options: dict[str, Any], shapes: dict[str, tuple[int, int]]) -> dict:
        """Defaults filled in and every value validated (by the typed config); JSON-serialisable."""
        return self.config_class.from_options(options).resolve(rank, shapes).options()

    def validate_rank(self, rank: int, shapes: dict[str, tuple[int, int]]) -> None:
        name, (d_out, d_in) = min(shapes.items(), key=lambda kv: min(kv[1]))
        if rank > min(d_out, d_in):
            raise AdapterError(
                f"rank {rank} is larger than min(d_in, d_out) = {min(d_out, d_in)} of target module {name}"
            )

    def check_rank_options(self, rank: int, options: dict) -> None:
        """Raise AdapterError if ``rank`` is not usable with the resolved ``options`` (SMoA needs rank ≥ k)."""
        self.config_class.from_options(options).check_rank(rank)

    def prepare(self, model: nn.Module, targets: dict[str, nn.Linear], inputs: dict[str, Any], options: dict) -> dict:
        """Read apply-time inputs before options are resolved (EigenLoRAx loads its sources here)."""
        return options

    def default_target_modules(self, options: dict[str, Any]) -> str | list[str] | None:
        """Targets when the caller names none (EigenLoRAx: those of its sources); None: every block linear."""
        return None

    # -- counting ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def count(self, shapes: dict[str, tuple[int, int]], rank: int, options: dict) -> int:
        """Exact trainable-parameter count on modules of these ``shapes``."""

    def possible_counts(
        self, shapes: dict[str, tuple[int, int]], rank: int, options: dict, inputs: dict[str, Any]
    ) -> Sequence[int]:
        """Every trainable-parameter count the applied method can have on these ``shapes`` with this rank, these
        resolved ``options`` and these apply-time ``inputs`` (only what a caller states: no texts are read, no
        sources loaded): ``(count,)``, unless inputs it is not given decide (GeLoRA's ranks). What
        :func:`~.apply.planned_counts` reports."""
        return (self.count(shapes, rank, options),)

    def apply_time_options(self, options: dict) -> list[dict]:
        """The options :meth:`prepare` may settle from inputs a plan does not have, one dict per possibility
        (EigenLoRAx: each ``k`` its sources can give, when none is named); default ``[options]``."""
        return [options]

    #: The counts :meth:`budget_candidates` yields are monotone in the order it yields them (rising or falling):
    #: the budget solver then stops once a count is on the budget, past it, or farther from it than the one before,
    #: and picks what the full search would (tests/test_adapters_model.py checks both for every method, on
    #: all-MiniLM-L6-v2's shapes and a tiny encoder's).
    budget_monotone: ClassVar[bool] = True

    def budget_candidates(
        self, shapes: dict[str, tuple[int, int]], rank: int, options: dict
    ) -> Iterator[tuple[int, int, dict]]:
        """(count, rank, option updates) for every value of the size knob; default: the rank 1..min dim."""
        for r in range(1, min(min(s) for s in shapes.values()) + 1):
            try:
                self.check_rank_options(r, options)
            except AdapterError:
                continue
            yield self.count(shapes, r, options), r, {}

    # -- building ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        """Replace the target layers; return ``{module name: adapted layer}``."""

    def layer_tensors(self, layer: nn.Module) -> dict[str, torch.Tensor]:
        return layer.adapter_tensors()

    def layer_trainable(self, layer: nn.Module) -> list[nn.Parameter]:
        return [t for t in layer.adapter_tensors().values() if isinstance(t, nn.Parameter)]

    def delta_weight(self, layer: nn.Module) -> torch.Tensor:
        return layer.delta_weight()

    # -- export as a PEFT adapter (:mod:`.peft_export`) ------------------------------------------------------
    def lora_rank_bound(self, state: AdapterState) -> int:
        """The largest rank ΔW can have in a layer by construction: what an exact LoRA export may need."""
        return max([state.rank] + [int(getattr(layer, "rank", 0) or 0) for layer in state.layers.values()])

    def own_peft_config(self, state: AdapterState):
        """PEFT's config of the method's own adapter type (``peft_form = "own"``), for the applied ``state``."""
        raise AdapterError(f"{self.name} has no adapter type of its own in PEFT")

    def after_load(self, state: AdapterState) -> None:
        """Hook run after ``load_adapter`` copied the tensors in (PiSSA rebuilds its residual base here)."""

    def before_reload(self, state: AdapterState) -> Any:
        """Hook run before ``load_adapter_weights`` overwrites an applied adapter's tensors."""
        return None

    def after_reload(self, state: AdapterState, previous: Any) -> None:
        """Hook run after ``load_adapter_weights`` (PiSSA moves its residual base if A0/B0 changed)."""

    def regularization(self, state: AdapterState) -> torch.Tensor | None:
        """A term the training loss adds (AdaLoRA's orthogonality penalty); None for most methods."""
        return None

    def after_optimizer_step(self, state: AdapterState, step: int) -> None:
        """Hook the Trainer runs after each optimiser step, before the gradients are zeroed (AdaLoRA reallocates
        its ranks here)."""

    def remove(self, state: AdapterState, root: nn.Module) -> None:
        """Hook run when the adapter leaves the model (merge or a failed load): drop hooks, caches."""

    def merge(self, state: AdapterState, root: nn.Module) -> None:
        """Fold every layer's ΔW into its base weight and put the base ``nn.Linear`` back."""
        for name, layer in state.layers.items():
            with torch.no_grad():
                delta = self.delta_weight(layer).detach()
                base = layer.base
                merged = base.weight.detach().double() + delta.double()
                base.weight.data.copy_(merged.to(base.weight.dtype))
            set_submodule(root, name, base)


class NativeMethod(Method):
    """Methods that replace each target ``nn.Linear`` with an :class:`AdaptedLinear` subclass."""

    @abc.abstractmethod
    def make_layer(self, name: str, base: nn.Linear, ctx: BuildContext) -> AdaptedLinear:
        """The adapted layer that replaces target ``name``."""

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        layers = {name: self.make_layer(name, base, ctx) for name, base in ctx.targets.items()}
        for name, layer in layers.items():  # swap in only once every layer could be built
            set_submodule(ctx.root, name, layer)
        return layers
