"""The adapted-layer contract (:class:`AdaptedLinear`) and the numerics every native method shares.

Why module wrapping rather than ``torch.nn.utils.parametrize`` (measured, not assumed): a parametrization
recomputes W0 + ΔW at every forward and, worse, makes autograd form the full d_out×d_in weight gradient
in the backward pass (one extra tokens×d_out×d_in matmul per layer, as in full fine-tuning). With
``benchmarks/adapters.py`` (all-MiniLM-L6-v2, 64 pairs, MNRL + AdamW, 2 CPU threads, 9 interleaved repeats)
a parametrized LoRA step took 1.09x (median; 1.13x best-of-9) the time of PEFT's LoRA, the wrapped
activation path x -> base(x) + s·(x Aᵀ)Bᵀ 0.93x (0.98x); the goal is ≤ 1.05x. So low-rank methods wrap the
linear (:class:`AdaptedLinear`) and keep the weight-space form (``delta_weight()``) for merging and
diagnostics; SMoA, whose ΔW is not factored in activation space, uses the weight path (see smoa.py).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import nn


class AdaptedLinear(nn.Module):
    """A frozen ``nn.Linear`` (kept as ``self.base``, the very object that was replaced) plus an adapter.

    Subclasses implement ``forward`` (the fast path) and ``delta_weight`` (ΔW in torch layout, d_out×d_in);
    ``forward(x)`` must equal ``F.linear(x, W0 + delta_weight(), b)``.
    """

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.in_features = base.in_features
        self.out_features = base.out_features

    @property
    def weight(self) -> torch.Tensor:  # code that peeks at ``layer.weight`` (dtype, device) keeps working
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def delta_weight(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adapter_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save: own parameters and persistent buffers (not the base layer's)."""
        out = {n: p for n, p in self.named_parameters(recurse=False)}
        for n, b in self.named_buffers(recurse=False):
            if n not in self._non_persistent_buffers_set:
                out[n] = b
        for child_name, child in self.named_children():
            if child is self.base:
                continue
            for n, p in child.named_parameters():
                out[f"{child_name}.{n}"] = p
        return out

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run one-off LAPACK work (the SVDs at apply time) on one intra-op thread, then restore the setting.

    Measured on a 2-core machine shared with other jobs: 36 float64 SVDs of the MiniLM weights took 0.4 s on
    one thread and 28 s on two (every LAPACK barrier waits for a descheduled OpenMP thread); on an idle
    machine one thread costs little for matrices this small. Only used on CPU, outside training steps.
    """
    previous = torch.get_num_threads()
    if previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous > 1:
            torch.set_num_threads(previous)


def svd64(weight: torch.Tensor, full: bool = True):
    """Thin SVD (U, S, Vh) of ``weight`` in float64 on CPU, single-threaded (see :func:`single_threaded`)."""
    w = weight.detach().to("cpu", torch.float64)
    with single_threaded():
        if full:
            return torch.linalg.svd(w, full_matrices=False)
        return torch.linalg.svdvals(w)


def kaiming_uniform_like_linear(tensor: torch.Tensor) -> torch.Tensor:
    """``nn.init.kaiming_uniform_(t, a=√5)``: nn.Linear's (and PEFT LoRA's A) default initialisation."""
    return nn.init.kaiming_uniform_(tensor, a=math.sqrt(5))
