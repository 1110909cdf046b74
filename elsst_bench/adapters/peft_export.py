"""A native adapter as a standard PEFT LoRA adapter (``adapter_config.json`` + ``adapter_model.safetensors``).

Every native method here changes each target linear by a matrix ΔW (:func:`.spectra.delta_weights`). Where
ΔW has rank k ≤ r in a layer — LoRA (ΔW = s·BA), OrthoGeoLoRA (s·U diag(σ) Vᵀ), GeLoRA (per-layer ranks),
EigenLoRAx and PiCa — it is written as the LoRA pair that gives exactly that ΔW: with the thin SVD
ΔW = U S Vᵀ (float64), ``lora_B = U_k S_k`` and ``lora_A = V_kᵀ``, and ``lora_alpha = r`` per layer, so PEFT's
scale α/r is 1 and PEFT computes x ↦ W x + B A x = (W + ΔW) x. The numerical rank k counts the singular values
above ``RANK_TOL`` · σ₁; a layer whose ΔW has more than r of them (SMoA's block-diagonal mixture is full rank) has
no exact LoRA form, and the export is refused. Layers of different ranks are written with PEFT's
``rank_pattern``/``alpha_pattern``. PEFT builds and saves the adapter itself (``get_peft_model`` on the bare
transformer, then ``save_pretrained``), so the files are what PEFT writes.

PEFT's own methods (DoRA, PiSSA, VeRA, HRA) are not converted here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import AdapterError
from .method import require_state
from .registry import method_info
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
    """Write the adapter applied to ``model`` (a SentenceTransformer or encoder) as a PEFT LoRA adapter."""
    from peft import LoraConfig, get_peft_model

    state = require_state(model)
    if not method_info(state.method).lora_form:
        raise AdapterError(f"{state.method} has no exact LoRA form (MethodInfo.lora_form); export it merged")
    bound = max([state.rank] + [int(getattr(layer, "rank", 0) or 0) for layer in state.layers.values()])
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
    bare = _bare_copy(model, state)
    peft_model = get_peft_model(bare, config)
    with torch.no_grad():
        for name, (b, a) in factors.items():
            layer = peft_model.base_model.model.get_submodule(name)
            layer.lora_A["default"].weight.copy_(a)
            layer.lora_B["default"].weight.copy_(b)
    directory = Path(directory)
    peft_model.save_pretrained(str(directory))
    return directory


def _bare_copy(model, state):
    """A copy of the encoder with every adapted layer put back to its base ``nn.Linear`` (what PEFT wraps)."""
    import copy

    from .targets import set_submodule

    root = copy.deepcopy(inner_model(model))
    for name in state.layers:
        layer = root.get_submodule(name)
        base = getattr(layer, "base", None)
        if base is None:
            raise AdapterError(f"{name} keeps no base linear; cannot build the PEFT model")
        set_submodule(root, name, base)
    for attr in [a for a in vars(root) if a.startswith("_elsst")]:
        delattr(root, attr)
    return root
