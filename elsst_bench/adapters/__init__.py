"""Parameter-efficient adapters for the encoder inside a SentenceTransformer, behind one interface.

Public API (this module is the only public surface; everything below is importable from it)::

    available_adapters() -> list[str]                     # every adapter, in registry order
    available_methods() -> list[str]                      # the adapters, then the baselines none, full
    method_info(name) -> MethodInfo                       # torch-free entry: source, formula, knob, summary,
                                                          #   config_class, default_lr, trains, is_adapter,
                                                          #   training_inputs(anchors, sources, options=None)
    describe_adapters() -> list[dict]                     # name, source, params formula, knob, summary
    LoRAConfig, OrthoGeoLoRAConfig, ... (MethodConfig)    # typed options: defaults, validation, default_lr
    get_method(name) -> Method                            # the implementation (refuses the baselines)
    apply_adapter(model, name, rank=8, *, target_modules=None, budget=None, base_model=None, **options)
        -> list[nn.Module]                                # adapted layers, each with delta_weight()
    merge_adapter(model) -> model
    save_adapter(model, directory, base_model=None) -> Path
    load_adapter(model, directory) -> list[nn.Module]      # fresh base model: rebuilds the structure
    load_adapter_weights(model, directory) -> list[nn.Module]  # same adapter already applied (checkpoints)
    read_adapter_config(directory) -> dict; read_adapter_tensors(directory) -> dict[str, Tensor]
    adapter_config(model) -> dict                         # what save_adapter writes to adapter_config.json
    trainable_parameters(model) -> list[nn.Parameter]; count_trainable(model) -> int
    planned_counts(model, name, rank=8, *, target_modules=None, budget=None, **options) -> Sequence[int]
                                                          # what apply_adapter would train, from shapes alone
    budget_params(model, budget="lora-r8", target_modules=None) -> int
    adapter_spectra(model) -> {layer: {"singular_values": [...], "effective_rank": float}}
    delta_weights(model) -> {layer: ΔW}; effective_rank(singular_values) -> float
    export_peft(model, directory, base_name=None) -> Path  # a PEFT adapter: exact-ΔW LoRA or PEFT's own type

``model`` is a SentenceTransformer (its ``model[0].auto_model`` is adapted) or any torch module. Methods:
``lora``, ``orthogeolora``, ``gelora``, ``smoa``, ``eigenlorax``, ``pica`` (native), ``dora``, ``pissa``,
``vera``, ``hra`` (PEFT, wrapped) and fourteen more of PEFT's tuners, one small class each (:mod:`.peft_tuners`;
their configs in :mod:`.tuner_configs`). ``full`` and ``none`` are baselines: registry entries (``method_info``) that the
training layer handles; ``get_method``/``apply_adapter`` refuse them. Bad input raises
:class:`elsst_bench.errors.AdapterError` with one clear sentence. The mathematics is in docs/methods.md and in
each method module's docstring. The base model identity recorded in an adapter config is whatever the caller
passes as ``base_model`` (the training layer passes :func:`elsst_bench.models.model_identity`;
:func:`elsst_bench.models.infer_base_identity` tells it for a loaded model); without one only what the module
itself tells is recorded. This library does not know which encoder the benchmark ships.

Why this shape. Choosing, describing and configuring a method must not import torch (``elsst-bench sweep
--dry-run``, ``elsst-bench adapters`` and the training configuration stay instant; importing torch, PEFT and
transformers costs seconds), while applying one needs torch. So the package splits along that line:

* torch-free: :mod:`.configs` (every method's typed config: options, defaults, validation, default learning
  rate, training inputs), :mod:`.registry` (one :class:`MethodInfo` per method, naming its implementation as
  ``"module:Class"``), :mod:`.layout` (the adapter directory's files and config), :mod:`.names` (what a module
  name says), :mod:`.budget` (budget specs and the solver);
* torch: :mod:`.targets` (the encoder, its target linears, fingerprints, trainable parameters),
  :mod:`.layers` (the adapted-layer contract and shared numerics), :mod:`.method` (the ``Method`` ABC and the
  applied state), :mod:`.apply` (apply and merge), :mod:`.io` (save and load), :mod:`.spectra` (ΔW
  diagnostics), and one module per method family (``lora``, ``orthogeolora``, ``gelora``, ``smoa``,
  ``eigenlorax``, ``pica``, ``peft_methods``).

The registry imports an implementation only in ``get_method`` (so a method's description lives in the
registry table, its options in its config, its mathematics in its module: one home each), and this module
resolves the torch-needing names on first access (PEP 562 ``__getattr__``). A config class per method rather
than option dicts on the ``Method`` classes is what lets the options be validated, and their defaults read,
without the implementation: the ``Method`` class points at its config (``config_class``) and validates
through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .budget import budget_params, parse_budget
from .configs import (
    DoRAConfig,
    EigenLoRAxConfig,
    FullConfig,
    GeLoRAConfig,
    HRAConfig,
    LoRAConfig,
    MethodConfig,
    NoneConfig,
    OrthoGeoLoRAConfig,
    PiCaConfig,
    PiSSAConfig,
    SMoAConfig,
    VeRAConfig,
)
from .layout import ADAPTER_CONFIG, ADAPTER_WEIGHTS, read_adapter_config
from .registry import (
    MethodInfo,
    available_adapters,
    available_methods,
    describe_adapters,
    get_method,
    method_info,
    register,
)

if TYPE_CHECKING:  # pragma: no cover - what __getattr__ resolves, for type checkers and editors
    from .apply import adapted_layers, apply_adapter, merge_adapter, planned_counts
    from .gelora import apportion, twonn_dimension
    from .io import adapter_config, load_adapter, load_adapter_weights, read_adapter_tensors, save_adapter
    from .layers import AdaptedLinear
    from .method import Method, get_state, has_adapter
    from .spectra import adapter_spectra, delta_weights, effective_rank
    from .targets import count_trainable, find_target_modules, inner_model, trainable_parameters

#: names that need torch, and the module each lives in (imported on first access)
_LAZY = {
    "AdaptedLinear": ".layers",
    "Method": ".method",
    "get_state": ".method",
    "has_adapter": ".method",
    "inner_model": ".targets",
    "find_target_modules": ".targets",
    "trainable_parameters": ".targets",
    "count_trainable": ".targets",
    "apply_adapter": ".apply",
    "merge_adapter": ".apply",
    "planned_counts": ".apply",
    "adapted_layers": ".apply",
    "save_adapter": ".io",
    "load_adapter": ".io",
    "load_adapter_weights": ".io",
    "read_adapter_tensors": ".io",
    "adapter_config": ".io",
    "adapter_spectra": ".spectra",
    "delta_weights": ".spectra",
    "effective_rank": ".spectra",
    "export_peft": ".peft_export",
    "apportion": ".gelora",
    "twonn_dimension": ".gelora",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "AdaptedLinear",
    "DoRAConfig",
    "EigenLoRAxConfig",
    "FullConfig",
    "GeLoRAConfig",
    "HRAConfig",
    "LoRAConfig",
    "Method",
    "MethodConfig",
    "MethodInfo",
    "NoneConfig",
    "OrthoGeoLoRAConfig",
    "PiCaConfig",
    "PiSSAConfig",
    "SMoAConfig",
    "VeRAConfig",
    "adapted_layers",
    "adapter_config",
    "adapter_spectra",
    "apply_adapter",
    "available_adapters",
    "available_methods",
    "budget_params",
    "count_trainable",
    "delta_weights",
    "describe_adapters",
    "effective_rank",
    "export_peft",
    "find_target_modules",
    "get_method",
    "get_state",
    "has_adapter",
    "inner_model",
    "load_adapter",
    "load_adapter_weights",
    "merge_adapter",
    "method_info",
    "parse_budget",
    "planned_counts",
    "read_adapter_config",
    "read_adapter_tensors",
    "register",
    "save_adapter",
    "trainable_parameters",
]
