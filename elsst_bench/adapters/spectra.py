"""Diagnostics of the update: every adapted layer's ΔW, its singular values and effective rank.

The effective rank is exp(H(p)) with p_i = σ_i / Σσ (Roy & Vetterli 2007): 1 when one direction carries
everything, r when r directions carry equal mass, 0 for ΔW = 0. A LoRA update that drifts toward rank
collapse shows an effective rank well below its nominal rank r.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from ..errors import AdapterError
from .layers import svd64
from .method import require_state
from .registry import get_method


def delta_weights(model: nn.Module, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """``{layer: ΔW}`` (torch layout, detached) of every adapted layer, or of the named ``layers``."""
    state = require_state(model)
    method = get_method(state.method)
    names = list(state.layers) if layers is None else list(layers)
    unknown = [n for n in names if n not in state.layers]
    if unknown:
        raise AdapterError(f"{unknown[0]} is not an adapted layer of this model")
    with torch.no_grad():
        return {name: method.delta_weight(state.layers[name]).detach() for name in names}


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
