"""SMoA (arXiv 2601.07507): high-rank structured modulation of the frozen weight in spectral subspaces.

    W0 = U Σ Vᵀ;  split the singular indices into K contiguous groups of (about) equal singular-value mass;
    W0^(k) = U_k Σ_k V_kᵀ;
    ΔW = s · Σ_k W0^(k) ⊙ (B_k A_k),   B_k ∈ R^{d_out×r_k} = 0,   A_k ∈ R^{r_k×d_in} Kaiming-uniform (a=√5),
    s = α / r.

Default K = 2 and r_k = r / K (when K does not divide r the first r mod K groups get one more), so the
parameter count Σ_k r_k (d_in + d_out) equals LoRA rank r's, while rank(ΔW) can reach min(d_in, d_out):
the Hadamard product with a full-rank W0^(k) lifts the rank of B_k A_k. K = 1 is Hadamard modulation of the
whole W0 (HiRA): ΔW = s · W0 ⊙ (B A) with W0 itself (no SVD round trip).

Choices that are ours (the paper's recipe is not public in detail):
* group boundaries: boundary k sits at the index whose cumulative singular-value mass is closest to k/K,
  moved so that every group keeps at least one index;
* s = α / r with α = 2r, as LoRA;
* the weight path: ΔW is not factored in activation space (W0^(k) ⊙ B_k A_k x costs r_k full matmuls), so
  the forward builds W0 + ΔW (K small d_out×r_k×d_in products and Hadamards) and runs one F.linear; that is
  exact and the fastest form measured. The K frozen W0^(k) are non-persistent buffers recomputed from W0
  (an SVD in float64) when the adapter is rebuilt, so the saved file holds only A_k and B_k.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AdapterError
from .configs import SMoAConfig
from .layers import AdaptedLinear, kaiming_uniform_like_linear, single_threaded, svd64
from .method import BuildContext, NativeMethod


def spectral_groups(singular_values: torch.Tensor, k: int) -> list[slice]:
    """K contiguous index ranges of about equal singular-value mass (each non-empty)."""
    n = singular_values.numel()
    if k > n:
        raise AdapterError(f"smoa cannot split {n} singular values into {k} groups")
    s = singular_values.double().clamp_min(0)
    total = float(s.sum())
    before = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(s, 0)[:-1]]) / (total if total > 0 else 1)
    bounds = [0]
    for j in range(1, k):
        if total > 0:
            index = int(torch.argmin((before - j / k).abs()))
        else:
            index = round(j * n / k)
        index = max(index, bounds[-1] + 1)
        index = min(index, n - (k - j))
        bounds.append(index)
    bounds.append(n)
    return [slice(bounds[j], bounds[j + 1]) for j in range(k)]


def group_ranks(rank: int, k: int) -> list[int]:
    return [rank // k + (1 if j < rank % k else 0) for j in range(k)]


class SMoALinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, groups: int):
        super().__init__(base)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.rank = rank
        self.groups = groups
        self.scaling = alpha / rank
        w0 = base.weight.detach()
        if groups == 1:
            parts = w0.clone().unsqueeze(0)
            self.group_sizes = [min(w0.shape)]
        else:
            u, s, vh = svd64(w0)
            slices = spectral_groups(s, groups)
            with single_threaded():
                parts = torch.stack([(u[:, g] * s[g]) @ vh[g] for g in slices]).to(**factory)
            self.group_sizes = [g.stop - g.start for g in slices]
        self.register_buffer("parts", parts, persistent=False)
        ranks = group_ranks(rank, groups)
        self.lora_A = nn.ParameterList(
            [nn.Parameter(kaiming_uniform_like_linear(torch.empty(r, base.in_features, **factory))) for r in ranks]
        )
        self.lora_B = nn.ParameterList([nn.Parameter(torch.zeros(base.out_features, r, **factory)) for r in ranks])

    def delta_weight(self) -> torch.Tensor:
        delta = None
        for part, a, b in zip(self.parts, self.lora_A, self.lora_B):
            term = part * (b @ a)
            delta = term if delta is None else delta + term
        return delta * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.base.weight + self.delta_weight(), self.base.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, groups={self.group_sizes}, scaling={self.scaling:g}"


class SMoA(NativeMethod):
    config_class = SMoAConfig  # k ≥ 1, k ≤ min(d_in, d_out), rank ≥ k

    def count(self, shapes, rank, options):
        return sum(rank * (d_out + d_in) for d_out, d_in in shapes.values())

    def make_layer(self, name: str, base: nn.Linear, ctx: BuildContext) -> SMoALinear:
        return SMoALinear(base, ctx.rank, ctx.options["alpha"], ctx.options["k"])
