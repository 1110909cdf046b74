"""A run's adapter as a standard PEFT adapter (``adapter_config.json`` + ``adapter_model.safetensors``).

Every native method here changes each target linear by a matrix ΔW (:func:`.spectra.delta_weights`). Where
ΔW has rank k ≤ r in a layer — LoRA (ΔW = s·BA), OrthoGeoLoRA (s·U diag(σ) Vᵀ), GeLoRA (per-layer ranks),
EigenLoRAx and PiCa — it is written as the LoRA pair that gives exactly that ΔW: with the thin SVD
ΔW = U S Vᵀ (float64), ``lora_B = U_k S_k`` and ``lora_A = V_kᵀ``, and ``lora_alpha = r`` per layer, so PEFT's
scale α/r is 1 and PEFT computes x ↦ W x + B A x = (W + ΔW) x. The numerical rank k counts the singular values
above ``RANK_TOL`` · σ₁; a layer whose ΔW has more of them than the method's bound (r; SMoA's block-diagonal
mixture is full rank) has no exact LoRA form, and the export is refused. Layers of different ranks are written with PEFT's
``rank_pattern``/``alpha_pattern``. PEFT builds and saves the adapter itself (``get_peft_model`` on the bare
transformer, then ``save_pretrained``), so the files are what PEFT writes.

PEFT's own methods are written as they are (``peft_form = "own"``): DoRA, VeRA and HRA as PEFT adapters of
their own type, built by PEFT from the method's config (:meth:`.method.Method.own_peft_config`) with the run's
trained tensors copied into PEFT's layers; PiSSA, whose own form needs its residual base W0 − s·B0 A0, as the
exact LoRA of ΔW = s(BA − B0 A0), of rank ≤ 2r (:meth:`.method.Method.lora_rank_bound`), which is what PEFT's
own PiSSA-to-LoRA conversion writes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import AdapterError
from .method import require_state
from .registry import get_method, method_info
from .spectra import delta_weights
from .targets import inner_model

#: Singular values below this fraction of the largest one are float noise, not rank.
RANK_TOL = 1e-6


def lora_factors(delta: torch.Tensor, max_rank: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, A)`` with ``B @ A == delta`` (float64 SVD, numerical rank ≤ ``max_rank``), or an AdapterError."""
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    k = int((s > RANK_TOL * s[0]).sum()) if len(s) and s[0] > 0 else 0
    if k > max_rank:
        raise AdapterError(f"{name}: ΔW has rank {k} > {max_rank}, so it has no exact LoRA form")
    k = max(k, 1)  # an untouched layer: one zero pair
    return (u[:, :k] * s[:k]).to(delta.dtype), vh[:k].to(delta.dtype)


def export_peft(model, directory: str | Path, *, base_name: str | None = None) -> Path:
    """Write the adapter applied to ``model`` (a SentenceTransformer or encoder) as a PEFT adapter: its own
    PEFT type, or the LoRA adapter with the exact ΔW (the registry's ``peft_form``)."""
    state = require_state(model)
    form = method_info(state.method).peft_form
    if form is None:
        raise AdapterError(f"{state.method} has no PEFT form (MethodInfo.peft_form); export it merged")
    build = _own_adapter if form == "own" else _lora_adapter
    peft_model = build(model, state, base_name)
    directory = Path(directory)
    peft_model.save_pretrained(str(directory))
    return directory


def _lora_adapter(model, state, base_name):
    from peft import LoraConfig, get_peft_model

    bound = get_method(state.method).lora_rank_bound(state)
    factors = {}
    for name, delta in delta_weights(model).items():
        try:
            factors[name] = lora_factors(delta, bound, name)
        except AdapterError as err:
            raise AdapterError(f"{state.method} cannot be exported as a LoRA adapter ({err}); "
                               "use export --merged") from None
    ranks = {name: b.shape[1] for name, (b, _) in factors.items()}
    r = max(ranks.values())
    pattern = {name: k for name, k in ranks.items() if k != r}
    config = LoraConfig(r=r, lora_alpha=r, target_modules=sorted(factors), lora_dropout=0.0, bias="none",
                        rank_pattern=pattern, alpha_pattern=dict(pattern), base_model_name_or_path=base_name)
    peft_model = get_peft_model(_bare_copy(model, state), config)
    with torch.no_grad():
        for name, (b, a) in factors.items():
            layer = peft_model.base_model.model.get_submodule(name)
            layer.lora_A["default"].weight.copy_(a)
            layer.lora_B["default"].weight.copy_(b)
    return peft_model


def _own_adapter(model, state, base_name):
    """PEFT builds the method's own adapter on the bare encoder; every adapter tensor of the run (trained ones
    and VeRA's shared projections) is copied into the layer of the same name."""
    from peft import get_peft_model

    method = get_method(state.method)
    config = method.own_peft_config(state)
    config.base_model_name_or_path = base_name
    peft_model = get_peft_model(_bare_copy(model, state), config)
    with torch.no_grad():
        for name, layer in state.layers.items():
            target = peft_model.base_model.model.get_submodule(name)
            theirs = {**dict(target.named_parameters()), **dict(target.named_buffers())}
            ours = {k: t for k, t in [*layer.named_parameters(), *layer.named_buffers()]
                    if not k.startswith("base_layer.")}
            unplaced = sorted(k for k, t in ours.items() if k not in theirs and t.requires_grad)
            if unplaced:  # pragma: no cover - PEFT renamed its tensors
                raise AdapterError(f"{name}: PEFT's {type(config).__name__} has no place for {unplaced}")
            for key, tensor in ours.items():
                if key in theirs:
                    theirs[key].copy_(tensor)
    return peft_model


def _bare_copy(model, state):
    """A copy of the encoder with every adapted layer put back to its base ``nn.Linear`` (what PEFT wraps)."""
    import copy

    from .targets import set_submodule

    root = copy.deepcopy(inner_model(model))
    for name in state.layers:
        layer = root.get_submodule(name)
        # our layers keep the base linear as ``base``; PEFT's layers (the PEFT methods) as ``base_layer``
        base = getattr(layer, "base", None)
        if base is None:
            base = getattr(layer, "base_layer", None)
        if base is None:
            raise AdapterError(f"{name} keeps no base linear; cannot build the PEFT model")
        set_submodule(root, name, base)
    for attr in [a for a in vars(root) if a.startswith("_elsst")]:
        delattr(root, attr)
    return root
