"""The options of PEFT's other tuners, as typed configs (torch-free; the implementations are in :mod:`.peft_tuners`).

Each tuner is driven through its PEFT config; ``rank`` is the tuner's own size knob, named in the registry
(:mod:`.registry`): the rank r for the low-rank family (LoHa, LoKr, DeLoRA, GraLoRA, RandLoRA, MiSS, PSOFT, OSF's
trainable rank, AdaLoRA's average rank after pruning), the block size b for the block-structured ones (OFT, BOFT,
C3A), the number of spectral coefficients per module for FourierFT, and nothing for RoAd and IA³, which have one
size (RoAd's ``variant`` option multiplies it by 1, 2 or 4). Scales that PEFT ties to r (α) follow this package's
rule α = 2r (s = 2) unless given.

Default learning rates are LoRA's (3e-3), IA³'s a decade higher as VeRA's (vector-only tuners need larger steps);
none is tuned here. The comparison grid tunes every method's rate on dev (RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import AdapterError
from .configs import LoRAConfig, MethodConfig, ScaledConfig
from .values import boolean, integer, positive_int, positive_number

LORA_RATE = LoRAConfig.default_lr  # the tuners' default rate: LoRA's (module docstring)


@dataclass(frozen=True)
class OFTConfig(MethodConfig):
    method = "oft"
    default_lr = LORA_RATE
    block_share: bool = False
    use_cayley_neumann: bool = True

    def check(self) -> None:
        super().check()
        boolean(self.block_share, self.method, "block_share")
        boolean(self.use_cayley_neumann, self.method, "use_cayley_neumann")


@dataclass(frozen=True)
class BOFTConfig(MethodConfig):
    method = "boft"
    default_lr = LORA_RATE
    butterfly_factor: int = 1

    def check(self) -> None:
        super().check()
        self._set("butterfly_factor", positive_int(self.butterfly_factor, "option butterfly_factor of adapter 'boft'"))


@dataclass(frozen=True)
class PSOFTConfig(ScaledConfig):
    """``alpha=None``: α = r (PSOFT's own default: the rotation acts at scale 1)."""

    method = "psoft"
    default_lr = LORA_RATE
    alpha_from_rank = False
    orthogonal: bool = True

    def check(self) -> None:
        super().check()
        boolean(self.orthogonal, self.method, "orthogonal")


@dataclass(frozen=True)
class OSFConfig(MethodConfig):
    method = "osf"
    default_lr = LORA_RATE


@dataclass(frozen=True)
class DeLoRAConfig(MethodConfig):
    method = "delora"
    default_lr = LORA_RATE
    delora_lambda: float = 15.0

    def check(self) -> None:
        super().check()
        self._set("delora_lambda", positive_number(self.delora_lambda, self.method, "delora_lambda"))


@dataclass(frozen=True)
class GraLoRAConfig(ScaledConfig):
    method = "gralora"
    default_lr = LORA_RATE
    k: int = 2

    def check(self) -> None:
        super().check()
        self._set("k", positive_int(self.k, "option k of adapter 'gralora'"))

    def check_rank(self, rank: int) -> None:
        if rank % self.k:
            raise AdapterError(f"gralora splits rank r into k = {self.k} blocks: r must be a multiple of k, got {rank}")


@dataclass(frozen=True)
class RandLoRAConfig(MethodConfig):
    """``alpha=None``: α = 20·r, PEFT's default ratio (640 at r = 32)."""

    method = "randlora"
    default_lr = LORA_RATE
    alpha: float | None = None
    projection_prng_key: int = 0

    def check(self) -> None:
        super().check()
        if self.alpha is not None:
            self._set("alpha", positive_number(self.alpha, self.method, "alpha"))
        integer(self.projection_prng_key, self.method, "projection_prng_key")


@dataclass(frozen=True)
class MiSSConfig(MethodConfig):
    method = "miss"
    default_lr = LORA_RATE


@dataclass(frozen=True)
class C3AConfig(MethodConfig):
    method = "c3a"
    default_lr = LORA_RATE


@dataclass(frozen=True)
class RoAdConfig(MethodConfig):
    """``variant``: 1, 2 or 4 angle-scale pairs per group (road_1, road_2, road_4); ``group_size=None``: the largest
    even divisor of every target's d_out up to 64 (PEFT's default). RoAd has no rank: its size is d_out·variant."""

    method = "road"
    default_lr = LORA_RATE
    variant: int = 1
    group_size: int | None = None

    def check(self) -> None:
        super().check()
        if self.variant not in (1, 2, 4) or isinstance(self.variant, bool):
            raise AdapterError(f"option variant of adapter 'road' must be 1, 2 or 4, got {self.variant!r}")
        if self.group_size is not None:
            size = positive_int(self.group_size, "option group_size of adapter 'road'")
            if size % 2:
                raise AdapterError(f"option group_size of adapter 'road' must be even, got {size}")
            self._set("group_size", size)

    def resolve(self, rank, shapes):
        from dataclasses import replace
        from math import gcd

        resolved = super().resolve(rank, shapes)
        common = 0
        for d_out, _ in shapes.values():
            common = gcd(common, d_out)
        if resolved.group_size is None:
            size = max((g for g in range(2, 65, 2) if common % g == 0), default=None)
            if size is None:
                raise AdapterError(f"road needs an even group size dividing every d_out; the targets' gcd is {common}")
            return replace(resolved, group_size=size)
        if common % resolved.group_size:
            raise AdapterError(f"option group_size {resolved.group_size} of adapter 'road' does not divide every "
                               f"target's d_out (their gcd is {common})")
        return resolved


@dataclass(frozen=True)
class FourierFTConfig(MethodConfig):
    method = "fourierft"
    default_lr = LORA_RATE
    scaling: float = 150.0
    random_loc_seed: int = 777

    def check(self) -> None:
        super().check()
        self._set("scaling", positive_number(self.scaling, self.method, "scaling"))
        integer(self.random_loc_seed, self.method, "random_loc_seed")


@dataclass(frozen=True)
class LoHaConfig(ScaledConfig):
    method = "loha"
    default_lr = LORA_RATE


@dataclass(frozen=True)
class LoKrConfig(ScaledConfig):
    method = "lokr"
    default_lr = LORA_RATE
    decompose_factor: int = -1

    def check(self) -> None:
        super().check()
        integer(self.decompose_factor, self.method, "decompose_factor")


@dataclass(frozen=True)
class AdaLoRAConfig(ScaledConfig):
    """AdaLoRA (Zhang et al. 2023): SVD-form P Λ Q starting at ``init_r`` (None: 1.5·r) per module, pruned by
    importance to an average of r (the rank knob) between steps ``tinit`` and ``total_step − tfinal``, every
    ``delta_t`` steps; ``orth_reg_weight`` weighs the orthogonality penalty on P and Q. ``total_step`` is the run's
    number of optimiser steps, which the training layer supplies (None outside training: no schedule)."""

    method = "adalora"
    default_lr = LORA_RATE
    alpha_from_rank = False  # α = 2·init_r: AdaLoRA scales by α over its starting rank
    init_r: int | None = None
    tinit: int = 0
    tfinal: int = 0
    delta_t: int = 1
    beta1: float = 0.85
    beta2: float = 0.85
    orth_reg_weight: float = 0.5
    total_step: int | None = None

    def check(self) -> None:
        super().check()
        if self.init_r is not None:
            self._set("init_r", positive_int(self.init_r, "option init_r of adapter 'adalora'"))
        for name in ("tinit", "tfinal"):
            if integer(getattr(self, name), self.method, name) < 0:
                raise AdapterError(f"option {name} of adapter 'adalora' must be an integer ≥ 0")
        self._set("delta_t", positive_int(self.delta_t, "option delta_t of adapter 'adalora'"))
        for name in ("beta1", "beta2"):
            if not (isinstance(getattr(self, name), (int, float)) and 0 < getattr(self, name) < 1):
                raise AdapterError(f"option {name} of adapter 'adalora' must be between 0 and 1")
        if isinstance(self.orth_reg_weight, bool) or not isinstance(self.orth_reg_weight, (int, float)) \
                or self.orth_reg_weight < 0:
            raise AdapterError("option orth_reg_weight of adapter 'adalora' must be a number ≥ 0")
        if self.total_step is not None:
            self._set("total_step", positive_int(self.total_step, "option total_step of adapter 'adalora'"))

    def check_rank(self, rank: int) -> None:
        if self.init_r is not None and self.init_r < rank:
            raise AdapterError(f"adalora prunes from init_r down to r: init_r {self.init_r} < r {rank}")

    @classmethod
    def training_inputs(cls, anchors, sources, options=None, steps=None, positives=None):
        if steps is None or (options is not None and options.get("total_step") is not None):
            return {}
        return {"total_step": max(1, int(steps))}


@dataclass(frozen=True)
class IA3Config(MethodConfig):
    method = "ia3"
    default_lr = 3e-2  # vectors only, as VeRA: larger steps (VeRA's tuned rate on dev was 3e-2)


#: Every config of this module, in the registry's order.
TUNER_CONFIGS = (OFTConfig, BOFTConfig, PSOFTConfig, OSFConfig, DeLoRAConfig, GraLoRAConfig, RandLoRAConfig,
                 MiSSConfig, C3AConfig, RoAdConfig, FourierFTConfig, LoHaConfig, LoKrConfig, AdaLoRAConfig, IA3Config)
