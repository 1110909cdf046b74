"""Running the encoder on sample texts, for the methods whose initialisation reads the data (GeLoRA's intrinsic
dimensions, EVA's and CorDA's layer-input statistics): tokenised as the SentenceTransformer tokenises, no gradient,
eval mode (restored afterwards)."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ..errors import AdapterError
from .targets import inner_model


def tokenizer(model: nn.Module, method: str, hint: str = ""):
    """The SentenceTransformer's own tokenisation (``preprocess``, or ``tokenize`` in older releases)."""
    preprocess = getattr(model, "preprocess", None) or getattr(model, "tokenize", None)
    if preprocess is None:
        raise AdapterError(f"{method} can read texts only through a SentenceTransformer{hint}")
    return preprocess


def token_batches(model: nn.Module, texts: Sequence[str], method: str, batch_size: int = 32,
                  max_tokens: int | None = None, hint: str = "", **forward: Any) -> Iterator[tuple[Any, torch.Tensor]]:
    """``(output, mask)`` for each batch of ``texts`` run through the inner encoder (``forward`` passed on, e.g.
    ``output_hidden_states=True``); ``mask`` marks the real tokens. Stops once ``max_tokens`` real tokens were seen.
    ``hint`` ends the refusal of a model that cannot read texts (what else the method accepts)."""
    if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
        raise AdapterError(f"{method} needs a non-empty list of sample texts (texts=[...])")
    preprocess = tokenizer(model, method, hint)
    root = inner_model(model)
    device = next(root.parameters()).device
    was_training = root.training
    root.eval()
    seen = 0
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                features = preprocess(list(texts[start : start + batch_size]))
                inputs = {k: v.to(device) for k, v in features.items()
                          if k in ("input_ids", "attention_mask", "token_type_ids") and isinstance(v, torch.Tensor)}
                mask = inputs["attention_mask"].bool()
                yield root(**inputs, **forward), mask
                seen += int(mask.sum())
                if max_tokens is not None and seen >= max_tokens:
                    break
    finally:
        root.train(was_training)
