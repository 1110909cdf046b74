"""Parameter-efficient adapters for the encoder inside a SentenceTransformer, behind one interface.

Public API::

    available_adapters() -> list[str]
    describe_adapters() -> list[dict]                     # name, source, params formula, knob, summary
    apply_adapter(model, name, rank=8, *, target_modules=None, budget=None, base_model=None, **options)
        -> list[nn.Module]                                # adapted layers, each with delta_weight()
    merge_adapter(model) -> model
    save_adapter(model, directory, base_model=None) -> Path
    load_adapter(model, directory) -> list[nn.Module]      # fresh base model: rebuilds the structure
    load_adapter_weights(model, directory) -> list[nn.Module]  # same adapter already applied (checkpoints)
    trainable_parameters(model) -> list[nn.Parameter]
    count_trainable(model) -> int
    budget_params(model, budget="lora-r8", target_modules=None) -> int
    adapter_spectra(model) -> {layer: {"singular_values": [...], "effective_rank": float}}
    adapter_config(model) -> dict                         # what save_adapter writes to adapter_config.json

``model`` is a SentenceTransformer (its ``model[0].auto_model`` is adapted) or any torch module. Methods:
``lora``, ``orthogeolora``, ``gelora``, ``smoa``, ``eigenlorax``, ``pica`` (native) and ``dora``, ``pissa``,
``vera``, ``hra`` (PEFT). ``full`` and ``none`` are baselines the training layer handles. Bad input raises
:class:`elsst_bench.errors.AdapterError` with one clear sentence. The mathematics is in METHODS.md and in
each module's docstring.
"""

from __future__ import annotations

from . import lora, orthogeolora, gelora, smoa, eigenlorax, pica, peft_methods  # noqa: F401  (registration order)
from .base import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    BASELINES,
    AdaptedLinear,
    adapted_layers,
    adapter_spectra,
    apply_adapter,
    available_adapters,
    budget_params,
    count_trainable,
    delta_weights,
    describe_adapters,
    effective_rank,
    find_target_modules,
    get_method,
    get_state,
    inner_model,
    load_adapter,
    load_adapter_weights,
    merge_adapter,
    read_adapter_config,
    save_adapter,
    trainable_parameters,
)
from .gelora import apportion, twonn_dimension


def adapter_config(model) -> dict:
    """The adapter config ``save_adapter`` would write (method, options, rank, targets, identity, counts...)."""
    from .base import _jsonable, _require_state

    return _jsonable(_require_state(model).config(model))


def has_adapter(model) -> bool:
    return get_state(model) is not None


__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "BASELINES",
    "AdaptedLinear",
    "adapted_layers",
    "adapter_config",
    "adapter_spectra",
    "apply_adapter",
    "apportion",
    "available_adapters",
    "budget_params",
    "count_trainable",
    "delta_weights",
    "describe_adapters",
    "effective_rank",
    "find_target_modules",
    "get_method",
    "has_adapter",
    "inner_model",
    "load_adapter",
    "load_adapter_weights",
    "merge_adapter",
    "read_adapter_config",
    "save_adapter",
    "trainable_parameters",
    "twonn_dimension",
]
