"""The Hugging Face Trainer, as sentence-transformers subclasses it, with two changes of ours.

:class:`AdapterTrainer` writes checkpoints that hold **only the adapter tensors** (a few MB instead of the
whole encoder) and reads them back through the adapter library's public reload path
(``load_adapter_weights``, which runs each method's reload hooks: PiSSA moves its residual base there);
and it stops on a non-finite loss, keeping the last good checkpoint. Everything else — optimiser,
scheduler, RNG state, resumption, logging, mixed precision, DDP — is the Trainer's own.
"""

from __future__ import annotations

from pathlib import Path

import torch
from sentence_transformers import SentenceTransformerTrainer
from transformers import TrainerCallback

from .. import runs
from ..errors import NonFiniteLoss


class AdapterTrainer(SentenceTransformerTrainer):
    """A SentenceTransformerTrainer whose checkpoints hold only the adapter, and that stops on NaN/inf.

    ``adapter_checkpoints=False`` (full fine-tuning) keeps the Trainer's own whole-model checkpoints.
    """

    def __init__(self, *args, adapter_checkpoints: bool = True, fail_at_step: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.adapter_checkpoints = adapter_checkpoints
        self.fail_at_step = fail_at_step
        self.add_callback(_MethodSteps(self))

    def _adapter(self):
        """``(method, state)`` of the adapter on the model, or None (full fine-tuning)."""
        from ..adapters import get_method
        from ..adapters.method import get_state

        state = get_state(self.model)
        return (get_method(state.method), state) if state is not None else None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)
        adapter = self._adapter()
        term = adapter[0].regularization(adapter[1]) if adapter else None
        if term is not None:  # a method's own loss term (AdaLoRA's orthogonality penalty)
            loss = (loss[0] + term, *loss[1:]) if isinstance(loss, tuple) else loss + term
        value = loss[0] if isinstance(loss, tuple) else loss
        if self.fail_at_step is not None and self.state.global_step + 1 >= self.fail_at_step:
            value = value * float("nan")
        if not torch.isfinite(value.detach()).all():
            raise NonFiniteLoss(f"the training loss became {value.item()} at step {self.state.global_step + 1}")
        return loss

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        if not self.adapter_checkpoints:
            return super()._save(output_dir, state_dict)
        from ..adapters import save_adapter

        save_adapter(self.model, Path(output_dir or self.args.output_dir) / runs.ADAPTER_DIR)

    def _load_from_checkpoint(self, checkpoint_path: str, model=None) -> None:
        if not self.adapter_checkpoints:
            return super()._load_from_checkpoint(checkpoint_path)
        from ..adapters import load_adapter_weights

        load_adapter_weights(self.model, Path(checkpoint_path) / runs.ADAPTER_DIR)


class _MethodSteps(TrainerCallback):
    """Runs the adapter method's hook after every optimiser step, before the gradients are zeroed (AdaLoRA
    reallocates its ranks there from the gradients)."""

    def __init__(self, trainer: AdapterTrainer):
        self.trainer = trainer

    def on_optimizer_step(self, args, state, control, **kwargs):
        adapter = self.trainer._adapter()
        if adapter is not None:  # the step just taken, counted from 1: the Trainer increments global_step after this
            adapter[0].after_optimizer_step(adapter[1], state.global_step + 1)
