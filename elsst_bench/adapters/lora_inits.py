"""LoRA's initialisations, the ``init`` option of ``lora``: each a small class that gives a target layer's starting
factors A0 ∈ R^{r×d_in}, B0 ∈ R^{d_out×r}, from W0 alone or from statistics of the layer's inputs over the run's
training texts. The registry of names is :data:`LORA_INITS`; ``LoRAConfig`` validates against
:data:`.configs.LORA_INIT_NAMES` (a test keeps the two equal).

* ``default``: A0 Kaiming-uniform (a = √5, as nn.Linear and PEFT), B0 = 0.
* ``gaussian``: A0 ~ N(0, 1/r) (PEFT's ``init_lora_weights="gaussian"``), B0 = 0.
* ``olora`` (Büyükakyüz 2024): W0 = QR (float32), B0 = Q[:, :r], A0 = R[:r] (PEFT's ``olora_init``).
* ``eva`` (Paischer et al. 2024): A0 = the top-r principal directions of the layer's inputs X (centred, as PEFT's
  incremental PCA), B0 = 0. PEFT's default redistributes ranks across layers (ρ = 2); here every layer keeps rank
  r (ρ = 1), so the count stays LoRA's and the budget holds.
* ``corda`` (Yang et al. 2024, instruction-previewed mode, PEFT's default ``ipm``): C = XᵀX/N the layer-input
  covariance, damped as PEFT does (C + δ·mean(diag C)·I, δ = 0.01 doubled until ‖C C⁻¹ − I‖ < 0.05; in float64,
  where PEFT works in float32: the inverse of an ill-conditioned C moved B0 A0 by 0.1 % in float32);
  W0 C = U S Vhᵀ, V = (Vh C⁻¹)ᵀ; with S' = S/s, A0 = √S'_{:r} V_{:,:r}ᵀ, B0 = U_{:,:r} √S'_{:r} (PEFT's
  ``corda_init``). PEFT normalises each calibration batch by its largest entry before summing; here the tokens are
  pooled unscaled (the factors do not depend on C's overall scale, only on its shape).
* ``lora-ga`` (Wang et al. 2024): G = ∂L/∂W0, the gradient of the plain recipe's loss (in-batch InfoNCE, scale
  :data:`LOSS_SCALE`) averaged over batches of the run's training pairs (with the model's prompts, eval mode);
  G = U S Vhᵀ; A0 = Vh_{:r}, B0 = U_{:,r:2r} diag(S_{r:2r}) · d_out^{1/4}/√γ, γ = 16 (PEFT's defaults: direction
  ``ArB2r``, scale ``stable``). PEFT takes the SVD with ``torch.svd_lowrank`` (randomised); here it is exact, so
  the init is deterministic. For another recipe it is still the plain loss's gradient.

Where B0 A0 ≠ 0 (olora, corda, lora-ga) the adapter trains against the residual W0 − s·B0 A0 and ΔW = s(BA − B0A0): the
layer keeps A0, B0 as buffers (saved with the adapter) and subtracts their product in the forward, so the base
weights are never changed and ΔW is exactly 0 at init (see :class:`.lora.LoRALinear`). PEFT instead writes the
residual into the base weight; the effective weight and the gradients of A and B are the same.

Layer inputs are collected over at most :data:`TOKENS` tokens of the texts the training layer hands the adapter
(an even spread of the distinct training queries, :meth:`.configs.LoRAConfig.training_inputs`).
"""

from __future__ import annotations

import math
from typing import ClassVar, Sequence

import torch
from torch import nn

from ..errors import AdapterError
from .activations import token_batches, tokenizer
from .layers import kaiming_uniform_like_linear

#: Tokens of the training texts over which EVA and CorDA read each layer's inputs.
TOKENS = 4096

#: The plain recipe's InfoNCE scale (MultipleNegativesRankingLoss's default, ``training.recipes.SCALE``; a test keeps
#: the two equal): LoRA-GA's gradient is this loss's.
LOSS_SCALE = 20.0

#: Pairs per batch of LoRA-GA's gradient (the other pairs of a batch are each pair's negatives).
GRADIENT_BATCH = 32


class LayerInputs:
    """Running first and second moments of one linear layer's inputs (float64): n, Σx, Σxxᵀ."""

    def __init__(self, d_in: int):
        self.n = 0
        self.sum = torch.zeros(d_in, dtype=torch.float64)
        self.outer = torch.zeros(d_in, d_in, dtype=torch.float64)

    def add(self, x: torch.Tensor) -> None:
        x = x.to("cpu", torch.float64)
        self.n += x.shape[0]
        self.sum += x.sum(0)
        self.outer += x.T @ x

    def covariance(self, centred: bool) -> torch.Tensor:
        if self.n < 2:
            raise AdapterError("too few tokens in the sample texts to read a layer's input statistics")
        second = self.outer / self.n
        if not centred:
            return second
        mean = self.sum / self.n
        return (second - torch.outer(mean, mean)) * (self.n / (self.n - 1))


def layer_inputs(model: nn.Module, targets: dict[str, nn.Linear], texts: Sequence[str], method: str,
                 max_tokens: int = TOKENS) -> dict[str, LayerInputs]:
    """The input moments of every target layer over the real (non-padding) tokens of ``texts``."""
    stats = {name: LayerInputs(layer.in_features) for name, layer in targets.items()}
    current: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(module, args, output):
            current[name] = args[0]
        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in targets.items()]
    try:
        for _, mask in token_batches(model, texts, method, max_tokens=max_tokens):
            for name, x in current.items():
                stats[name].add(x[mask])
            current.clear()
    finally:
        for handle in handles:
            handle.remove()
    return stats


def loss_gradients(model: nn.Module, targets: dict[str, nn.Linear], pairs: Sequence[tuple[str, str]],
                   method: str) -> dict[str, torch.Tensor]:
    """∂L/∂W of every target layer, averaged over batches of :data:`GRADIENT_BATCH` pairs; L is in-batch InfoNCE at
    scale :data:`LOSS_SCALE` over the sentence embeddings (each pair's positive against the batch's others). Eval
    mode (no dropout, so the init is deterministic); every ``requires_grad`` and the mode are restored after."""
    import torch.nn.functional as F

    if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise AdapterError(f"{method} needs training pairs (pairs=[(query, document), ...])")
    preprocess = tokenizer(model, method)
    device = next(model.parameters()).device
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    weights = {name: layer.weight for name, layer in targets.items()}
    batches = 0
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        for w in weights.values():
            w.grad = None
            w.requires_grad_(True)
        model.eval()
        with torch.enable_grad():
            for start in range(0, len(pairs), GRADIENT_BATCH):
                chunk = pairs[start : start + GRADIENT_BATCH]
                if len(chunk) < 2:  # one pair has no negative
                    break
                embedded = []
                for side in range(2):
                    features = {k: v.to(device) for k, v in preprocess([pair[side] for pair in chunk]).items()
                                if isinstance(v, torch.Tensor)}
                    embedded.append(F.normalize(model(features)["sentence_embedding"], dim=-1))
                logits = LOSS_SCALE * embedded[0] @ embedded[1].T
                F.cross_entropy(logits, torch.arange(len(chunk), device=device)).backward()
                batches += 1
        if batches == 0:
            raise AdapterError(f"{method} needs at least two training pairs")
        return {name: w.grad.detach().to("cpu", torch.float64) / batches for name, w in weights.items()}
    finally:
        for w in weights.values():
            w.grad = None
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


class LoraInit:
    """One initialisation: ``factors`` gives (A0, B0) for a layer from what it ``reads`` (None; ``"inputs"``: the
    layer's :class:`LayerInputs`; ``"gradients"``: ∂L/∂W0); ``residual`` says whether B0 A0 can be non-zero (the layer
    then trains against W0 − s·B0 A0)."""

    name: ClassVar[str]
    residual: ClassVar[bool] = False
    reads: ClassVar[str | None] = None

    def factors(self, base: nn.Linear, rank: int, scaling: float, data) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @staticmethod
    def _zeros_b(base: nn.Linear, rank: int) -> torch.Tensor:
        return torch.zeros(base.out_features, rank, dtype=base.weight.dtype, device=base.weight.device)


class DefaultInit(LoraInit):
    name = "default"

    def factors(self, base, rank, scaling, inputs):
        a = torch.empty(rank, base.in_features, dtype=base.weight.dtype, device=base.weight.device)
        return kaiming_uniform_like_linear(a), self._zeros_b(base, rank)


class GaussianInit(LoraInit):
    name = "gaussian"

    def factors(self, base, rank, scaling, inputs):
        a = torch.empty(rank, base.in_features, dtype=base.weight.dtype, device=base.weight.device)
        return nn.init.normal_(a, std=1 / rank), self._zeros_b(base, rank)


class OLoRAInit(LoraInit):
    name = "olora"
    residual = True

    def factors(self, base, rank, scaling, inputs):
        q, r = torch.linalg.qr(base.weight.detach().to(torch.float32))
        dtype = base.weight.dtype
        return r[:rank].contiguous().to(dtype), q[:, :rank].contiguous().to(dtype)


class EVAInit(LoraInit):
    name = "eva"
    reads = "inputs"

    def factors(self, base, rank, scaling, inputs):
        _, vectors = torch.linalg.eigh(inputs.covariance(centred=True))  # float64, eigenvalues ascending
        a = vectors[:, -rank:].flip(-1).T  # the top-r principal directions, largest first
        return a.contiguous().to(base.weight.dtype), self._zeros_b(base, rank)


class CorDAInit(LoraInit):
    name = "corda"
    residual = True
    reads = "inputs"

    def factors(self, base, rank, scaling, inputs):
        cov = inputs.covariance(centred=False)  # float64 throughout: C is ill-conditioned, its inverse amplifies
        eye = torch.eye(cov.shape[0], dtype=cov.dtype)
        damp = 0.01
        while True:
            fixed = cov + eye * torch.mean(torch.diag(cov)) * damp
            inverse = torch.linalg.inv(fixed)
            if torch.dist(fixed @ inverse, eye).item() < 0.05:
                break
            damp *= 2
        u, s, vh = torch.linalg.svd(base.weight.detach().to(torch.float64) @ fixed, full_matrices=False)
        v = (vh @ inverse).T
        root = (s[:rank] / scaling).sqrt()
        a = v[:, :rank].T * root.view(-1, 1)
        b = u[:, :rank] * root
        dtype = base.weight.dtype
        return a.contiguous().to(dtype), b.contiguous().to(dtype)


class LoRAGAInit(LoraInit):
    name = "lora-ga"
    residual = True
    reads = "gradients"
    gamma = 16  # PEFT's stable_gamma

    def factors(self, base, rank, scaling, gradient):
        if 2 * rank > min(gradient.shape):
            raise AdapterError(f"lora init 'lora-ga' needs 2r ≤ min(d_in, d_out); r = {rank}")
        u, s, vh = torch.linalg.svd(gradient, full_matrices=False)
        a = vh[:rank]
        b = u[:, rank : 2 * rank] * s[rank : 2 * rank] * (base.out_features ** 0.25 / math.sqrt(self.gamma))
        dtype = base.weight.dtype
        return a.contiguous().to(dtype), b.contiguous().to(dtype)


LORA_INITS: dict[str, type[LoraInit]] = {cls.name: cls for cls in
                                         (DefaultInit, GaussianInit, OLoRAInit, EVAInit, CorDAInit, LoRAGAInit)}


def lora_init(name: str) -> LoraInit:
    try:
        return LORA_INITS[name]()
    except KeyError:  # pragma: no cover - LoRAConfig validated the name
        raise AdapterError(f"unknown lora init {name!r}") from None


def read_data(init: LoraInit, model: nn.Module, targets: dict[str, nn.Linear], inputs: dict) -> dict:
    """``{layer name: what the init reads}`` from the apply-time ``inputs`` (``texts`` or ``pairs``); ``{}`` for an
    init that reads nothing."""
    what = f"lora init {init.name!r}"
    if init.reads == "inputs":
        if "texts" not in inputs:
            raise AdapterError(f"{what} reads the layers' inputs over sample texts: "
                               f"apply_adapter(model, 'lora', init={init.name!r}, texts=[...])")
        return layer_inputs(model, targets, inputs["texts"], what)
    if init.reads == "gradients":
        if "pairs" not in inputs:
            raise AdapterError(f"{what} reads the loss's gradient over training pairs: "
                               f"apply_adapter(model, 'lora', init={init.name!r}, pairs=[(query, document), ...])")
        return loss_gradients(model, targets, inputs["pairs"], what)
    return {}


def scaling(alpha: float, rank: int, rslora: bool) -> float:
    """s = α/r, or α/√r with rsLoRA."""
    return alpha / math.sqrt(rank) if rslora else alpha / rank
