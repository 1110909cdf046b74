"""PEFT's own methods behind our interface: ``dora``, ``pissa``, ``vera``, ``hra``.

The PEFT tuner (``LoraModel``, ``VeraModel``, ``HRAModel``) injects its layers into the inner Hugging Face
encoder on exactly our target module names (VeRA keeps shared state on the tuner, which PEFT's
``inject_adapter_in_model`` refuses, so every tuner is instantiated directly and the ``peft_config``
attribute it leaves on the model is removed). What we add on top:

* ``delta_weight()`` bound on every PEFT layer, ΔW against the *pretrained* W0 in torch layout:
  - ``dora``: (m / ‖W0 + sBA‖_row) ⊙ (W0 + sBA) − W0 (what PEFT's merge writes, minus W0);
  - ``pissa``: s (B A − B0 A0), where B0, A0 are PiSSA's initial factors (PEFT stores W0 − s B0 A0 as the
    base weight, so W0 + ΔW is the effective weight);
  - ``vera``: PEFT's ``get_delta_weight`` = (λ_b ⊙ B)(λ_d ⊙ A), the frozen random A, B sliced per layer;
  - ``hra``: W0 H − W0 with H the product of the Householder reflections (``get_delta_weight``).
* Saving in our format: only the tensors PEFT trains plus what a fresh base model needs to reproduce the
  outputs: DoRA's magnitude vector; for PiSSA the initial factors A0, B0 (on load the residual base is
  recomputed as W0 − s·B0 A0 with PEFT's own float32 arithmetic, bit for bit, then A, B are loaded: the
  saved file is twice LoRA's size but carries no d_out×d_in tensor); VeRA's shared random projections
  ``vera_A``/``vera_B`` (stored once, under the first layer).
* Export (``export --peft``): DoRA, VeRA and HRA as PEFT adapters of their own type, the trained tensors
  copied into PEFT's layers; PiSSA, whose PEFT form would need the residual base, as the exact LoRA of rank 2r
  against W0, as PEFT's own PiSSA-to-LoRA conversion does.
* Merging through PEFT's ``layer.merge()``, then the base ``nn.Linear`` is put back (what
  ``merge_and_unload`` does).

Identity at init: DoRA (magnitude = row norms of W0, B = 0) and VeRA (λ_b = 0) are exact. PiSSA moves the
top-r spectrum from W0 into B0 A0, so W0 − s B0 A0 + s B0 A0 equals W0 only up to float32 rounding (measured
≲ 1e-6 on the encoder output, tested at 1e-5); HRA multiplies W0 by pairs of equal reflections
(I − 2uuᵀ)² = I, again exact only up to rounding (same tolerance). Parameter counts: dora r(d_in + d_out) + d_out;
pissa r(d_in + d_out); vera r + d_out (random A ∈ R^{r×max d_in}, B ∈ R^{max d_out×r} are frozen); hra r·d_in
(r even: PEFT's identity initialisation pairs the reflections).

Budget knobs: the rank; for DoRA, whose magnitude vectors alone overshoot LoRA r's budget by d_out per
module, the solver may also raise whole module types by one rank (``rank_pattern``) to land within ±5 %.
VeRA cannot reach LoRA r=8's count with rank ≤ min(d_in, d_out) (its count is r + d_out), so it records
"below budget".
"""

from __future__ import annotations

import abc
import functools
import itertools
import re
import warnings

import torch
from torch import nn

from ..errors import AdapterError
from .configs import DoRAConfig, HRAConfig, PiSSAConfig, VeRAConfig
from .method import BuildContext, Method
from .names import module_type
from .targets import set_submodule

ADAPTER = "default"


class PeftMethod(Method):
    """A PEFT tuner behind our interface (the registry lists these with source ``peft``)."""

    @abc.abstractmethod
    def tuner_cls(self):
        """The PEFT tuner class (``LoraModel``, ``VeraModel``, ``HRAModel``)."""

    @abc.abstractmethod
    def peft_config(self, ctx: BuildContext, names: list[str]):
        """The PEFT config for exactly the target modules ``names``."""

    def after_inject(self, ctx: BuildContext, layers: dict[str, nn.Module]) -> None:
        """Hook: PiSSA records its initial factors here."""

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        from peft.tuners.tuners_utils import BaseTunerLayer

        names = list(ctx.targets)
        config = self.peft_config(ctx, names)
        had_config = "peft_config" in vars(ctx.root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctx.scratch["tuner"] = self.tuner_cls()(ctx.root, config, adapter_name=ADAPTER)  # AdaLoRA steps it
        if not had_config and "peft_config" in vars(ctx.root):
            del ctx.root.peft_config
        layers = {}
        for name in names:
            layer = ctx.root.get_submodule(name)
            if not isinstance(layer, BaseTunerLayer):  # pragma: no cover - PEFT changed its matching
                raise AdapterError(f"PEFT did not adapt module {name}")
            layer.delta_weight = functools.partial(self.delta_weight, layer)
            layers[name] = layer
        self.after_inject(ctx, layers)
        return layers

    def own_peft_config(self, state):
        # restore: the structure only; the exporter copies the trained tensors in (for DoRA, init stays True so
        # PEFT builds the magnitude vector, overwritten then)
        ctx = BuildContext(model=None, root=None, targets={}, rank=state.rank, options=state.options, inputs={},
                           restore={})
        return self.peft_config(ctx, list(state.layers))

    def merge(self, state, root):
        for name, layer in state.layers.items():
            with torch.no_grad():
                layer.merge(safe_merge=False)
            set_submodule(root, name, layer.get_base_layer())


# ------------------------------------------------------------------------------------------------------------
# LoRA family: DoRA and PiSSA
# ------------------------------------------------------------------------------------------------------------


class _LoraFamily(PeftMethod):
    """alpha=None (saved as None): α = 2·r per module (s = 2), as our LoRA."""

    use_dora = False
    init = True

    def module_ranks(self, names, rank, options) -> dict[str, int]:
        return {n: rank for n in names}

    def peft_config(self, ctx, names):
        from peft import LoraConfig

        ranks = self.module_ranks(names, ctx.rank, ctx.options)
        alpha = ctx.options["alpha"]
        pattern = {re.escape(n): r for n, r in ranks.items() if r != ctx.rank}
        alpha_pattern = {} if alpha is not None else {re.escape(n): 2 * r for n, r in ranks.items() if r != ctx.rank}
        return LoraConfig(
            r=ctx.rank,
            lora_alpha=alpha if alpha is not None else 2 * ctx.rank,
            target_modules=names,
            lora_dropout=0.0,
            bias="none",
            use_dora=self.use_dora,
            init_lora_weights=self.init if ctx.restore is None else (True if self.use_dora else False),
            rank_pattern=pattern,
            alpha_pattern=alpha_pattern,
        )

    def tuner_cls(self):
        from peft import LoraModel

        return LoraModel

    def layer_trainable(self, layer):
        params = [layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight]
        if self.use_dora:
            params.append(layer.lora_magnitude_vector[ADAPTER].weight)
        return params

    def layer_tensors(self, layer):
        out = {"lora_A": layer.lora_A[ADAPTER].weight, "lora_B": layer.lora_B[ADAPTER].weight}
        if self.use_dora:
            out["magnitude"] = layer.lora_magnitude_vector[ADAPTER].weight
        return out

    def count(self, shapes, rank, options):
        ranks = self.module_ranks(list(shapes), rank, options)
        extra = sum(d_out for d_out, _ in shapes.values()) if self.use_dora else 0
        return sum(ranks[n] * (d_out + d_in) for n, (d_out, d_in) in shapes.items()) + extra

    @staticmethod
    def lora_delta(layer) -> torch.Tensor:
        a, b = layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight
        return (b @ a) * layer.scaling[ADAPTER]


class DoRA(_LoraFamily):
    config_class = DoRAConfig  # rank_pattern: {module type: rank}, checked against the target modules there
    use_dora = True
    budget_monotone = False  # each rank's subsets of module types raised by one: the counts go up and down

    def module_ranks(self, names, rank, options):
        pattern = options.get("rank_pattern") or {}
        return {n: pattern.get(module_type(n), rank) for n in names}

    def budget_candidates(self, shapes, rank, options):
        types: dict[str, int] = {}
        caps: dict[str, int] = {}
        for n, (d_out, d_in) in shapes.items():
            t = module_type(n)
            types[t] = types.get(t, 0) + d_out + d_in
            caps[t] = min(caps.get(t, d_in), d_in, d_out)
        order = list(types)
        total = sum(types.values())
        magnitude = sum(d_out for d_out, _ in shapes.values())
        top = min(caps.values())
        subsets = [()]
        if len(order) <= 8:
            subsets = [c for k in range(len(order)) for c in itertools.combinations(order, k)]
        for r in range(1, top + 1):
            for subset in subsets:
                if any(r + 1 > caps[t] for t in subset):
                    continue
                count = r * total + sum(types[t] for t in subset) + magnitude
                yield count, r, {"rank_pattern": {t: r + 1 for t in subset}}

    def delta_weight(self, layer):
        w0 = layer.get_base_layer().weight
        combined = w0 + self.lora_delta(layer)
        norm = torch.linalg.norm(combined, dim=1)
        magnitude = layer.lora_magnitude_vector[ADAPTER].weight
        return (magnitude / norm).unsqueeze(1) * combined - w0


class PiSSA(_LoraFamily):
    config_class = PiSSAConfig
    init = "pissa"

    def after_inject(self, ctx, layers):
        for layer in layers.values():
            a0 = layer.lora_A[ADAPTER].weight.detach().clone()
            b0 = layer.lora_B[ADAPTER].weight.detach().clone()
            if ctx.restore is not None:  # filled by load_adapter, then after_load rebuilds the residual
                a0.zero_()
                b0.zero_()
            layer.register_buffer("pissa_A0", a0)
            layer.register_buffer("pissa_B0", b0)

    def layer_tensors(self, layer):
        out = super().layer_tensors(layer)
        out["A0"] = layer.pissa_A0
        out["B0"] = layer.pissa_B0
        return out

    def after_load(self, state):
        # the fresh model's base holds W0; PiSSA trains against W0 − s·B0 A0 (PEFT's pissa_init arithmetic)
        for layer in state.layers.values():
            base = layer.get_base_layer()
            with torch.no_grad():
                weight = base.weight.to(torch.float32)
                weight = weight.data - layer.scaling[ADAPTER] * layer.pissa_B0.float() @ layer.pissa_A0.float()
                base.weight.data = weight.to(base.weight.dtype)

    def before_reload(self, state):
        return {n: (l.pissa_A0.clone(), l.pissa_B0.clone()) for n, l in state.layers.items()}

    def after_reload(self, state, previous):
        # a checkpoint of the same run has the same A0, B0 (PiSSA's init is deterministic); otherwise move the
        # residual base from W0 − s·B0_old A0_old to W0 − s·B0_new A0_new (exact up to float32 rounding)
        for name, layer in state.layers.items():
            a0, b0 = previous[name]
            if torch.equal(a0, layer.pissa_A0) and torch.equal(b0, layer.pissa_B0):
                continue
            base = layer.get_base_layer()
            with torch.no_grad():
                s = layer.scaling[ADAPTER]
                weight = base.weight.float() + s * b0.float() @ a0.float()
                weight = weight - s * layer.pissa_B0.float() @ layer.pissa_A0.float()
                base.weight.data = weight.to(base.weight.dtype)

    def delta_weight(self, layer):
        a, b = layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight
        return (b @ a - layer.pissa_B0 @ layer.pissa_A0) * layer.scaling[ADAPTER]

    def lora_rank_bound(self, state):
        # ΔW = s(BA − B0 A0) has rank ≤ 2r against the pretrained W0: PEFT's own PiSSA-to-LoRA conversion
        # (save_pretrained(path_initial_model_for_weight_conversion=...)) writes it as a LoRA of rank 2r too
        return 2 * max(layer.r[ADAPTER] for layer in state.layers.values())

    def own_peft_config(self, state):
        raise AdapterError("pissa's own PEFT form needs its residual base model; it is exported as the exact "
                           "LoRA of rank 2r against W0")


# ------------------------------------------------------------------------------------------------------------
# VeRA and HRA
# ------------------------------------------------------------------------------------------------------------


class VeRA(PeftMethod):
    config_class = VeRAConfig

    def tuner_cls(self):
        from peft import VeraModel

        return VeraModel

    def peft_config(self, ctx, names):
        from peft import VeraConfig

        return VeraConfig(
            r=ctx.rank,
            target_modules=names,
            projection_prng_key=ctx.options["projection_prng_key"],
            save_projection=True,
            vera_dropout=0.0,
            d_initial=float(ctx.options["d_initial"]),
        )

    def count(self, shapes, rank, options):
        return sum(rank + d_out for d_out, _ in shapes.values())

    def layer_trainable(self, layer):
        return [layer.vera_lambda_b[ADAPTER], layer.vera_lambda_d[ADAPTER]]

    def layer_tensors(self, layer):
        return {
            "lambda_b": layer.vera_lambda_b[ADAPTER],
            "lambda_d": layer.vera_lambda_d[ADAPTER],
            "vera_A": layer.vera_A[ADAPTER],
            "vera_B": layer.vera_B[ADAPTER],
        }

    def delta_weight(self, layer):
        return layer.get_delta_weight(ADAPTER)


class HRA(PeftMethod):
    config_class = HRAConfig  # its rank must be even (checked there)

    def tuner_cls(self):
        from peft import HRAModel

        return HRAModel

    def peft_config(self, ctx, names):
        from peft import HRAConfig

        return HRAConfig(r=ctx.rank, target_modules=names, apply_GS=ctx.options["apply_gs"], init_weights=True)

    def count(self, shapes, rank, options):
        return sum(rank * d_in for _, d_in in shapes.values())

    def layer_trainable(self, layer):
        return [layer.hra_u[ADAPTER]]

    def layer_tensors(self, layer):
        return {"hra_u": layer.hra_u[ADAPTER]}

    def delta_weight(self, layer):
        w0 = layer.get_base_layer().weight
        return w0 @ layer.get_delta_weight(ADAPTER) - w0
