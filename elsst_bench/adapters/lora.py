"""LoRA (Hu et al. 2021), the reference every other method is measured against.

    ΔW = s · B A,   A ∈ R^{r×d_in} (Kaiming-uniform, a=√5, as PEFT),   B ∈ R^{d_out×r} = 0,   s = α / r.

Default α = 2r (so s = 2), as in docs/methods.md. Parameters per module: r (d_in + d_out). Options: ``rslora=true``
scales by α/√r (rank-stabilised LoRA, Kalajdzievski 2023; PEFT's ``use_rslora``); ``init="gaussian"`` draws A from
N(0, 1/r) (PEFT's ``init_lora_weights="gaussian"``). ΔW = 0 at init either way.
Forward: ``base(x) + lora_B(lora_A(x)) · s`` computed with the same ops in the same order as PEFT's
``lora.Linear`` (no dropout), so for the same A and B the outputs agree to the last bit in practice
(the test allows 1e-6). Dropout is not offered: PEFT's default is 0 and the benchmark uses none.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .configs import LoRAConfig
from .layers import AdaptedLinear, kaiming_uniform_like_linear
from .method import BuildContext, NativeMethod


class LoRALinear(AdaptedLinear):
    """y = W0 x + b + s · B (A x)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, rslora: bool = False, init: str = "default"):
        super().__init__(base)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.rank = rank
        self.scaling = alpha / math.sqrt(rank) if rslora else alpha / rank
        a = torch.empty(rank, base.in_features, **factory)
        a = nn.init.normal_(a, std=1 / rank) if init == "gaussian" else kaiming_uniform_like_linear(a)
        self.lora_A = nn.Parameter(a)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling:g}"


class LoRA(NativeMethod):
    config_class = LoRAConfig

    def count(self, shapes, rank, options):
        return sum(rank * (d_out + d_in) for d_out, d_in in shapes.values())

    def make_layer(self, name: str, base: nn.Linear, ctx: BuildContext) -> LoRALinear:
        return LoRALinear(base, ctx.rank, ctx.options["alpha"], ctx.options["rslora"], ctx.options["init"])
