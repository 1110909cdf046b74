"""PiCa (arXiv 2505.20211): updates projected onto the column space of the pretrained weight.

    ΔW = M P,   P ∈ R^{r×d_in}: top-r right singular vectors of W0 (frozen buffer),   M ∈ R^{d_out×r} = 0.

In torch layout (y = W x) the paper's "column space of W" is the span of W0's top-r right singular vectors,
so ∂L/∂M = (∂L/∂W) Pᵀ: the gradient is the full weight gradient projected onto P, which is what brings
PiCa's dynamics close to full fine-tuning. There is no α/r scale (the paper has none).

Weight sharing (``shared=True``, default): one M per module type (the module name with its block index
replaced by ``*``: q, k, v, attention output, FFN in, FFN out) shared by every block; each layer keeps its
own P. Then ∂L/∂M = Σ_layers (∂L/∂W_ℓ) P_ℓᵀ. Parameters: Σ_types r·d_out shared, Σ_layers r·d_out unshared.

Forward: base(x) + (x Pᵀ) Mᵀ (activation path; no d_out×d_in product). P is saved in the adapter file
(r×d_in per layer, small) because singular vectors have arbitrary signs across LAPACK builds; a shared M
is stored once, under the first layer of its type. SVDs run in float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configs import PiCaConfig
from .layers import AdaptedLinear, svd64
from .method import BuildContext, NativeMethod
from .names import module_type


class PiCaLinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, rank: int, m: nn.Parameter | None = None, compute_projection: bool = True):
        super().__init__(base)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.rank = rank
        if compute_projection:
            _, _, vh = svd64(base.weight)
            projection = vh[:rank].to(**factory).contiguous()
        else:  # load_adapter overwrites it with the saved projection
            projection = torch.zeros(rank, base.in_features, **factory)
        self.register_buffer("P", projection)
        self.M = m if m is not None else nn.Parameter(torch.zeros(base.out_features, rank, **factory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.P), self.M)

    def delta_weight(self) -> torch.Tensor:
        return self.M @ self.P

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}"


class PiCa(NativeMethod):
    config_class = PiCaConfig

    @staticmethod
    def _groups(shapes) -> dict[tuple[str, int], list[str]]:
        groups: dict[tuple[str, int], list[str]] = {}
        for name, (d_out, _) in shapes.items():
            groups.setdefault((module_type(name), d_out), []).append(name)
        return groups

    def count(self, shapes, rank, options):
        if options.get("shared", True):
            return sum(rank * d_out for (_, d_out) in self._groups(shapes))
        return sum(rank * d_out for d_out, _ in shapes.values())

    def make_layer(self, name: str, base: nn.Linear, ctx: BuildContext) -> PiCaLinear:
        m = None
        if ctx.options["shared"]:
            shared = ctx.scratch.setdefault("shared", {})
            key = (module_type(name), base.out_features)
            if key not in shared:
                shared[key] = nn.Parameter(
                    torch.zeros(base.out_features, ctx.rank, device=base.weight.device, dtype=base.weight.dtype)
                )
            m = shared[key]
        return PiCaLinear(base, ctx.rank, m, compute_projection=ctx.restore is None)
