"""AdaLoRA (Zhang et al. 2023) through PEFT: ΔW = s·P Λ Q, P and Q pushed towards orthonormal by a penalty, and
Λ's entries pruned by importance from r₀ = init_r to an average of r per module while it trains.

The two things PEFT leaves to its own training loop are done by the training layer's Trainer through two hooks of
:class:`~.method.Method`: the orthogonality penalty is added to sentence-transformers' loss
(:meth:`AdaLoRA.regularization`), and the rank allocator runs after every optimiser step, before the gradients are
zeroed (:meth:`AdaLoRA.after_optimizer_step`, PEFT's ``update_and_allocate``). The schedule needs the run's number
of steps (``total_step``), which the training layer supplies; applied outside training, no rank is pruned.
Its trainable parameters are r₀·(d_in + d_out + 1) per module from the start (the pruned entries of Λ are zeroed,
not removed), so the budget solver turns r₀ (``init_r``), with r = ⅔·r₀.
"""

from __future__ import annotations

import torch

from . import tuner_configs as tc
from .peft_methods import ADAPTER
from .peft_tuners import PeftTuner


class AdaLoRA(PeftTuner):
    """ΔW = s·P Λ Q, P and Q pushed towards orthonormal by a penalty, Λ's entries pruned by importance from init_r
    to an average of r per module during training (the Trainer steps it: :meth:`after_optimizer_step`)."""

    config_class = tc.AdaLoRAConfig
    peft_type = "ADALORA"

    def budget_candidates(self, shapes, rank, options):
        for init_r in range(1, min(min(s) for s in shapes.values()) + 1):
            target = max(1, round(2 * init_r / 3))
            updated = {**options, "init_r": init_r}
            yield self.count(shapes, target, updated), target, {"init_r": init_r}

    def peft_kwargs(self, rank, options, shapes):
        init_r = options["init_r"] or rank + rank // 2
        alpha = options["alpha"] if options["alpha"] is not None else 2 * init_r
        return {"init_r": init_r, "target_r": rank, "lora_alpha": alpha, "lora_dropout": 0.0,
                "total_step": options["total_step"] or 1, "tinit": options["tinit"], "tfinal": options["tfinal"],
                "deltaT": options["delta_t"], "beta1": options["beta1"], "beta2": options["beta2"],
                "orth_reg_weight": options["orth_reg_weight"]}

    def regularization(self, state):
        """PEFT's penalty (``AdaLoraModel.forward``): the mean over P and Q of ‖PPᵀ − I‖_F (‖QᵀQ − I‖_F), times
        ``orth_reg_weight``; PEFT adds it only to a loss the model itself returns, and sentence-transformers'
        loss is computed outside the model."""
        weight = state.options["orth_reg_weight"]
        if not weight:
            return None
        terms = []
        for layer in state.layers.values():
            a, b = layer.lora_A[ADAPTER], layer.lora_B[ADAPTER]
            for cov in (a @ a.T, b.T @ b):
                terms.append(torch.linalg.norm(cov - torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)))
        return weight * torch.stack(terms).mean()

    def after_optimizer_step(self, state, step):
        tuner = state.runtime.get("tuner")
        if tuner is not None and state.options["total_step"]:
            tuner.update_and_allocate(step)
