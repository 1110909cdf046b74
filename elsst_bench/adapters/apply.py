"""Putting an adapter on a model and taking it off: ``apply_adapter``, ``merge_adapter``.

``apply_adapter`` resolves the options (the method's typed config validates them), validates the rank,
optionally solves a parameter budget (:mod:`.budget`), freezes the whole model and lets the method replace
the target layers; the adapter's state (:class:`~.method.AdapterState`) is kept on the inner Hugging Face
model. ``merge_adapter`` folds ΔW into the base weights and puts the original ``nn.Linear`` objects back.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from torch import nn

from ..errors import AdapterError
from .budget import record_achieved, solve_budget
from .configs import positive_int
from .method import STATE_ATTR, AdapterState, BuildContext, require_state
from .registry import get_method
from .targets import base_fingerprint, count_trainable, find_target_modules, inner_model, module_identity, \
    set_submodule, shapes_of


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
    ``"budget"``). ``base_model`` is the identity dict saved in the config; without it only what the module
    itself tells is recorded (:func:`~.targets.module_identity`: its weights directory, or None) — the training
    layer passes :func:`elsst_bench.models.model_identity`. Returns the adapted layers in module order; each
    has ``delta_weight()``.
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
    identity = base_model if base_model is not None else module_identity(model)
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
        state.extra["budget"] = record_achieved(budget_info, count_trainable(model))
    return list(layers.values())


def apply_exact(model: nn.Module, config: dict, options: dict) -> list[nn.Module]:
    """Re-apply the method of a saved ``config`` on exactly its target modules (what load_adapter does)."""
    names = config["target_modules"]
    pattern = "|".join(re.escape(n) for n in names)
    return _apply(model, config["method"], config["rank"], target_modules=pattern, budget=None,
                  base_model=config.get("base_model"), options=options, restore=config)


def unapply(model: nn.Module) -> None:
    """Undo a freshly applied adapter whose tensors could not be loaded (puts the base layers back)."""
    state = require_state(model)
    root = inner_model(model)
    get_method(state.method).remove(state, root)
    for name, layer in state.layers.items():
        base = layer.get_base_layer() if hasattr(layer, "get_base_layer") else layer.base
        set_submodule(root, name, base)
    for p, flag in state.frozen:
        p.requires_grad_(flag)
    object.__delattr__(root, STATE_ATTR)


def adapted_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{module name: adapted layer}`` of the model's adapter."""
    return dict(require_state(model).layers)


def merge_adapter(model: nn.Module) -> nn.Module:
    """Fold ΔW into the base weights, restore plain ``nn.Linear`` layers and the original requires_grad flags."""
    state = require_state(model)
    root = inner_model(model)
    method = get_method(state.method)
    method.merge(state, root)
    method.remove(state, root)
    for p, flag in state.frozen:
        p.requires_grad_(flag)
    object.__delattr__(root, STATE_ATTR)
    return model
