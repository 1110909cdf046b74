"""Helpers shared by the adapter tests: a tiny random encoder, the offline default model (loaded once per
process), a few texts, encoding and a real training step (MultipleNegativesRankingLoss + AdamW)."""

from __future__ import annotations

import contextlib
import copy
import os

import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEXTS = [
    "unemployment benefits",
    "attitudes towards immigration in Europe",
    "voting behaviour",
    "household income and poverty",
    "trust in political institutions",
    "religious practice among young adults",
]
PAIRS = [
    ("unemployment", "labour market exclusion and joblessness"),
    ("social inequality", "income distribution between social classes"),
    ("voting", "electoral participation and party choice"),
    ("housing", "dwellings, rents and home ownership"),
]


class TinyBlock(nn.Module):
    def __init__(self, d: int, f: int):
        super().__init__()
        self.query = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.up = nn.Linear(d, f)
        self.down = nn.Linear(f, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.value(torch.tanh(self.query(x)))
        return h + self.down(torch.relu(self.up(h)))


class TinyEncoder(nn.Module):
    """Two numbered blocks of four linears, plus a head outside the blocks (not a default target)."""

    def __init__(self, d: int = 16, f: int = 24, blocks: int = 2):
        super().__init__()
        self.layers = nn.ModuleList(TinyBlock(d, f) for _ in range(blocks))
        self.head = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            x = block(x)
        return self.head(x)


def tiny_encoder(seed: int = 0, **kwargs) -> TinyEncoder:
    torch.manual_seed(seed)
    return TinyEncoder(**kwargs)


@contextlib.contextmanager
def one_intra_op_thread():
    """Run a test module on one torch thread, then restore the setting.

    These tests are dominated by small ops and LAPACK calls; on a 2-core machine shared with other jobs a
    2-thread OpenMP team waits on descheduled threads at every barrier (measured: the adapter suite took
    6m49s on 2 threads and 62 s on 1 under the same load). Results do not depend on the thread count.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


_DEFAULT = {}


def default_model():
    """all-MiniLM-L6-v2, loaded once per process (copy it before adapting): the adapter tests check the real
    parameter budgets (LoRA r=8 = 331,776 on its 36 linear layers)."""
    if "model" not in _DEFAULT:
        from elsst_bench.models import load_sentence_transformer

        model = load_sentence_transformer("all-MiniLM-L6-v2")
        model.eval()
        _DEFAULT["model"] = model
    return _DEFAULT["model"]


def fresh_default():
    return copy.deepcopy(default_model())


def tiny_model():
    """The tests' tiny random BERT (tests/tiny_model.py, ``$ELSST_BENCH_MODEL``), loaded once per process: the
    base of the registry-wide lifecycle, whose checks (identity at init, only the adapter trains, save/load,
    merging) hold whatever the width, as PEFT's own test matrix runs on tiny random models."""
    if "tiny" not in _DEFAULT:
        from elsst_bench.models import load_sentence_transformer

        model = load_sentence_transformer(os.environ["ELSST_BENCH_MODEL"])
        model.eval()
        _DEFAULT["tiny"] = model
    return _DEFAULT["tiny"]


def fresh_tiny():
    return copy.deepcopy(tiny_model())


def features(model, texts=TEXTS) -> dict:
    return dict(model.preprocess(list(texts)))


def encode(model, feats: dict) -> dict[str, torch.Tensor]:
    """Sentence and token embeddings in eval mode, no gradients."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(dict(feats))
    model.train(was_training)
    return {"sentence": out["sentence_embedding"].clone(), "token": out["token_embeddings"].clone()}


def train_steps(model, params, steps: int = 2, lr: float = 1e-2, pairs=PAIRS) -> list[float]:
    """Real training steps: MNRL on (query, positive) pairs, backward, AdamW."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    loss_fn = MultipleNegativesRankingLoss(model)
    optimizer = torch.optim.AdamW(params, lr=lr)
    queries = features(model, [q for q, _ in pairs])
    positives = features(model, [p for _, p in pairs])
    labels = torch.zeros(len(pairs))
    model.train()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn([dict(queries), dict(positives)], labels)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def random_lora_sources(root, load_model, count: int = 2) -> list[str]:
    """``count`` saved LoRA r=8 adapters of ``load_model()`` with random B (seeded by their index), under
    ``root``: EigenLoRAx's sources."""
    from elsst_bench.adapters import adapted_layers, apply_adapter, save_adapter

    dirs = []
    for i in range(count):
        model = load_model()
        apply_adapter(model, "lora", rank=8)
        generator = torch.Generator().manual_seed(i)
        with torch.no_grad():
            for layer in adapted_layers(model).values():
                layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.01)
        dirs.append(str(save_adapter(model, root / f"lora{i}")))
    return dirs
