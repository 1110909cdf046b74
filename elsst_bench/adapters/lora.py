"""LoRA (Hu et al. 2021), the reference every other method is measured against.

    ΔW = s · B A,   A ∈ R^{r×d_in} (Kaiming-uniform, a=√5, as PEFT),   B ∈ R^{d_out×r} = 0,   s = α / r.

Default α = 2r (so s = 2), as in docs/methods.md. Parameters per module: r (d_in + d_out). Options: ``rslora=true``
scales by α/√r (rank-stabilised LoRA, Kalajdzievski 2023; PEFT's ``use_rslora``); ``init`` picks the starting factors
(:mod:`.lora_inits`: ``default``, ``gaussian``, ``olora``, ``eva``, ``corda``, ``lora-ga``). An init with B0 A0 ≠ 0
(olora, corda, lora-ga) trains against the residual: ΔW = s (BA − B0 A0), the frozen A0, B0 kept as buffers, so
ΔW = 0 exactly at init and ΔW has rank ≤ 2r (what a PEFT export may need). The same parameter count either way.
Forward: ``base(x) + lora_B(lora_A(x)) · s`` computed with the same ops in the same order as PEFT's
``lora.Linear`` (no dropout), so for the same A and B the outputs agree to the last bit in practice
(the test allows 1e-6); with a residual init, ``base(x) + (lora_B(lora_A(x)) − B0(A0(x))) · s``. Dropout is not
offered: PEFT's default is 0 and the benchmark uses none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .configs import LoRAConfig
from .layers import AdaptedLinear
from .lora_inits import lora_init, read_data, scaling
from .method import BuildContext, NativeMethod


class LoRALinear(AdaptedLinear):
    """y = W0 x + b + s · B (A x); with ``residual``, y = W0 x + b + s · (B (A x) − B0 (A0 x))."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, rslora: bool = False, init: str = "default",
                 data=None, residual: bool | None = None):
        """``init`` names the starting factors (:data:`.lora_inits.LORA_INITS`; ``data``: what it reads for this
        layer, its input statistics or its loss gradient); ``residual`` defaults to the init's own."""
        super().__init__(base)
        self.rank = rank
        self.scaling = scaling(alpha, rank, rslora)
        start = lora_init(init)
        a, b = start.factors(base, rank, self.scaling, data)
        self.lora_A = nn.Parameter(a)
        self.lora_B = nn.Parameter(b)
        self.residual = start.residual if residual is None else residual
        if self.residual:  # load_adapter overwrites them with the saved ones
            self.register_buffer("lora_A0", a.detach().clone())
            self.register_buffer("lora_B0", b.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(x, self.lora_A), self.lora_B)
        if self.residual:  # the same ops on A0, B0: exactly 0 while A = A0 and B = B0
            update = update - F.linear(F.linear(x, self.lora_A0), self.lora_B0)
        return self.base(x) + update * self.scaling

    def delta_weight(self) -> torch.Tensor:
        if self.residual:
            return (self.lora_B @ self.lora_A - self.lora_B0 @ self.lora_A0) * self.scaling
        return (self.lora_B @ self.lora_A) * self.scaling

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling:g}"


class LoRA(NativeMethod):
    config_class = LoRAConfig

    def count(self, shapes, rank, options):
        return sum(rank * (d_out + d_in) for d_out, d_in in shapes.values())

    def build(self, ctx: BuildContext):
        if ctx.restore is None:  # a reload gets the saved factors instead
            ctx.scratch["data"] = read_data(lora_init(ctx.options["init"]), ctx.model, ctx.targets, ctx.inputs)
        return super().build(ctx)

    def make_layer(self, name: str, base: nn.Linear, ctx: BuildContext) -> LoRALinear:
        alpha, rslora, start = ctx.options["alpha"], ctx.options["rslora"], lora_init(ctx.options["init"])
        if ctx.restore is not None or start.name == "default":  # a reload: load_adapter copies the saved factors in
            return LoRALinear(base, ctx.rank, alpha, rslora, "default", residual=start.residual)
        return LoRALinear(base, ctx.rank, alpha, rslora, start.name, ctx.scratch["data"].get(name))

    def lora_rank_bound(self, state):
        # ΔW = s(BA − B0 A0) has rank ≤ 2r with a residual init
        return (2 if lora_init(state.options["init"]).residual else 1) * state.rank
