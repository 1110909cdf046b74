"""EigenLoRAx (arXiv 2502.04700): recycle saved LoRA adapters; train only coefficients on their principal subspace.

1. Inputs: N ≥ 2 saved adapters (``sources=[dir, ...]``) of method ``lora`` or ``gelora`` on the same base
   model (checked through the base-weight fingerprint) and the same target modules (the default targets are
   the sources').
2. Per target module, for A and B separately: stack the sources' rank columns (A_iᵀ ∈ R^{d_in×r_i},
   B_i ∈ R^{d_out×r_i}) into M, centre it (subtract the mean column), take the top-K left singular vectors
   (float64): V_A ∈ R^{d_in×K}, V_B ∈ R^{d_out×K}. K = ``k`` (default min(8, Σr_i − 1): a centred M has at
   most Σr_i − 1 informative directions, asking for more is an error).
3. Augmentation: ``k_gs`` random directions (seeded by ``seed``) made orthonormal to the basis by
   Gram–Schmidt (two projection passes, then QR). K' = K + k_gs ≤ min(d_in, d_out).
4. Trainable: α_A, α_B ∈ R^{K'×r}; A_eff = V_A α_A, B_eff = V_B α_B, ΔW = s · B_eff A_effᵀ, s = α / r
   (α = 2r by default, as LoRA). α_B = 0 (ΔW = 0 at init); α_A is Kaiming-uniform (a=√5) over its K' inputs
   — bound 1/√K', so A_eff's columns have LoRA's expected norm. Parameters: 2·K'·r per module.

The frozen bases V_A, V_B are saved in ``adapter.safetensors`` next to α_A, α_B (keys ``<module>.V_A`` etc.),
so ``load_adapter`` rebuilds the adapter without the source directories; the config lists the sources
(path, method, rank) under ``sources``. Forward: base(x) + s·F.linear(F.linear(x, A_effᵀ), B_eff) with
A_eff, B_eff formed per call (d×K'×r, negligible).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AdapterError
from ..paths import recorded_path
from .configs import EigenLoRAxConfig
from .io import read_adapter_tensors
from .layers import AdaptedLinear, kaiming_uniform_like_linear, single_threaded, svd64
from .layout import read_adapter_config
from .method import BuildContext, NativeMethod
from .targets import base_fingerprint

SOURCE_METHODS = ("lora", "gelora")
DEFAULT_K = EigenLoRAxConfig.default_k


def principal_basis(columns: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k left singular vectors of the centred column matrix ``columns`` (d × n), float64."""
    m = columns.double()
    m = m - m.mean(dim=1, keepdim=True)
    u, _, _ = svd64(m)
    return u[:, :k]


def augment_basis(basis: torch.Tensor, extra: int, generator: torch.Generator) -> torch.Tensor:
    """``basis`` (d × K, orthonormal) plus ``extra`` random orthonormal directions orthogonal to it."""
    if extra == 0:
        return basis
    d = basis.shape[0]
    g = torch.randn(d, extra, generator=generator, dtype=torch.float64)
    for _ in range(2):  # classical Gram–Schmidt against the basis, twice for float safety
        g = g - basis @ (basis.T @ g)
    q, _ = torch.linalg.qr(g)
    q = q - basis @ (basis.T @ q)  # re-orthogonalise once more after QR's rounding
    q, _ = torch.linalg.qr(q)
    return torch.cat([basis, q], dim=1)


class EigenLoRAxLinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, v_a: torch.Tensor, v_b: torch.Tensor):
        super().__init__(base)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.rank = rank
        self.scaling = alpha / rank
        kp = v_a.shape[1]
        self.register_buffer("V_A", v_a.to(**factory).contiguous())
        self.register_buffer("V_B", v_b.to(**factory).contiguous())
        init = kaiming_uniform_like_linear(torch.empty(rank, kp, **factory)).T.contiguous()
        self.alpha_A = nn.Parameter(init)
        self.alpha_B = nn.Parameter(torch.zeros(kp, rank, **factory))

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A_eff ∈ R^{d_in×r}, B_eff ∈ R^{d_out×r})."""
        return self.V_A @ self.alpha_A, self.V_B @ self.alpha_B

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a_eff, b_eff = self.factors()
        return self.base(x) + F.linear(F.linear(x, a_eff.T), b_eff) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        a_eff, b_eff = self.factors()
        return (b_eff @ a_eff.T) * self.scaling

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, basis={self.V_A.shape[1]}, scaling={self.scaling:g}"


def _source_list(sources: Any) -> list[Path]:
    if isinstance(sources, (str, Path)) or not isinstance(sources, (list, tuple)):
        raise AdapterError("eigenlorax needs sources=[dir, dir, ...]: a list of saved LoRA adapter directories")
    if len(sources) < 2:
        raise AdapterError(f"eigenlorax needs at least 2 source LoRA adapters, got {len(sources)}")
    return [Path(s) for s in sources]


class EigenLoRAx(NativeMethod):
    config_class = EigenLoRAxConfig  # k, k_gs, seed: validated there, with k + k_gs ≤ min(d_in, d_out)
    config_fields = ("sources",)

    def default_target_modules(self, options):
        try:
            first = _source_list(options.get("sources"))[0]
            names = read_adapter_config(first)["target_modules"]
        except AdapterError:
            return None  # prepare() reports the problem with the sources
        import re

        return "|".join(re.escape(n) for n in names)

    def prepare(self, model, targets, inputs, options):
        if "sources" not in inputs:
            raise AdapterError(
                "eigenlorax needs sources=[dir, dir, ...]: at least 2 saved LoRA adapters of this base model"
            )
        paths = _source_list(inputs["sources"])
        fingerprint = base_fingerprint(targets)
        loaded = []
        for path in paths:
            config = read_adapter_config(path)
            if config["method"] not in SOURCE_METHODS:
                raise AdapterError(
                    f"source {path} is a '{config['method']}' adapter; "
                    f"eigenlorax recycles {' or '.join(SOURCE_METHODS)} adapters"
                )
            if sorted(config["target_modules"]) != sorted(targets):
                raise AdapterError(f"source {path} adapts other modules than the ones eigenlorax targets")
            if config["base_fingerprint"] != fingerprint:
                name = (config.get("base_model") or {}).get("name", "another model")
                raise AdapterError(
                    f"source {path} was trained on another base model ({name}); its weights differ from this model's"
                )
            tensors = read_adapter_tensors(path)
            factors = {}
            for name in targets:
                a, b = tensors.get(f"{name}.lora_A"), tensors.get(f"{name}.lora_B")
                if a is None or b is None:
                    raise AdapterError(f"adapter file of source {path} is corrupt (no lora_A/lora_B for {name})")
                factors[name] = (a, b)
            loaded.append({"path": recorded_path(path), "method": config["method"], "rank": config["rank"],
                           "factors": factors})
        inputs["_loaded"] = loaded
        total_rank = min(sum(src["factors"][n][0].shape[0] for src in loaded) for n in targets)
        inputs["_available"] = total_rank - 1
        options = dict(options)
        if options.get("k") is None:
            options["k"] = min(DEFAULT_K, total_rank - 1)
        return options

    def count(self, shapes, rank, options):
        return sum(2 * (options["k"] + options["k_gs"]) * rank for _ in shapes)

    def apply_time_options(self, options):
        """Without ``k``, :meth:`prepare` takes min(8, Σr_i − 1) from the sources: any k from 1 to 8."""
        if options.get("k") is not None:
            return [options]
        return [dict(options, k=k) for k in range(1, DEFAULT_K + 1)]

    def budget_candidates(self, shapes, rank, options):
        smallest = min(min(s) for s in shapes.values())
        for k_gs in range(0, smallest - options["k"] + 1):
            updated = dict(options, k_gs=k_gs)
            yield self.count(shapes, rank, updated), rank, {"k_gs": k_gs}

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        k, k_gs = ctx.options["k"], ctx.options["k_gs"]
        if ctx.restore is None:
            available = ctx.inputs["_available"]
            if k > available:
                raise AdapterError(
                    f"eigenlorax k = {k} exceeds the {available} principal directions its sources offer; "
                    "lower k or add random directions with k_gs"
                )
            ctx.scratch["generator"] = torch.Generator().manual_seed(ctx.options["seed"])
            ctx.extra["sources"] = [
                {key: src[key] for key in ("path", "method", "rank")} for src in ctx.inputs["_loaded"]
            ]
        else:
            ctx.extra["sources"] = ctx.restore.get("sources", [])
        return super().build(ctx)

    def make_layer(self, name: str, base: nn.Linear, ctx: BuildContext) -> EigenLoRAxLinear:
        k, k_gs = ctx.options["k"], ctx.options["k_gs"]
        if ctx.restore is not None:  # load_adapter fills the bases from the file
            v_a = torch.zeros(base.in_features, k + k_gs)
            v_b = torch.zeros(base.out_features, k + k_gs)
        else:
            sources = ctx.inputs["_loaded"]
            m_a = torch.cat([src["factors"][name][0].T for src in sources], dim=1)
            m_b = torch.cat([src["factors"][name][1] for src in sources], dim=1)
            generator = ctx.scratch["generator"]
            with single_threaded():
                v_a = augment_basis(principal_basis(m_a, k), k_gs, generator)
                v_b = augment_basis(principal_basis(m_b, k), k_gs, generator)
        return EigenLoRAxLinear(base, ctx.rank, ctx.options["alpha"], v_a, v_b)
