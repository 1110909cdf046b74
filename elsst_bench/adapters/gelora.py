"""GeLoRA (arXiv 2412.09250): per-block LoRA ranks from the intrinsic dimension of hidden states.

1. Run the frozen encoder (eval mode, no gradients) on sample texts and collect the token hidden states
   (padding excluded) of the embedding output h_0 and of every block output h_1..h_L. Texts are read in
   order until ``max_tokens`` (5,000) tokens are collected; a larger haul is subsampled to exactly
   ``max_tokens`` with a seeded generator, the same tokens for every level.
2. Intrinsic dimension of each level by TwoNN (Facco et al. 2017), maximum-likelihood form:
   μ_i = r2(i) / r1(i) (distances to the 2nd and 1st nearest neighbour, duplicate points removed),
   d̂ = N / Σ_i log μ_i.
3. Bound of block ℓ (1-based): b_ℓ = max(d_ℓ − d_{ℓ−1}, 0).
4. ``mode="budget"`` (default, the fair comparison): spread the total rank r·L over the adapted blocks in
   proportion to b_ℓ + 1, each block ≥ 1, by largest-remainder (Hamilton) rounding; blocks whose quota is
   below 1 are fixed at 1 and the rest re-apportioned (our reading of "each ≥ 1"). ``mode="bound"``:
   r_ℓ = max(1, ⌈b_ℓ⌉). Ranks are capped at the block's smallest min(d_in, d_out).
5. LoRA (see :mod:`.lora`) with rank r_ℓ on every target module of block ℓ. Scale s = α_ℓ / r_ℓ with
   α_ℓ = 2 r_ℓ (s = 2 everywhere, as LoRA) unless ``alpha`` is given, then s_ℓ = alpha / r_ℓ (PEFT's
   rank_pattern behaviour).

The IDs, bounds, ranks and token count go into the adapter config (``intrinsic_dims``, ``id_bounds``,
``layer_ranks``, ``id_tokens``); ``load_adapter`` rebuilds from ``layer_ranks`` without texts. Parameters:
Σ_ℓ r_ℓ Σ_{modules of ℓ} (d_in + d_out) — with identical blocks and mode=budget exactly LoRA rank r's count.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import AdapterError
from .configs import GeLoRAConfig
from .values import positive_int
from .lora import LoRALinear
from .method import BuildContext, NativeMethod
from .names import block_index
from .activations import token_batches


def twonn_dimension(points: torch.Tensor | Sequence[Sequence[float]], chunk: int = 1024) -> float:
    """TwoNN intrinsic dimension d̂ = N / Σ log(r2/r1) of a point cloud (rows = points), duplicates removed."""
    x = torch.as_tensor(points).detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise AdapterError(f"TwoNN needs a 2-D array of points, got shape {tuple(x.shape)}")
    x = torch.unique(x, dim=0)
    n = x.shape[0]
    if n < 3:
        raise AdapterError(f"TwoNN needs at least 3 distinct points, got {n}")
    sq = (x * x).sum(dim=1)
    nearest = []
    for start in range(0, n, chunk):
        block = x[start : start + chunk]
        d2 = torch.addmm(sq[None, :], block, x.T, alpha=-2).add_(sq[start : start + chunk, None])
        rows = torch.arange(block.shape[0])
        d2[rows, rows + start] = math.inf
        nearest.append(torch.topk(d2, 2, dim=1, largest=False).values)
    d2 = torch.cat(nearest).clamp_min(0)
    r1, r2 = d2[:, 0].sqrt(), d2[:, 1].sqrt()
    keep = r1 > 0  # exact duplicates are gone; rounding can still leave a zero distance
    log_mu = torch.log(r2[keep] / r1[keep])
    total = float(log_mu.sum())
    if total <= 0:
        raise AdapterError("TwoNN cannot estimate a dimension: every point has its two nearest neighbours tied")
    return int(keep.sum()) / total


def apportion(total: int, weights: Sequence[float], minimum: int = 1) -> list[int]:
    """Integers ≥ ``minimum`` summing to ``total``, proportional to ``weights`` (largest remainders)."""
    n = len(weights)
    if total < minimum * n:
        raise AdapterError(f"cannot give {n} blocks at least {minimum} rank each from a total of {total}")
    fixed: dict[int, int] = {}
    while True:
        free = [i for i in range(n) if i not in fixed]
        remaining = total - sum(fixed.values())
        weight_sum = sum(weights[i] for i in free)
        quotas = {i: remaining * weights[i] / weight_sum for i in free}
        low = [i for i in free if quotas[i] < minimum]
        if not low:
            break
        for i in low:
            fixed[i] = minimum
    result = dict(fixed)
    floors = {i: int(math.floor(q)) for i, q in quotas.items()}
    result.update(floors)
    leftover = remaining - sum(floors.values())
    order = sorted(quotas, key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in order[:leftover]:
        result[i] += 1
    return [result[i] for i in range(n)]


def collect_hidden_states(
    model: nn.Module, texts: Sequence[str], max_tokens: int = 5000, seed: int = 0, batch_size: int = 32
) -> list[torch.Tensor]:
    """Token hidden states (no padding) of the embedding output and every block output: L+1 tensors (N, d)."""
    levels: list[list[torch.Tensor]] = []
    for out, mask in token_batches(model, texts, "gelora", batch_size, max_tokens, output_hidden_states=True,
                                   hint="; pass hidden_states=[...] or layer_ranks={...}"):
        hidden = out.hidden_states if hasattr(out, "hidden_states") else out["hidden_states"]
        if not levels:
            levels = [[] for _ in hidden]
        for level, h in zip(levels, hidden):
            level.append(h[mask].to("cpu", torch.float32))
    states = [torch.cat(level) for level in levels]
    if states and states[0].shape[0] > max_tokens:
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(states[0].shape[0], generator=generator)[:max_tokens].sort().values
        states = [s[index] for s in states]
    return states


class GeLoRA(NativeMethod):
    config_class = GeLoRAConfig
    config_fields = ("intrinsic_dims", "id_bounds", "layer_ranks", "id_tokens")

    def count(self, shapes, rank, options):
        # mode=budget spends the total rank r·L; with identical blocks that is exactly LoRA rank r's count
        return sum(rank * (d_out + d_in) for d_out, d_in in shapes.values())

    def possible_counts(self, shapes, rank, options, inputs):
        """Exact with ``layer_ranks``, or in mode=budget when every block has the same Σ(d_in + d_out) and no
        block can reach its cap (a block gets at most r·L − (L − 1)): then r·L·Σ per block, :meth:`count`.
        Otherwise the hidden states of the texts decide the ranks r_ℓ (1 ≤ r_ℓ ≤ the block's cap; mode=budget:
        Σ r_ℓ ≤ r·L), and every count they can give is returned: the multiples of the per-block sum from L to
        the largest Σ r_ℓ times it when the blocks are alike, else every number from all ranks 1 to all at their
        caps."""
        blocks: dict[int, list[str]] = {}
        for name in shapes:
            index = block_index(name)
            if index is None:
                raise AdapterError(f"gelora needs target modules inside numbered transformer blocks; {name} is not")
            blocks.setdefault(index, []).append(name)
        sums = {b: sum(d_out + d_in for d_out, d_in in (shapes[n] for n in names)) for b, names in blocks.items()}
        caps = {b: min(min(shapes[n]) for n in names) for b, names in blocks.items()}
        given = inputs.get("layer_ranks")
        if given is not None:
            ranks = _checked_ranks(given, caps)
            return (sum(ranks[b] * sums[b] for b in blocks),)
        n = len(blocks)
        alike = len(set(sums.values())) == 1
        budget = options["mode"] == "budget"
        if budget and alike and rank * n - (n - 1) <= min(caps.values()):
            return (self.count(shapes, rank, options),)
        most = min(rank * n, sum(caps.values())) if budget else sum(caps.values())
        if alike:
            step = next(iter(sums.values()))
            return range(n * step, most * step + 1, step)
        return range(sum(sums.values()), sum(caps[b] * sums[b] for b in blocks) + 1)

    def budget_candidates(self, shapes, rank, options):
        if options.get("mode") == "bound":
            raise AdapterError("gelora's mode=bound chooses its own ranks; a budget needs mode=budget")
        yield from super().budget_candidates(shapes, rank, options)

    # -- ranks ------------------------------------------------------------------------------------------------
    def _blocks(self, ctx: BuildContext) -> dict[int, list[str]]:
        blocks: dict[int, list[str]] = {}
        for name in ctx.targets:
            index = block_index(name)
            if index is None:
                raise AdapterError(f"gelora needs target modules inside numbered transformer blocks; {name} is not")
            blocks.setdefault(index, []).append(name)
        return blocks

    def _ranks(self, ctx: BuildContext, blocks: dict[int, list[str]]) -> dict[int, int]:
        caps = {b: min(min(ctx.targets[n].in_features, ctx.targets[n].out_features) for n in names)
                for b, names in blocks.items()}
        given = ctx.restore.get("layer_ranks") if ctx.restore else ctx.inputs.get("layer_ranks")
        if given is not None:
            ranks = _checked_ranks(given, caps)
            if ctx.restore:
                for key in ("intrinsic_dims", "id_bounds", "id_tokens"):
                    if key in ctx.restore:
                        ctx.extra[key] = ctx.restore[key]
            ctx.extra["layer_ranks"] = {str(b): ranks[b] for b in sorted(ranks)}
            return ranks

        states = ctx.inputs.get("hidden_states")
        if states is None:
            if "texts" not in ctx.inputs:
                raise AdapterError("gelora needs sample texts: apply_adapter(model, 'gelora', texts=[...])")
            states = collect_hidden_states(
                ctx.model, ctx.inputs["texts"], ctx.options["max_tokens"], ctx.options["seed"]
            )
        states = [torch.as_tensor(s) for s in states]
        if len(states) < max(blocks) + 2:
            raise AdapterError(
                f"gelora needs {max(blocks) + 2} hidden-state levels (embeddings + every block), got {len(states)}"
            )
        dims = [twonn_dimension(s) for s in states]
        order = sorted(blocks)
        bounds = {b: max(dims[b + 1] - dims[b], 0.0) for b in order}
        if ctx.options["mode"] == "budget":
            spread = apportion(ctx.rank * len(order), [bounds[b] + 1 for b in order])
            ranks = {b: min(r, caps[b]) for b, r in zip(order, spread)}
        else:
            ranks = {b: min(max(1, math.ceil(bounds[b])), caps[b]) for b in order}
        ctx.extra.update(
            intrinsic_dims=[round(d, 6) for d in dims],
            id_bounds={str(b): round(bounds[b], 6) for b in order},
            layer_ranks={str(b): ranks[b] for b in order},
            id_tokens=int(states[0].shape[0]),
        )
        return ranks

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        blocks = self._blocks(ctx)
        ctx.scratch["ranks"] = self._ranks(ctx, blocks)
        return super().build(ctx)

    def make_layer(self, name: str, base: nn.Linear, ctx: BuildContext) -> LoRALinear:
        rank = ctx.scratch["ranks"][block_index(name)]
        alpha = ctx.options["alpha"] if ctx.options["alpha"] is not None else 2 * rank
        return LoRALinear(base, rank, alpha)


def _checked_ranks(given, caps: dict[int, int]) -> dict[int, int]:
    """``layer_ranks`` (``{block: rank}``, keys may be strings) checked against the blocks and their ``caps``."""
    try:
        ranks = {int(k): positive_int(v, f"gelora rank of block {k}") for k, v in dict(given).items()}
    except (TypeError, ValueError):
        raise AdapterError("gelora layer_ranks must map block indices to positive integers") from None
    if set(ranks) != set(caps):
        raise AdapterError(
            f"gelora layer_ranks name blocks {sorted(ranks)} but the target modules lie in blocks {sorted(caps)}"
        )
    for b, r in ranks.items():
        if r > caps[b]:
            raise AdapterError(f"gelora rank {r} of block {b} is larger than min(d_in, d_out) = {caps[b]}")
    return ranks


def gelora_ranks(config: dict[str, Any]) -> dict[int, int]:
    """``{block: rank}`` from a saved GeLoRA adapter config."""
    return {int(k): int(v) for k, v in config.get("layer_ranks", {}).items()}
