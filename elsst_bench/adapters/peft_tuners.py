"""PEFT's other tuners behind our interface, one small class each: OFT, BOFT, PSOFT, OSF, DeLoRA, GraLoRA,
RandLoRA, MiSS, C3A, RoAd, FourierFT, LoHa, LoKr, IA³.

A tuner here is PEFT's own, built by PEFT's tuner class on exactly our target modules (:class:`.peft_methods.
PeftMethod`); a subclass only says which PEFT type it is and how ``rank`` and its options map onto that type's
config (:meth:`PeftTuner.peft_kwargs`). Everything else is one rule for all of them:

* **What trains and what is saved**: the layer's tensors under PEFT's adapter name (``…default…``), parameters
  and buffers, never ``base_layer``; the trainable ones are the parameters among them. Frozen random parts that
  PEFT keeps as buffers (RandLoRA's bases) are saved with them; those it rebuilds from a seed are rebuilt.
* **Counting**: each (shape, kind) of target module is built once by PEFT on a bare ``nn.Linear`` — on the
  ``meta`` device, or on zeros where the tuner's initialisation needs values (PSOFT, OSF take an SVD) — and its
  trainable parameters counted; the total is exact by construction, and :func:`planned_counts` (the leaderboard's
  re-count) gets the same number without a model.
* **ΔW**: the adapted layer is linear in its input, so ΔWᵀ = (f(I) − f(0)) − (g(I) − g(0)), with f the adapted
  layer and g its base, both on the identity matrix: exact zero where the adapter is the identity, whatever the
  tuner's algebra (a rotation of the input for OFT, a scaling for IA³, a circulant for C3A).
* **Merging and export**: PEFT's ``merge()``; ``export --peft`` writes PEFT's own adapter type.

The budget solver enumerates the knob's values (:meth:`PeftTuner.knob_values`); one a tuner refuses on these
shapes (a block size that does not divide d_in) is skipped, and asked for directly it is refused in one line
with PEFT's reason.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import AdapterError
from . import tuner_configs as tc
from .names import module_type
from .peft_methods import ADAPTER, PeftMethod


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _gcd_all(values) -> int:
    from math import gcd

    out = 0
    for value in values:
        out = gcd(out, value)
    return out


@functools.lru_cache(maxsize=4096)
def _module_count(tuner: str, shape: tuple[int, int], kind: str, rank: int, options_json: str) -> int:
    """Trainable parameters PEFT gives one module of ``shape`` (and ``kind``) at ``rank`` (raises PEFT's error)."""
    from .registry import get_method

    method = get_method(tuner)
    options = json.loads(options_json)
    for device in ("meta", "cpu"):
        holder = nn.Module()
        holder.add_module(kind, nn.Linear(shape[1], shape[0], device=device))
        if device == "cpu":
            nn.init.zeros_(getattr(holder, kind).weight)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                method.tuner_cls()(holder, method.config_for(rank, options, {kind: shape}), adapter_name=ADAPTER)
        except (NotImplementedError, RuntimeError):
            if device == "meta":  # an initialisation that needs values (an SVD): build on zeros instead
                continue
            raise
        return sum(p.numel() for p in method.layer_trainable(getattr(holder, kind)))
    raise AssertionError("unreachable")  # pragma: no cover


class PeftTuner(PeftMethod):
    """A PEFT tuner driven through its config; subclasses set ``peft_type`` and :meth:`peft_kwargs`."""

    peft_type: ClassVar[str]

    def peft_kwargs(self, rank: int, options: dict, shapes: dict[str, tuple[int, int]]) -> dict[str, Any]:
        """The PEFT config's arguments (besides ``target_modules``) for this rank and these options on the target
        modules ``{name: (d_out, d_in)}``."""
        raise NotImplementedError

    def module_kind(self, name: str) -> str:
        """What besides its shape tells a module's count (IA³: whether it is a feed-forward output)."""
        return "layer"

    def knob_values(self, shapes: dict[str, tuple[int, int]], options: dict) -> list[int]:
        """The values of the size knob the budget solver tries (default: every rank 1..min(d_in, d_out))."""
        return list(range(1, min(min(s) for s in shapes.values()) + 1))

    # -- PEFT ------------------------------------------------------------------------------------------------
    def tuner_cls(self):
        from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING

        return PEFT_TYPE_TO_TUNER_MAPPING[self.peft_type]

    def config_for(self, rank: int, options: dict, shapes: dict[str, tuple[int, int]]):
        from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

        return PEFT_TYPE_TO_CONFIG_MAPPING[self.peft_type](target_modules=list(shapes),
                                                           **self.peft_kwargs(rank, options, shapes))

    def peft_config(self, ctx, names):
        return self.config_for(ctx.rank, ctx.options,
                               {n: (ctx.targets[n].out_features, ctx.targets[n].in_features) for n in names})

    def own_peft_config(self, state):
        bases = {n: layer.get_base_layer() for n, layer in state.layers.items()}
        shapes = {n: (base.out_features, base.in_features) for n, base in bases.items()}
        return self.config_for(state.rank, state.options, shapes)

    # -- tensors ---------------------------------------------------------------------------------------------
    @staticmethod
    def _own(name: str) -> bool:
        return not name.startswith("base_layer.") and ADAPTER in name.split(".")

    def layer_trainable(self, layer):  # PEFT's own list of what trains (AdaLoRA's ranknum is a frozen parameter)
        trained = layer.adapter_layer_names
        return [p for n, p in layer.named_parameters() if self._own(n) and n.split(".")[0] in trained]

    def layer_tensors(self, layer):
        return {n: t for n, t in [*layer.named_parameters(), *layer.named_buffers()] if self._own(n)}

    def delta_weight(self, layer):
        base = layer.get_base_layer()
        eye = torch.eye(base.in_features, dtype=base.weight.dtype, device=base.weight.device)
        zero = torch.zeros_like(eye[:1])
        adapted = layer(eye) - layer(zero)
        plain = base(eye) - base(zero)
        return (adapted - plain).T

    # -- counting and the budget -------------------------------------------------------------------------------
    def count(self, shapes, rank, options):
        key = json.dumps(options, sort_keys=True)
        try:
            return sum(_module_count(self.name, tuple(shape), self.module_kind(n), rank, key)
                       for n, shape in shapes.items())
        except (ValueError, RuntimeError, TypeError, AssertionError, IndexError) as err:
            raise AdapterError(f"{self.name} cannot use {self.knob} {rank} on these modules: "
                               f"{str(err).splitlines()[0][:200]}") from None

    def validate_rank(self, rank, shapes):
        self.count(shapes, rank, self.config_class.from_options({}).resolve(rank, shapes).options())

    def budget_candidates(self, shapes, rank, options):
        for value in self.knob_values(shapes, options):
            try:
                self.check_rank_options(value, options)
                yield self.count(shapes, value, options), value, {}
            except AdapterError:
                continue


# ------------------------------------------------------------------------------------------------------------
# the orthogonal family
# ------------------------------------------------------------------------------------------------------------


class _InputBlocks(PeftTuner):
    """Tuners whose knob is a block size b that must divide every target's d_in (OFT, BOFT)."""

    def knob_values(self, shapes, options):
        return _divisors(_gcd_all(d_in for _, d_in in shapes.values()))


class OFT(_InputBlocks):
    """R = Cayley(Q) block-diagonal with blocks of size b (the knob), Q skew: the input rotated, W0 R."""

    config_class = tc.OFTConfig
    peft_type = "OFT"

    def peft_kwargs(self, rank, options, shapes):
        return {"r": 0, "oft_block_size": rank, "block_share": options["block_share"],
                "use_cayley_neumann": options["use_cayley_neumann"], "module_dropout": 0.0}


class BOFT(_InputBlocks):
    """Butterfly-factorised orthogonal R (blocks of size b, the knob) and an output scale: W0 R · diag(s)."""

    config_class = tc.BOFTConfig
    peft_type = "BOFT"

    def peft_kwargs(self, rank, options, shapes):
        return {"boft_block_size": rank, "boft_block_num": 0, "boft_n_butterfly_factor": options["butterfly_factor"],
                "boft_dropout": 0.0}


class PSOFT(PeftTuner):
    """An r×r orthogonal rotation (with two scale vectors) in W0's principal r-dimensional subspace."""

    config_class = tc.PSOFTConfig
    peft_type = "PSOFT"

    def peft_kwargs(self, rank, options, shapes):
        alpha = options["alpha"] if options["alpha"] is not None else rank
        return {"r": rank, "psoft_alpha": alpha, "psoft_orth": options["orthogonal"], "psoft_dropout": 0.0}


class OSF(PeftTuner):
    """W0's top singular directions frozen, the remaining r (the knob) trained as U, S, V: an orthogonal
    complement of what the model knows. PEFT's ``effective_rank`` (the frozen part) is min(d_out, d_in) − r per
    module."""

    config_class = tc.OSFConfig
    peft_type = "OSF"

    def peft_kwargs(self, rank, options, shapes):
        frozen = {name: min(shape) - rank for name, shape in shapes.items()}
        if min(frozen.values()) <= 0:
            raise ValueError(f"the trainable rank {rank} leaves no frozen direction in a module of min(d_out, d_in) "
                             f"{rank + min(frozen.values())}")
        return {"rank_pattern": {rf"(^|\.){re.escape(name)}$": k for name, k in frozen.items()}}


class DeLoRA(PeftTuner):
    """ΔW = λ‖W0‖ · B diag(1/‖b_i‖‖a_i‖) A: LoRA's directions with a bounded, learned strength."""

    config_class = tc.DeLoRAConfig
    peft_type = "DELORA"

    def count(self, shapes, rank, options):  # r·(d_in + d_out) + λ (the tests check it against PEFT's count)
        return sum(rank * (o + i) + 1 for o, i in shapes.values())

    def peft_kwargs(self, rank, options, shapes):
        return {"r": rank, "delora_lambda": options["delora_lambda"], "module_dropout": 0.0}


class GraLoRA(PeftTuner):
    """LoRA of rank r split into a k×k grid of blocks of rank r/k each: a higher-rank ΔW at LoRA's count."""

    config_class = tc.GraLoRAConfig
    peft_type = "GRALORA"

    def count(self, shapes, rank, options):
        if any(o % options["k"] or i % options["k"] for o, i in shapes.values()):
            return super().count(shapes, rank, options)  # PEFT's refusal, in one line
        return sum(rank * (o + i) for o, i in shapes.values())

    def peft_kwargs(self, rank, options, shapes):
        return {"r": rank, "alpha": options["alpha"], "gralora_k": options["k"], "hybrid_r": 0,
                "gralora_dropout": 0.0}


# ------------------------------------------------------------------------------------------------------------
# the rest
# ------------------------------------------------------------------------------------------------------------


class RandLoRA(PeftTuner):
    """A full-rank ΔW from frozen random low-rank bases and trained diagonal scalings (RandLoRA)."""

    config_class = tc.RandLoRAConfig
    peft_type = "RANDLORA"
    budget_monotone = False  # falls like 1/r, then zig-zags (r = 24 → 25 rises on e5-small)

    def peft_kwargs(self, rank, options, shapes):
        alpha = options["alpha"] if options["alpha"] is not None else 20 * rank
        return {"r": rank, "randlora_alpha": alpha, "projection_prng_key": options["projection_prng_key"],
                "save_projection": True, "randlora_dropout": 0.0}

    def knob_values(self, shapes, options):  # its count falls as r grows (m²/r): LoRA-like budgets need r ≥ 8
        return list(range(1, min(128, min(min(s) for s in shapes.values())) + 1))


class MiSS(PeftTuner):
    """One trained r×d shard, shared across the weight's row blocks (MiSS)."""

    config_class = tc.MiSSConfig
    peft_type = "MISS"

    def peft_kwargs(self, rank, options, shapes):
        return {"r": rank, "miss_dropout": 0.0}


class C3A(PeftTuner):
    """ΔW as a grid of circulant blocks of size b (the knob), applied by FFT: d_in·d_out / b parameters."""

    config_class = tc.C3AConfig
    peft_type = "C3A"

    def peft_kwargs(self, rank, options, shapes):
        return {"block_size": rank, "init_weights": True}

    def knob_values(self, shapes, options):
        return _divisors(_gcd_all([*(d for s in shapes.values() for d in s)]))


class RoAd(PeftTuner):
    """2-D rotations (angle and scale per pair of output features) of W0x: 1, 2 or 4 pairs of vectors."""

    config_class = tc.RoAdConfig
    peft_type = "ROAD"

    def peft_kwargs(self, rank, options, shapes):
        return {"variant": f"road_{options['variant']}", "group_size": options["group_size"]}

    def knob_values(self, shapes, options):
        return [1]

    def validate_rank(self, rank, shapes):
        """RoAd has no rank; any rank is recorded and means nothing."""


class FourierFT(PeftTuner):
    """ΔW the inverse 2-D DFT of n trained coefficients at fixed random frequencies (n per module, the knob)."""

    config_class = tc.FourierFTConfig
    peft_type = "FOURIERFT"

    def peft_kwargs(self, rank, options, shapes):
        return {"n_frequency": rank, "scaling": options["scaling"], "random_loc_seed": options["random_loc_seed"],
                "init_weights": True}

    def budget_candidates(self, shapes, rank, options):  # n per module, so the count is n times the modules
        for n in range(1, min(o * i for o, i in shapes.values()) + 1):
            yield n * len(shapes), n, {}


class LoHa(PeftTuner):
    """ΔW = s·(B₁A₁) ⊙ (B₂A₂), two rank-r pairs (Hadamard product): rank up to r²."""

    config_class = tc.LoHaConfig
    peft_type = "LOHA"

    def count(self, shapes, rank, options):
        return sum(2 * rank * (o + i) for o, i in shapes.values())

    def peft_kwargs(self, rank, options, shapes):
        return {"r": rank, "alpha": options["alpha"], "rank_dropout": 0.0, "module_dropout": 0.0}


class LoKr(PeftTuner):
    """ΔW = s·W₁ ⊗ (B A), a Kronecker product with a rank-r factor."""

    config_class = tc.LoKrConfig
    peft_type = "LOKR"
    budget_monotone = False  # rises with r, but drops where PEFT swaps B A for a full W₂ (r = 24 on e5-small)

    def peft_kwargs(self, rank, options, shapes):
        return {"r": rank, "alpha": options["alpha"], "decompose_factor": options["decompose_factor"],
                "rank_dropout": 0.0, "module_dropout": 0.0}


class IA3(PeftTuner):
    """Learned scales: of the output of attention and FFN-in, of the input of FFN-out (IA³); one size."""

    config_class = tc.IA3Config
    peft_type = "IA3"

    @staticmethod
    def _feedforward(name: str) -> bool:
        kind = module_type(name)
        return kind.endswith("output.dense") and "attention" not in kind

    def module_kind(self, name):
        return "ffn_out" if self._feedforward(name) else "layer"

    def peft_kwargs(self, rank, options, shapes):
        return {"feedforward_modules": [n for n in shapes if self._feedforward(n) or n == "ffn_out"]}

    def knob_values(self, shapes, options):
        return [1]

    def validate_rank(self, rank, shapes):
        """IA³ has no size knob; any rank is recorded and means nothing."""
