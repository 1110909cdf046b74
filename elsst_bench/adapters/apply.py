"""Putting an adapter on a model and taking it off: ``apply_adapter``, ``merge_adapter``.

``apply_adapter`` resolves the options (the method's typed config validates them), validates the rank,
optionally solves a parameter budget (:mod:`.budget`), freezes the whole model and lets the method replace
the target layers; the adapter's state (:class:`~.method.AdapterState`) is kept on the inner Hugging Face
model. ``merge_adapter`` folds ΔW into the base weights and puts the original ``nn.Linear`` objects back.
``planned_counts`` settles targets, options, budget and rank with the same helpers as ``apply_adapter`` and
counts what it would train, without building anything (what the leaderboard re-counts an entry with).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

from torch import nn

from ..errors import AdapterError
from .budget import record_achieved, solve_budget
from .values import positive_int
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
    targets = _targets(method, model, target_modules, options, restore)
    shapes = shapes_of(targets)
    inputs, plain = _split_options(method, name, options)
    if restore is None:
        plain = method.prepare(model, targets, inputs, plain)
    rank, resolved, budget_info = _settle(method, shapes, rank, plain, budget, options)

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
        base_model=identity, base_fingerprint=fingerprint, extra=extra, frozen=frozen, runtime=ctx.scratch,
    )
    object.__setattr__(root, STATE_ATTR, state)  # plain attribute, not a submodule
    if budget_info is not None:
        state.extra["budget"] = record_achieved(budget_info, count_trainable(model))
    return list(layers.values())


def _targets(method, model, target_modules, options: dict, restore) -> dict[str, nn.Linear]:
    """The target linears: those named, else the method's default (EigenLoRAx: its sources'), else every block
    linear."""
    if target_modules is None and restore is None:
        target_modules = method.default_target_modules(options)
    return find_target_modules(model, target_modules)


def _split_options(method, name: str, options: dict) -> tuple[dict, dict]:
    """``(apply-time inputs, options)`` of the caller's keyword options; an unknown one raises AdapterError."""
    unknown = sorted(set(options) - set(method.defaults) - set(method.inputs))
    if unknown:
        known = sorted(set(method.defaults) | set(method.inputs))
        raise AdapterError(
            f"unknown option {', '.join(unknown)} for adapter '{name}'; known: {', '.join(known) or 'none'}"
        )
    inputs = {k: options[k] for k in method.inputs if k in options}
    plain = {k: v for k, v in options.items() if k not in method.inputs}
    return inputs, plain


def _settle(method, shapes, rank: int, plain: dict, budget: str | None, given: dict) -> tuple[int, dict, dict | None]:
    """``(rank, resolved options, budget info)``: the budget solved (when one is given), the rank validated on the
    ``shapes``, the options resolved and checked against the rank. ``given``: the caller's own options (an α
    they fixed is kept when a budget changes the rank)."""
    budget_info = None
    if budget is not None:
        resolved = method.resolve_options(rank, plain, shapes)
        rank, plain, budget_info = solve_budget(method, shapes, budget, rank, resolved)
        if "alpha" in plain and "alpha" not in given:
            plain["alpha"] = None  # α follows the solved rank (α = 2r) unless the caller fixed it
    method.validate_rank(rank, shapes)
    resolved = method.resolve_options(rank, plain, shapes)
    method.check_rank_options(rank, resolved)
    return rank, resolved, budget_info


def planned_counts(
    model: nn.Module,
    name: str,
    rank: int = 8,
    *,
    target_modules: str | Iterable[str] | None = None,
    budget: str | None = None,
    **options: Any,
) -> Sequence[int]:
    """The trainable-parameter counts ``apply_adapter(model, name, rank, ...)`` can leave, from the target shapes
    alone: no layer is built, no weight is read (``model`` may live on the ``meta`` device).

    The targets, options, budget and rank are settled exactly as ``apply_adapter`` settles them (the same
    helpers), then the method counts (:meth:`~.method.Method.possible_counts`). One count, unless an apply-time
    input the caller does not pass decides it: EigenLoRAx's ``k`` when the options name none (its sources
    decide, :meth:`~.method.Method.apply_time_options`; the targets are then the default ones, as the sources'
    are unless they were trained on others), GeLoRA's per-block ranks unless ``layer_ranks`` is given (the
    intrinsic dimensions of its texts decide). Then every count those inputs can give, in increasing order (a
    ``range`` when there are many). Bad options raise AdapterError, as ``apply_adapter`` would.
    """
    method = get_method(name)
    rank = positive_int(rank, "rank")
    targets = _targets(method, model, target_modules, options, None)
    shapes = shapes_of(targets)
    inputs, plain = _split_options(method, name, options)
    found: list[Sequence[int]] = []
    error = None
    for variant in method.apply_time_options(plain):
        try:
            solved, resolved, _ = _settle(method, shapes, rank, dict(variant), budget, options)
            found.append(method.possible_counts(shapes, solved, resolved, inputs))
        except AdapterError as err:  # an input this variant assumes cannot exist with these options
            error = error or err
    if not found:
        raise error
    if len(found) == 1:
        return found[0]
    return tuple(sorted(set().union(*found)))


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
