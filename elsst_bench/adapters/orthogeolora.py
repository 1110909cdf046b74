"""OrthoGeoLoRA (arXiv 2601.09185): LoRA in SVD form with orthonormal factors.

    ΔW = s · U diag(σ) Vᵀ,   U = orth(Û) ∈ St(d_out, r),   V = orth(V̂) ∈ St(d_in, r),   σ ∈ R^r,   s = α / r.

``orth`` is the thin QR decomposition with the signs of diag(R) made positive (a smooth, differentiable
map from full-rank d×r matrices onto the Stiefel manifold), so Û, V̂ and σ are ordinary unconstrained
tensors that plain Adam/AdamW can train, and UᵀU = VᵀV = I holds after any number of steps (to float
precision) because the constraint is never stored, only re-derived.

Init: σ = 0, so ΔW = 0 exactly; Û, V̂ ~ N(0, 1) (their QR frames are Haar-distributed), or with
``init="spectral"`` the top-r left/right singular vectors of W0. Parameters per module: r (d_in + d_out) + r.
The singular values of ΔW are s·|σ| (at most r non-zero).

Choices that are ours: α = 2r by default (s = 2, as LoRA), QR rather than Cayley or matrix-exponential
maps (cheapest on CPU for d×r frames), and the activation path x -> s·((x V) ⊙ σ) Uᵀ (no d_out×d_in product
in training; ``delta_weight`` forms it for merging and diagnostics).
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from ..errors import AdapterError
from .configs import OrthoGeoLoRAConfig
from .layers import AdaptedLinear, svd64
from .method import BuildContext, NativeMethod


def stiefel_frame(raw: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns spanning ``raw``'s columns (batched over leading dims): Q of the thin QR with the
    signs fixed so that diag(R) > 0."""
    q, r = torch.linalg.qr(raw, mode="reduced")
    signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return q * signs.unsqueeze(-2)


# (U, V, parameter versions) per layer, valid during one encoder forward; kept outside the modules so that
# copying or pickling a model never meets a non-leaf tensor.
_FRAMES: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


class FrameCache:
    """Forward hooks on the encoder: orthonormalise every layer's Û, V̂ in a few batched QRs per forward.

    Dozens of tiny QR calls (72 on all-MiniLM-L6-v2) cost far more in per-call overhead than in arithmetic
    (on a busy 2-core CPU each LAPACK call can wait milliseconds for its thread team; on a GPU each is a
    kernel launch and a sync), so the pre-hook stacks all raw factors (Û and V̂ alike) of equal shape and runs
    one batched QR per shape (two on MiniLM: 384×r and 1536×r); the post-hook drops the cache. A layer uses a
    cached frame only if its parameters were not modified since (``_version``) and computes its own otherwise
    (direct calls, gradient checkpointing).
    """

    def __init__(self, layers: list["OrthoGeoLoRALinear"]):
        self.layers = layers

    def before(self, module, args) -> None:
        groups: dict[tuple, list[torch.Tensor]] = {}
        for layer in self.layers:
            for raw in (layer.U_raw, layer.V_raw):
                groups.setdefault((tuple(raw.shape), raw.dtype, raw.device), []).append(raw)
        frames: dict[int, torch.Tensor] = {}
        for raws in groups.values():
            for raw, frame in zip(raws, stiefel_frame(torch.stack(raws)).unbind(0)):
                frames[id(raw)] = frame
        for layer in self.layers:
            _FRAMES[layer] = (
                frames[id(layer.U_raw)], frames[id(layer.V_raw)], (layer.U_raw._version, layer.V_raw._version)
            )

    def after(self, module, args, output) -> None:
        for layer in self.layers:
            _FRAMES.pop(layer, None)

    @staticmethod
    def remove(root: nn.Module) -> None:
        for hooks in (root._forward_pre_hooks, root._forward_hooks):
            for key, hook in list(hooks.items()):
                if isinstance(getattr(hook, "__self__", None), FrameCache):
                    del hooks[key]


class OrthoGeoLoRALinear(AdaptedLinear):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, init: str):
        super().__init__(base)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.rank = rank
        self.scaling = alpha / rank
        if init == "spectral":
            u, _, vh = svd64(base.weight)
            u_raw, v_raw = u[:, :rank].to(**factory), vh[:rank].T.to(**factory)
        else:
            u_raw = torch.randn(base.out_features, rank, **factory)
            v_raw = torch.randn(base.in_features, rank, **factory)
        self.U_raw = nn.Parameter(u_raw.contiguous())
        self.V_raw = nn.Parameter(v_raw.contiguous())
        self.sigma = nn.Parameter(torch.zeros(rank, **factory))


    def frames(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, V) with orthonormal columns."""
        cached = _FRAMES.get(self)
        if cached is not None and cached[2] == (self.U_raw._version, self.V_raw._version):
            return cached[0], cached[1]
        return stiefel_frame(self.U_raw), stiefel_frame(self.V_raw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = self.frames()
        return self.base(x) + ((x @ v) * (self.sigma * self.scaling)) @ u.T

    def delta_weight(self) -> torch.Tensor:
        u, v = self.frames()
        return (u * (self.sigma * self.scaling)) @ v.T

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling:g}"


class OrthoGeoLoRA(NativeMethod):
    config_class = OrthoGeoLoRAConfig

    def count(self, shapes, rank, options):
        return sum(rank * (d_out + d_in) + rank for d_out, d_in in shapes.values())

    def build(self, ctx: BuildContext) -> dict[str, nn.Module]:
        layers = super().build(ctx)
        cache = FrameCache(list(layers.values()))
        ctx.root.register_forward_pre_hook(cache.before)
        ctx.root.register_forward_hook(cache.after)
        return layers

    def remove(self, state, root) -> None:
        FrameCache.remove(root)
        for layer in state.layers.values():
            _FRAMES.pop(layer, None)

    def make_layer(self, name: str, base: nn.Linear, ctx: BuildContext) -> OrthoGeoLoRALinear:
        if ctx.rank > min(base.in_features, base.out_features):  # pragma: no cover - validated earlier
            raise AdapterError(f"rank {ctx.rank} is larger than min(d_in, d_out) of {name}")
        return OrthoGeoLoRALinear(base, ctx.rank, ctx.options["alpha"], ctx.options["init"])
