"""The small core every adapter method plugs into.

What lives here:

* **Registry** – ``register`` (a class decorator), ``get_method``, ``available_adapters``,
  ``describe_adapters``. Each method is one :class:`Method` subclass in its own module.
* **Target selection** – ``find_target_modules``: every ``nn.Linear`` inside the transformer blocks by
  default (a module name with a numeric path component, e.g. ``encoder.layer.3.attention.self.query``;
  that excludes BERT's pooler), or a selector with PEFT's semantics: a *list* of name suffixes
  (``["query", "value"]``; ``"output.dense"`` also matches ``attention.output.dense``, exactly as in PEFT) or
  a *string* regular expression that must match the whole module name.
* **Injection** – ``apply_adapter`` resolves options, validates the rank, optionally solves a parameter
  budget, freezes the whole model and lets the method replace the target layers; the adapter's state
  (:class:`AdapterState`) is kept on the inner Hugging Face model as ``_elsst_adapter``.
* **Counting and budgets** – ``count_trainable``, ``trainable_parameters``, ``budget_params`` and the
  solver: ``budget="lora-r8"`` means "as many trainable parameters as LoRA r=8 on the same target modules";
  every method enumerates the values of its size knob with their exact (analytic) parameter counts and the
  closest one wins. Within ±5 % is the goal; when a knob cannot get there the closest value is taken and
  the config records ``within_tolerance: false`` with a note (the solver never fails).
* **Save / load / merge** – ``adapter.safetensors`` holds only adapter tensors (plus the frozen buffers a
  method needs to be rebuilt: EigenLoRAx bases, PiCa projections, PiSSA's initial factors, VeRA's random
  projections), keyed ``<module name>.<tensor>``; a tensor shared by several layers (PiCa's M, VeRA's
  projections) is stored once, under the first layer that holds it. ``adapter_config.json`` names the
  method, its resolved options, the rank, the exact target module names, the base model identity, a
  fingerprint of the base weights of the target modules (``base_fingerprint``; this, not the file hash, is
  what ``load_adapter`` checks, so the same weights saved in another file format still match), the
  trainable-parameter count and method-specific fields. ``merge_adapter`` folds ΔW into the base weights
  and puts the original ``nn.Linear`` objects back.
* **Diagnostics** – ``adapter_spectra``: singular values of every layer's ΔW and its effective rank
  exp(H(p)), p_i = σ_i / Σσ (0 for ΔW = 0).

Why module wrapping rather than ``torch.nn.utils.parametrize`` (measured, not assumed): a parametrization
recomputes W0 + ΔW at every forward and, worse, makes autograd form the full d_out×d_in weight gradient
in the backward pass (one extra tokens×d_out×d_in matmul per layer, as in full fine-tuning). With
``benchmarks/adapters.py`` (all-MiniLM-L6-v2, 64 pairs, MNRL + AdamW, 2 CPU threads, 9 interleaved repeats)
a parametrized LoRA step took 1.09x (median; 1.13x best-of-9) the time of PEFT's LoRA, the wrapped
activation path x -> base(x) + s·(x Aᵀ)Bᵀ 0.93x (0.98x); the goal is ≤ 1.05x. So low-rank methods wrap the
linear (:class:`AdaptedLinear`) and keep the weight-space form (``delta_weight()``) for merging and
diagnostics; SMoA, whose ΔW is not factored in activation space, uses the weight path (see smoa.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

import torch
from torch import nn

from ..errors import AdapterError

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
STATE_ATTR = "_elsst_adapter"
BUDGET_TOLERANCE = 0.05
CONFIG_FORMAT = 1

#: Baselines listed by ``elsst-bench adapters`` but applied by the training layer, not by ``apply_adapter``.
BASELINES = {
    "none": ("baseline", "0", "-", "zero-shot: the base encoder as is"),
    "full": ("baseline", "all encoder weights", "-", "full fine-tuning of every encoder weight"),
}

_REGISTRY: dict[str, "Method"] = {}


# --------------------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------------------


def register(cls: type["Method"]) -> type["Method"]:
    """Class decorator: add one instance of a :class:`Method` subclass to the registry under ``cls.name``."""
    _REGISTRY[cls.name] = cls()
    return cls


def _ensure_registered() -> None:
    if not _REGISTRY:  # importing the package imports every method module
        import elsst_bench.adapters  # noqa: F401


def available_adapters() -> list[str]:
    """Names accepted by :func:`apply_adapter`, in registry order (baselines ``full``/``none`` excluded)."""
    _ensure_registered()
    return list(_REGISTRY)


def get_method(name: str) -> "Method":
    _ensure_registered()
    if not isinstance(name, str) or name not in _REGISTRY:
        if isinstance(name, str) and name in BASELINES:
            raise AdapterError(
                f"'{name}' is a baseline that the training layer handles, not an adapter; "
                f"adapters: {', '.join(_REGISTRY)}"
            )
        raise AdapterError(
            f"unknown adapter {name!r}; known: {', '.join(_REGISTRY)} (baselines: {', '.join(BASELINES)})"
        )
    return _REGISTRY[name]


def describe_adapters() -> list[dict[str, str]]:
    """One row per adapter and baseline: name, source (native/peft/baseline), params formula, knob, summary."""
    _ensure_registered()
    rows = [
        {"name": m.name, "source": m.source, "params": m.formula, "knob": m.knob, "summary": m.summary}
        for m in _REGISTRY.values()
    ]
    for name, (source, formula, knob, summary) in BASELINES.items():
        rows.append({"name": name, "source": source, "params": formula, "knob": knob, "summary": summary})
    return rows


# --------------------------------------------------------------------------------------------------------------
# Model plumbing
# --------------------------------------------------------------------------------------------------------------


def inner_model(model: nn.Module) -> nn.Module:
    """The Hugging Face encoder inside a SentenceTransformer (``model[0].auto_model``), else ``model`` itself."""
    if not isinstance(model, nn.Module):
        raise AdapterError(f"expected a SentenceTransformer or a torch module, got {type(model).__name__}")
    if isinstance(model, nn.Sequential) and len(model) > 0:
        auto = getattr(model[0], "auto_model", None)
        if isinstance(auto, nn.Module):
            return auto
    auto = getattr(model, "auto_model", None)
    if isinstance(auto, nn.Module):
        return auto
    return model


def get_state(model: nn.Module) -> "AdapterState | None":
    return getattr(inner_model(model), STATE_ATTR, None)


def _require_state(model: nn.Module) -> "AdapterState":
    state = get_state(model)
    if state is None:
        raise AdapterError("the model has no adapter; call apply_adapter or load_adapter first")
    return state


def set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


_BLOCK_RE = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")


def block_index(name: str) -> int | None:
    """Index of the transformer block a module belongs to: the first numeric component of its name."""
    match = _BLOCK_RE.search(name)
    return int(match.group(1)) if match else None


def module_type(name: str) -> str:
    """The module's name with its block index replaced by ``*`` (``encoder.layer.*.attention.self.query``)."""
    return _BLOCK_RE.sub(lambda m: m.group(0).replace(m.group(1), "*"), name, count=1)


def find_target_modules(model: nn.Module, target_modules: str | Iterable[str] | None = None) -> dict[str, nn.Linear]:
    """``{name: nn.Linear}`` of the layers to adapt, in module order (names relative to the inner encoder).

    ``None``: every ``nn.Linear`` inside the transformer blocks. A string: a regular expression matched
    against the whole name. A list: name suffixes (a name matches ``s`` if it equals ``s`` or ends in
    ``"." + s``), PEFT's convention.
    """
    root = inner_model(model)
    linears = {
        name: module for name, module in root.named_modules() if isinstance(module, nn.Linear) and name
    }
    if target_modules is None:
        chosen = {n: m for n, m in linears.items() if block_index(n) is not None}
        if not chosen:
            raise AdapterError(
                "no linear layer inside numbered transformer blocks was found; pass target_modules explicitly"
            )
        return chosen
    if isinstance(target_modules, str):
        try:
            pattern = re.compile(target_modules)
        except re.error as err:
            raise AdapterError(f"target_modules {target_modules!r} is not a valid regular expression ({err})") from None
        chosen = {n: m for n, m in linears.items() if pattern.fullmatch(n)}
        label = target_modules
    else:
        suffixes = [str(s) for s in target_modules]
        if not suffixes:
            raise AdapterError("target_modules is empty; name at least one module suffix")
        chosen = {n: m for n, m in linears.items() if any(n == s or n.endswith("." + s) for s in suffixes)}
        unmatched = [s for s in suffixes if not any(n == s or n.endswith("." + s) for n in linears)]
        if unmatched:
            endings = sorted({module_type(n).split("*.", 1)[-1] for n in linears})
            raise AdapterError(
                f"target module(s) {', '.join(unmatched)} match no linear layer; the model's linear layers are: "
                f"{', '.join(endings)}"
            )
        label = ",".join(suffixes)
    if not chosen:
        raise AdapterError(f"target_modules {label!r} match no linear layer of the model")
    return chosen


def base_fingerprint(targets: dict[str, nn.Linear]) -> str:
    """sha256 over the names, shapes and float32 bytes of the target layers' weights and biases."""
    digest = hashlib.sha256()
    for name in sorted(targets):
        layer = targets[name]
        for kind, tensor in (("weight", layer.weight), ("bias", layer.bias)):
            if tensor is None:
                continue
            data = tensor.detach().to("cpu", torch.float32).contiguous()
            digest.update(f"{name}.{kind}:{tuple(data.shape)}".encode())
            digest.update(data.numpy().tobytes())
    return digest.hexdigest()


_IDENTITY_CACHE: dict[str, dict] = {}


def infer_base_identity(model: nn.Module) -> dict | None:
    """``{"name", "location", "sha256"}`` of the model's weights directory when it can be told, else None."""
    root = inner_model(model)
    location = getattr(getattr(root, "config", None), "_name_or_path", None) or getattr(root, "name_or_path", None)
    if not location or not Path(str(location)).is_dir():
        return None
    location = str(Path(str(location)).resolve())
    if location not in _IDENTITY_CACHE:
        from .. import models

        try:
            if Path(location) == models.default_model_path().resolve():
                identity = models.model_identity(None)
            else:
                identity = models.model_identity(location)
        except Exception:  # not a sentence-transformers dir: a plain HF directory is still identifiable
            identity = {"name": location, "location": location, "sha256": models.weights_sha256(location)}
        _IDENTITY_CACHE[location] = identity
    return dict(_IDENTITY_CACHE[location])


def shapes_of(targets: dict[str, nn.Linear]) -> dict[str, tuple[int, int]]:
    """``{name: (d_out, d_in)}``."""
    return {name: (m.out_features, m.in_features) for name, m in targets.items()}


# --------------------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------------------


class AdaptedLinear(nn.Module):
    """A frozen ``nn.Linear`` (kept as ``self.base``, the very object that was replaced) plus an adapter.

    Subclasses implement ``forward`` (the fast path) and ``delta_weight`` (ΔW in torch layout, d_out×d_in);
    ``forward(x)`` must equal ``F.linear(x, W0 + delta_weight(), b)``.
    """

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.in_features = base.in_features
        self.out_features = base.out_features

    @property
    def weight(self) -> torch.Tensor:  # code that peeks at ``layer.weight`` (dtype, device) keeps working
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def delta_weight(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adapter_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save: own parameters and persistent buffers (not the base layer's)."""
        out = {n: p for n, p in self.named_parameters(recurse=False)}
        for n, b in self.named_buffers(recurse=False):
            if n not in self._non_persistent_buffers_set:
                out[n] = b
        for child_name, child in self.named_children():
            if child is self.base:
                continue
            for n, p in child.named_parameters():
                out[f"{child_name}.{n}"] = p
        return out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run one-off LAPACK work (the SVDs at apply time) on one intra-op thread, then restore the setting.

    Measured on a 2-core machine shared with other jobs: 36 float64 SVDs of the MiniLM weights took 0.4 s on
    one thread and 28 s on two (every LAPACK barrier waits for a descheduled OpenMP thread); on an idle
    machine one thread costs little for matrices this small. Only used on CPU, outside training steps.
    """
    previous = torch.get_num_threads()
    if previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous > 1:
            torch.set_num_threads(previous)


def svd64(weight: torch.Tensor, full: bool = True):
    """Thin SVD (U, S, Vh) of ``weight`` in float64 on CPU, single-threaded (see :func:`single_threaded`)."""
    w = weight.detach().to("cpu", torch.float64)
    with single_threaded():
        if full:
            return torch.linalg.svd(w, full_matrices=False)
        return torch.linalg.svdvals(w)


def kaiming_uniform_like_linear(tensor: torch.Tensor) -> torch.Tensor:
    """``nn.init.kaiming_uniform_(t, a=√5)``: nn.Linear's (and PEFT LoRA's A) default initialisation."""
    return nn.init.kaiming_uniform_(tensor, a=math.sqrt(5))


# --------------------------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------------------------


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


class Method:
    """One adapter method. Subclasses set the class attributes and implement ``count`` and ``build``."""

    name: ClassVar[str]
    source: ClassVar[str] = "native"
    formula: ClassVar[str]
    knob: ClassVar[str] = "rank"
    summary: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    #: options used while applying but not saved in the config (texts, source dirs, precomputed states)
    inputs: ClassVar[frozenset[str]] = frozenset()
    #: keys of method-specific top-level config fields
    config_fields: ClassVar[tuple[str, ...]] = ()

    # -- options -------------------------------------------------------------------------------------------
    def resolve_options(self, rank: int, options: dict[str, Any], shapes: dict[str, tuple[int, int]]) -> dict:
        """Fill defaults and validate values; return JSON-serialisable options. Override to validate more."""
        resolved = dict(self.defaults)
        resolved.update(options)
        if "alpha" in resolved:
            if resolved["alpha"] is None:
                resolved["alpha"] = 2 * rank
            resolved["alpha"] = _positive_number(resolved["alpha"], self.name, "alpha")
        return resolved

    def validate_rank(self, rank: int, shapes: dict[str, tuple[int, int]]) -> None:
        name, (d_out, d_in) = min(shapes.items(), key=lambda kv: min(kv[1]))
        if rank > min(d_out, d_in):
            raise AdapterError(
                f"rank {rank} is larger than min(d_in, d_out) = {min(d_out, d_in)} of target module {name}"
            )

    def prepare(self, model: nn.Module, targets: dict[str, nn.Linear], inputs: dict[str, Any], options: dict) -> dict:
        """Read apply-time inputs before options are resolved (EigenLoRAx loads its sources here)."""
        return options

    def default_target_modules(self, options: dict[str, Any]) -> str | list[str] | None:
        """Targets when the caller names none (EigenLoRAx: those of its sources); None: every block linear."""
        return None

    # -- counting ------------------------------------------------------------------------------------------
    def count(self, shapes: dict[str, tuple[int, int]], rank: int, options: dict) -> int:  # pragma: no cover
        raise NotImplementedError

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

    def check_rank_options(self, rank: int, options: dict) -> None:
        """Raise AdapterError if ``rank`` is not usable with ``options`` (e.g. SMoA needs rank ≥ K)."""

    # -- building ------------------------------------------------------------------------------------------
    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:  # pragma: no cover - abstract
        raise NotImplementedError

    def layer_tensors(self, layer: nn.Module) -> dict[str, torch.Tensor]:
        return layer.adapter_tensors()

    def layer_trainable(self, layer: nn.Module) -> list[nn.Parameter]:
        return [t for t in layer.adapter_tensors().values() if isinstance(t, nn.Parameter)]

    def delta_weight(self, layer: nn.Module) -> torch.Tensor:
        return layer.delta_weight()

    def after_load(self, state: AdapterState) -> None:
        """Hook run after ``load_adapter`` copied the tensors in (PiSSA rebuilds its residual base here)."""

    def before_reload(self, state: AdapterState) -> Any:
        """Hook run before ``load_adapter_weights`` overwrites an applied adapter's tensors."""
        return None

    def after_reload(self, state: AdapterState, previous: Any) -> None:
        """Hook run after ``load_adapter_weights`` (PiSSA moves its residual base if A0/B0 changed)."""

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

    def make_layer(self, name: str, base: nn.Linear, ctx: BuildContext) -> AdaptedLinear:  # pragma: no cover
        raise NotImplementedError

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        layers = {name: self.make_layer(name, base, ctx) for name, base in ctx.targets.items()}
        for name, layer in layers.items():  # swap in only once every layer could be built
            set_submodule(ctx.root, name, layer)
        return layers


def _positive_number(value: Any, method: str, option: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise AdapterError(f"option {option} of adapter '{method}' must be a positive number, got {value!r}")
    return float(value) if not isinstance(value, int) else value


def positive_int(value: Any, what: str) -> int:
    """``value`` as an int ≥ 1, else AdapterError naming ``what``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise AdapterError(f"{what} must be a positive integer, got {value!r}") from None
    if number <= 0:
        raise AdapterError(f"{what} must be a positive integer, got {value!r}")
    return number


def choice(value: Any, allowed: Iterable[str], method: str, option: str) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise AdapterError(f"option {option} of adapter '{method}' must be one of {', '.join(allowed)}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------------------------
# Public operations
# --------------------------------------------------------------------------------------------------------------


def parse_budget(budget: str) -> int:
    """``"lora-r8"`` -> 8."""
    match = re.fullmatch(r"lora-r(\d+)", str(budget).strip())
    if not match or int(match.group(1)) <= 0:
        raise AdapterError(f"budget {budget!r} is not of the form lora-rN (e.g. lora-r8)")
    return int(match.group(1))


def lora_count(shapes: dict[str, tuple[int, int]], rank: int) -> int:
    return sum(rank * (d_out + d_in) for d_out, d_in in shapes.values())


def budget_params(model: nn.Module, budget: str = "lora-r8", target_modules: str | Iterable[str] | None = None) -> int:
    """Trainable parameters of LoRA rank N (``budget="lora-rN"``) on ``target_modules`` of ``model``."""
    rank = parse_budget(budget)
    state = get_state(model)
    if state is not None and target_modules is None:
        shapes = {n: (l.out_features, l.in_features) for n, l in state.layers.items()}
    else:
        shapes = shapes_of(find_target_modules(model, target_modules))
    return lora_count(shapes, rank)


def solve_budget(
    method: Method, shapes: dict[str, tuple[int, int]], budget: str, rank: int, options: dict
) -> tuple[int, dict, dict]:
    """Pick the method's knob whose exact parameter count is closest to the budget; returns (rank, options, info)."""
    target = lora_count(shapes, parse_budget(budget))
    best = None
    for count, r, updates in method.budget_candidates(shapes, rank, options):
        key = (abs(count - target), count > target)  # ties: prefer staying under the budget
        if best is None or key < best[0]:
            best = (key, count, r, updates)
    if best is None:
        raise AdapterError(f"adapter '{method.name}' has no setting of its {method.knob} that fits these modules")
    _, count, r, updates = best
    ratio = count / target
    info = {
        "spec": budget,
        "target_params": target,
        "planned_params": count,
        "ratio": round(ratio, 6),
        "tolerance": BUDGET_TOLERANCE,
        "within_tolerance": abs(ratio - 1) <= BUDGET_TOLERANCE,
        "knob": method.knob,
        "rank": r,
    }
    info.update({f"knob_{k}": v for k, v in updates.items() if not isinstance(v, dict)})
    if not info["within_tolerance"]:
        side = "below" if count < target else "above"
        info["note"] = (
            f"{method.name}'s {method.knob} cannot reach the budget on these modules; the closest setting is "
            f"{100 * abs(ratio - 1):.1f}% {side} it"
        )
    new_options = dict(options)
    new_options.update(updates)
    return r, new_options, info


def apply_adapter(
    model: nn.Module,
    name: str,
    rank: int = 8,
    *,
    target_modules: str | Iterable[str] | None = None,
    budget: str | None = None,
    base_model: dict | None = None,
    **options: Any,
) -> list[nn.Module]:
    """Inject adapter ``name`` into the target linears of ``model`` (a SentenceTransformer or a torch module).

    Freezes every parameter of ``model`` and leaves only the adapter's trainable. ``budget="lora-rN"`` lets the
    method choose its size knob to match LoRA rank N's parameter count (recorded in the config under
    ``"budget"``). ``base_model`` is the identity dict saved in the config (default: inferred from the
    model's weights directory). Returns the adapted layers in module order; each has ``delta_weight()``.
    """
    return _apply(model, name, rank, target_modules=target_modules, budget=budget, base_model=base_model,
                  options=options, restore=None)


def _apply(model, name, rank, *, target_modules, budget, base_model, options, restore) -> list[nn.Module]:
    method = get_method(name)
    root = inner_model(model)
    if getattr(root, STATE_ATTR, None) is not None:
        raise AdapterError(
            f"the model already has a '{getattr(root, STATE_ATTR).method}' adapter; "
            "merge it or load a fresh model first"
        )
    rank = positive_int(rank, "rank")
    if target_modules is None and restore is None:
        target_modules = method.default_target_modules(options)
    targets = find_target_modules(model, target_modules)
    shapes = shapes_of(targets)

    unknown = sorted(set(options) - set(method.defaults) - set(method.inputs))
    if unknown:
        known = sorted(set(method.defaults) | set(method.inputs))
        raise AdapterError(
            f"unknown option {', '.join(unknown)} for adapter '{name}'; known: {', '.join(known) or 'none'}"
        )
    inputs = {k: options[k] for k in method.inputs if k in options}
    plain = {k: v for k, v in options.items() if k not in method.inputs}
    if restore is None:
        plain = method.prepare(model, targets, inputs, plain)

    budget_info = None
    if budget is not None:
        resolved = method.resolve_options(rank, plain, shapes)
        rank, plain, budget_info = solve_budget(method, shapes, budget, rank, resolved)
        if "alpha" in plain and "alpha" not in options:
            plain["alpha"] = None  # α follows the solved rank (α = 2r) unless the caller fixed it
    method.validate_rank(rank, shapes)
    resolved = method.resolve_options(rank, plain, shapes)
    method.check_rank_options(rank, resolved)

    fingerprint = base_fingerprint(targets)
    identity = base_model if base_model is not None else infer_base_identity(model)
    ctx = BuildContext(model=model, root=root, targets=targets, rank=rank, options=resolved, inputs=inputs,
                       restore=restore, fingerprint=fingerprint)
    frozen = [(p, p.requires_grad) for p in model.parameters()]
    if root is not model:
        seen = {id(p) for p, _ in frozen}
        frozen += [(p, p.requires_grad) for p in root.parameters() if id(p) not in seen]
    layers = method.build(ctx)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in root.parameters():
        p.requires_grad_(False)
    for layer in layers.values():
        for p in method.layer_trainable(layer):
            p.requires_grad_(True)
    extra = dict(ctx.extra)
    state = AdapterState(
        method=name, rank=rank, options=ctx.options, target_modules=list(targets), layers=layers,
        base_model=identity, base_fingerprint=fingerprint, extra=extra, frozen=frozen,
    )
    object.__setattr__(root, STATE_ATTR, state)  # plain attribute, not a submodule
    if budget_info is not None:
        achieved = count_trainable(model)
        ratio = achieved / budget_info["target_params"]
        budget_info.update(achieved_params=achieved, ratio=round(ratio, 6),
                           within_tolerance=abs(ratio - 1) <= BUDGET_TOLERANCE)
        if budget_info["within_tolerance"]:
            budget_info.pop("note", None)
        elif "note" not in budget_info:
            side = "below" if ratio < 1 else "above"
            budget_info["note"] = f"the achieved count is {100 * abs(ratio - 1):.1f}% {side} the budget"
        state.extra["budget"] = budget_info
    return list(layers.values())


def adapted_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{module name: adapted layer}`` of the model's adapter."""
    return dict(_require_state(model).layers)


def delta_weights(model: nn.Module, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """``{layer: ΔW}`` (torch layout, detached) of every adapted layer, or of the named ``layers``."""
    state = _require_state(model)
    method = get_method(state.method)
    names = list(state.layers) if layers is None else list(layers)
    unknown = [n for n in names if n not in state.layers]
    if unknown:
        raise AdapterError(f"{unknown[0]} is not an adapted layer of this model")
    with torch.no_grad():
        return {name: method.delta_weight(state.layers[name]).detach() for name in names}


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters with ``requires_grad`` (after ``apply_adapter``: the adapter's only), each once."""
    seen: set[int] = set()
    out = []
    modules = [model] if inner_model(model) is model else [model, inner_model(model)]
    for module in modules:
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def count_trainable(model: nn.Module) -> int:
    """Number of trainable scalars (shared tensors counted once)."""
    return sum(p.numel() for p in trainable_parameters(model))


def merge_adapter(model: nn.Module) -> nn.Module:
    """Fold ΔW into the base weights, restore plain ``nn.Linear`` layers and the original requires_grad flags."""
    state = _require_state(model)
    root = inner_model(model)
    method = get_method(state.method)
    method.merge(state, root)
    method.remove(state, root)
    for p, flag in state.frozen:
        p.requires_grad_(flag)
    object.__delattr__(root, STATE_ATTR)
    return model


def _tensors_for_saving(state: AdapterState) -> dict[str, torch.Tensor]:
    method = get_method(state.method)
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for name, layer in state.layers.items():
        for key, tensor in method.layer_tensors(layer).items():
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            out[f"{name}.{key}"] = tensor
    return out


def save_adapter(model: nn.Module, directory: str | Path, base_model: dict | None = None) -> Path:
    """Write ``adapter.safetensors`` (adapter tensors only) and ``adapter_config.json`` into ``directory``."""
    from safetensors.torch import save as save_tensors

    from ..atomic import write_bytes, write_json

    state = _require_state(model)
    directory = Path(directory)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in _tensors_for_saving(state).items()}
    config = state.config(model, base_model)
    config["tensors"] = len(tensors)
    write_bytes(directory / ADAPTER_WEIGHTS, save_tensors(tensors, metadata={"format": "pt", "method": state.method}))
    write_json(directory / ADAPTER_CONFIG, _jsonable(config))
    return directory


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def read_adapter_config(directory: str | Path) -> dict:
    """The parsed ``adapter_config.json`` of an adapter directory (AdapterError when missing or corrupt)."""
    path = Path(directory) / ADAPTER_CONFIG
    if not path.is_file():
        raise AdapterError(f"{directory} is not an adapter directory (no {ADAPTER_CONFIG})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterError(f"adapter config {path} is corrupt ({err.__class__.__name__})") from None
    required = {"method": str, "rank": int, "options": dict, "target_modules": list, "base_fingerprint": str}
    for key, kind in required.items():
        if not isinstance(config.get(key), kind):
            raise AdapterError(f"adapter config {path} is corrupt (field {key!r} missing or of the wrong type)")
    return config


def read_adapter_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``adapter.safetensors`` (AdapterError when missing or corrupt)."""
    from safetensors.torch import load as load_tensors

    path = Path(directory) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise AdapterError(f"adapter file {path} is missing")
    try:
        return load_tensors(path.read_bytes())
    except Exception as err:  # safetensors raises its own error types for bad bytes
        raise AdapterError(f"adapter file {path} is corrupt ({str(err).splitlines()[0][:120]})") from None


def load_adapter(model: nn.Module, directory: str | Path) -> list[nn.Module]:
    """Load a saved adapter into a fresh base ``model``: rebuild its structure from the config, copy the tensors.

    Any mismatch (other base weights, other modules, missing or misshapen tensors, bad bytes) raises
    AdapterError and leaves the model as it was.
    """
    directory = Path(directory)
    config = read_adapter_config(directory)
    tensors = read_adapter_tensors(directory)
    method = get_method(config["method"])
    path = directory / ADAPTER_WEIGHTS
    if get_state(model) is not None:
        raise AdapterError(
            f"the model already has a '{get_state(model).method}' adapter; load_adapter needs a fresh base model"
        )
    root = inner_model(model)
    names = config["target_modules"]
    modules = dict(root.named_modules())
    missing = [n for n in names if not isinstance(modules.get(n), nn.Linear)]
    if missing:
        raise AdapterError(
            f"adapter file {path} is mismatched: the model has no linear layer {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if base_fingerprint({n: modules[n] for n in names}) != config["base_fingerprint"]:
        raise AdapterError(_base_mismatch_message(path, config))
    _apply_exact(model, config, dict(config["options"]))
    state = get_state(model)
    for key in (*method.config_fields, "budget"):
        if key in config:
            state.extra[key] = config[key]
    try:
        _copy_tensors(state, tensors, path)
    except BaseException:
        _unapply(model)
        raise
    method.after_load(state)
    return list(state.layers.values())


def load_adapter_weights(model: nn.Module, directory: str | Path) -> list[nn.Module]:
    """Copy a saved adapter's tensors into the *same* adapter already applied to ``model`` (checkpoint reload).

    The saved method, target modules and base fingerprint must match the applied adapter's.
    """
    state = _require_state(model)
    directory = Path(directory)
    config = read_adapter_config(directory)
    tensors = read_adapter_tensors(directory)
    path = directory / ADAPTER_WEIGHTS
    if config["method"] != state.method or config["target_modules"] != state.target_modules:
        raise AdapterError(
            f"adapter file {path} is mismatched: it holds a '{config['method']}' adapter on "
            f"{len(config['target_modules'])} modules, the model carries a '{state.method}' adapter on "
            f"{len(state.target_modules)}"
        )
    if config["base_fingerprint"] != state.base_fingerprint:
        raise AdapterError(_base_mismatch_message(path, config))
    method = get_method(state.method)
    previous = method.before_reload(state)
    _copy_tensors(state, tensors, path)
    method.after_reload(state, previous)
    return list(state.layers.values())


def _copy_tensors(state: "AdapterState", tensors: dict[str, torch.Tensor], path: Path) -> None:
    expected = _tensors_for_saving(state)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        what = f"missing tensor {missing[0]}" if missing else f"unexpected tensor {unexpected[0]}"
        raise AdapterError(
            f"adapter file {path} is mismatched ({what}; {len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for key, target in expected.items():
        if tuple(tensors[key].shape) != tuple(target.shape):
            raise AdapterError(
                f"adapter file {path} is mismatched: tensor {key} has shape {tuple(tensors[key].shape)}, "
                f"expected {tuple(target.shape)}"
            )
    with torch.no_grad():
        for key, target in expected.items():
            target.copy_(tensors[key].to(target.device, target.dtype))


def _unapply(model: nn.Module) -> None:
    """Undo a freshly applied adapter whose tensors could not be loaded (puts the base layers back)."""
    state = _require_state(model)
    root = inner_model(model)
    get_method(state.method).remove(state, root)
    for name, layer in state.layers.items():
        base = layer.get_base_layer() if hasattr(layer, "get_base_layer") else layer.base
        set_submodule(root, name, base)
    for p, flag in state.frozen:
        p.requires_grad_(flag)
    object.__delattr__(root, STATE_ATTR)


def _apply_exact(model: nn.Module, config: dict, options: dict) -> list[nn.Module]:
    """Re-apply the method of ``config`` on exactly its target modules (used by load_adapter)."""
    names = config["target_modules"]
    pattern = "|".join(re.escape(n) for n in names)
    return _apply(model, config["method"], config["rank"], target_modules=pattern, budget=None,
                  base_model=config.get("base_model"), options=options, restore=config)


def _base_mismatch_message(path: Path, config: dict) -> str:
    base = config.get("base_model") or {}
    name = base.get("name") or "another model"
    return (
        f"adapter file {path} is mismatched: it was trained on base model {name} and this model's weights "
        "of the target modules differ"
    )


# --------------------------------------------------------------------------------------------------------------
# Diagnostics
# --------------------------------------------------------------------------------------------------------------


def effective_rank(singular_values: Iterable[float] | torch.Tensor) -> float:
    """exp of the Shannon entropy of p_i = σ_i / Σσ (Roy & Vetterli 2007); 0 when every σ is 0."""
    s = torch.as_tensor(singular_values).detach().to(torch.float64).abs().flatten()
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def adapter_spectra(model: nn.Module, layers: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """``{layer: {"singular_values": [...], "effective_rank": float}}`` of every adapted layer's ΔW
    (or of the named ``layers``); singular values in float64, descending."""
    out = {}
    for name, delta in delta_weights(model, layers).items():
        s = svd64(delta, full=False)
        out[name] = {"singular_values": s.tolist(), "effective_rank": effective_rank(s)}
    return out

