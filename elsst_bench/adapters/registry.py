"""The registry: every method the benchmark knows, as a torch-free entry, and the lazy way to its implementation.

An entry (:class:`MethodInfo`) says what a method is without loading it: its name, where it comes from
(``native``, ``peft``, ``baseline``), its trainable-parameter formula and size knob, a one-line summary, its
typed config class (options, defaults, validation and default learning rate; :mod:`.configs`), whether it
trains at all and whether it is an adapter (applied by :func:`~.apply.apply_adapter`, saved as an ``adapter/``
directory) — and, for adapters, which module holds its implementation (a :class:`~.method.Method` subclass).
:func:`get_method` imports that module on first use, so listing, describing and configuring methods never
imports torch.

The two baselines are entries too: ``none`` (zero-shot: trains nothing) and ``full`` (every encoder weight
trains; the training layer saves the whole model). They are not adapters, so :func:`get_method` and
``apply_adapter`` refuse them with a sentence saying so; :func:`method_info` describes them like any other.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import AdapterError
from . import configs
from . import tuner_configs as tc
from .configs import MethodConfig

if TYPE_CHECKING:  # pragma: no cover
    from .method import Method


#: the values of :attr:`MethodInfo.peft_form`
PEFT_FORMS = (None, "lora", "own")

#: A fixed colour per method, which the board, its chart and RESULTS.md's plots draw it in (Tableau 10, two more,
#: then fifteen for PEFT's other tuners): with the board's spares, every pair is at least 24 apart in CIELAB
#: (ΔE 1976); zero-shot ``none`` near black, ``full`` red, ``eigenlorax`` wine.
METHOD_COLORS = {"none": "#1b1b1b", "full": "#d62728", "lora": "#1f77b4", "dora": "#ff7f0e", "pissa": "#2ca02c",
                 "vera": "#9467bd", "hra": "#8c564b", "smoa": "#e377c2", "pica": "#17becf", "gelora": "#bcbd22",
                 "orthogeolora": "#7f7f7f", "eigenlorax": "#8b0a50",
                 # PEFT's other tuners: picked greedily, each the farthest (ΔE) from every colour above and before it
                 "oft": "#ee00ff", "boft": "#0000ff", "psoft": "#445500", "osf": "#0066ff", "delora": "#ff0077",
                 "gralora": "#00dd00", "randlora": "#ff00bb", "miss": "#ff8888", "c3a": "#995500", "road": "#9900aa",
                 "fourierft": "#442255", "loha": "#770011", "lokr": "#338855", "adalora": "#00ddbb", "ia3": "#bbccaa"}


@dataclass(frozen=True)
class MethodInfo:
    """One registry entry (torch-free)."""

    config_class: type[MethodConfig]
    source: str  # native, peft or baseline
    formula: str  # trainable parameters per module
    summary: str
    knob: str = "rank"  # what the budget solver turns
    #: ``"module:Class"`` of the Method subclass (a module relative to this package); None for baselines
    implementation: str | None = None
    trains: bool = True  # False: nothing is trained (zero-shot)
    is_adapter: bool = True  # False: no apply_adapter, no adapter/ directory
    #: how ``export --peft`` writes it (:mod:`.peft_export`): ``"lora"``, a PEFT LoRA adapter with the exact ΔW
    #: (rank ≤ the method's bound in every layer); ``"own"``, PEFT's own adapter type of the method (DoRA, VeRA, HRA);
    #: None: no PEFT form (export it merged)
    peft_form: str | None = None
    #: False: the adapter is the identity at initialisation only up to float32 rounding (PiSSA's residual base,
    #: HRA's paired reflections, OSF's SVD split of W0, BOFT's butterfly permutations), not bit for bit
    exact_at_init: bool = True
    #: False: the size knob cannot reach LoRA r=8's count on an encoder's linears (VeRA, EigenLoRAx and IA³ are far
    #: smaller by design and are reported at their natural size)
    reaches_budget: bool = True

    @property
    def name(self) -> str:
        return self.config_class.method

    @property
    def color(self) -> str:
        """The method's colour on the board and in the plots (:data:`METHOD_COLORS`)."""
        return METHOD_COLORS[self.name]

    @property
    def default_lr(self) -> float | None:
        return self.config_class.default_lr

    def training_inputs(self, anchors: Sequence[str], sources: Sequence[str],
                        options: Mapping[str, Any] | None = None, steps: int | None = None,
                        positives: Sequence[str] | None = None) -> dict[str, Any]:
        """Apply-time inputs to pass from training (GeLoRA: ``texts``; EigenLoRAx: ``sources``; AdaLoRA:
        ``total_step`` from ``steps``, the run's optimiser steps; LoRA with ``init=lora-ga``: ``pairs`` of anchors and
        ``positives``; else ``{}``).

        ``options``, when given, are the caller's own options: an input already there is not recomputed.
        """
        return self.config_class.training_inputs(anchors, sources, options, steps, positives)

    def describe(self) -> dict[str, str]:
        """The row ``elsst-bench adapters`` prints: name, source, params formula, knob, summary."""
        return {"name": self.name, "source": self.source, "params": self.formula, "knob": self.knob,
                "summary": self.summary}


_ENTRIES: dict[str, MethodInfo] = {}
_METHODS: dict[str, "Method"] = {}  # implementations loaded so far, one instance each


def register(info: MethodInfo) -> MethodInfo:
    """Add an entry to the registry (its name must be new); returns it."""
    if not info.name or info.name in _ENTRIES:
        raise ValueError(f"cannot register method {info.name!r}: the name is empty or taken")
    if info.peft_form not in PEFT_FORMS:
        raise ValueError(f"method {info.name!r}: peft_form must be one of {PEFT_FORMS}, not {info.peft_form!r}")
    if info.is_adapter and not info.implementation:
        raise ValueError(f"adapter {info.name!r} needs an implementation ('module:Class')")
    _ENTRIES[info.name] = info
    return info


for _info in (
    # native methods
    MethodInfo(configs.LoRAConfig, "native", "r·(d_in + d_out)",
               "low-rank update s·BA, B=0 at init (Hu et al. 2021)", implementation=".lora:LoRA", peft_form="lora"),
    MethodInfo(configs.OrthoGeoLoRAConfig, "native", "r·(d_in + d_out) + r",
               "SVD-form update s·U diag(σ) Vᵀ, U and V on the Stiefel manifold via QR (arXiv 2601.09185)",
               implementation=".orthogeolora:OrthoGeoLoRA", peft_form="lora"),
    MethodInfo(configs.GeLoRAConfig, "native", "Σ_blocks r_ℓ·Σ(d_in + d_out), r_ℓ from intrinsic-dimension gaps",
               "LoRA with per-block ranks from TwoNN intrinsic dimensions of hidden states (arXiv 2412.09250)",
               knob="rank (total r·L)", implementation=".gelora:GeLoRA", peft_form="lora"),
    MethodInfo(configs.SMoAConfig, "native", "Σ_k r_k·(d_in + d_out) = r·(d_in + d_out)",
               "high-rank modulation s·Σ_k W0^(k) ⊙ B_k A_k in K spectral subspaces (arXiv 2601.07507)",
               implementation=".smoa:SMoA"),
    MethodInfo(configs.EigenLoRAxConfig, "native", "2·K'·r, K' = k + k_gs",
               "coefficients on the principal subspace of saved LoRA adapters (+ k_gs random directions) "
               "(arXiv 2502.04700)", knob="K' (k_gs)", implementation=".eigenlorax:EigenLoRAx", peft_form="lora",
               reaches_budget=False),
    MethodInfo(configs.PiCaConfig, "native", "Σ_types r·d_out (shared M; unshared: Σ_layers r·d_out)",
               "ΔW = M·P onto W0's top-r singular directions, M shared per module type (arXiv 2505.20211)",
               implementation=".pica:PiCa", peft_form="lora"),
    # PEFT's own methods
    MethodInfo(configs.DoRAConfig, "peft", "r·(d_in + d_out) + d_out",
               "weight-decomposed LoRA: magnitude m and direction W0 + sBA (PEFT use_dora=True)",
               knob="rank (+1 on some module types)", implementation=".peft_methods:DoRA", peft_form="own"),
    MethodInfo(configs.PiSSAConfig, "peft", "r·(d_in + d_out)",
               "LoRA initialised on W0's principal singular components, residual base (PEFT init_lora_weights='pissa')",
               implementation=".peft_methods:PiSSA", peft_form="lora", exact_at_init=False),
    MethodInfo(configs.VeRAConfig, "peft", "r + d_out (shared frozen random A, B)",
               "vector-based random matrix adaptation: scaling vectors on shared random projections (PEFT)",
               implementation=".peft_methods:VeRA", peft_form="own", reaches_budget=False),
    MethodInfo(configs.HRAConfig, "peft", "r·d_in (r Householder reflections, r even)",
               "W0 times a product of r Householder reflections, paired to the identity at init (PEFT)",
               knob="rank (number of reflections)", implementation=".peft_methods:HRA", peft_form="own",
               exact_at_init=False),
    # PEFT's other tuners (one class each in .peft_tuners): the orthogonal family, then the rest
    MethodInfo(tc.OFTConfig, "peft", "d_in·(b − 1)/2 (skew-symmetric b×b blocks)",
               "orthogonal fine-tuning: the input rotated by a block-diagonal Cayley R, blocks of size b (PEFT OFT)",
               knob="block size b", implementation=".peft_tuners:OFT", peft_form="own"),
    MethodInfo(tc.BOFTConfig, "peft", "m·d_in·b + d_out (m butterfly factors of b×b blocks, output scale)",
               "butterfly orthogonal fine-tuning: R a product of m butterfly factors, and an output scale (PEFT BOFT)",
               knob="block size b", implementation=".peft_tuners:BOFT", peft_form="own", reaches_budget=False,
               exact_at_init=False),
    MethodInfo(tc.PSOFTConfig, "peft", "r(r − 1)/2 + 2r",
               "an r×r rotation (and two scale vectors) inside W0's principal r-dimensional subspace (PEFT PSOFT)",
               implementation=".peft_tuners:PSOFT", peft_form="own"),
    MethodInfo(tc.OSFConfig, "peft", "r·(d_in + d_out + 1)",
               "orthogonal subspace fine-tuning: W0's top singular directions frozen, the last r trained as U, S, V "
               "(PEFT OSF)", knob="trainable rank r", implementation=".peft_tuners:OSF", peft_form="own",
               exact_at_init=False),
    MethodInfo(tc.DeLoRAConfig, "peft", "r·(d_in + d_out) + 1",
               "decoupled LoRA: normalised rank-r directions with a learned, bounded strength λ‖W0‖ (PEFT DeLoRA)",
               implementation=".peft_tuners:DeLoRA", peft_form="own"),
    MethodInfo(tc.GraLoRAConfig, "peft", "r·(d_in + d_out)",
               "granular LoRA: a k×k grid of independent rank-r/k blocks, higher rank at LoRA's count (PEFT GraLoRA)",
               implementation=".peft_tuners:GraLoRA", peft_form="own"),
    MethodInfo(tc.RandLoRAConfig, "peft", "m + m²/r, m = min(d_in, d_out) (frozen random bases)",
               "full-rank ΔW from frozen random rank-r bases and trained diagonal scalings (PEFT RandLoRA)",
               implementation=".peft_tuners:RandLoRA", peft_form="own"),
    MethodInfo(tc.MiSSConfig, "peft", "r·d_out",
               "matrix shard sharing: one trained r×d_out shard repeated over W0's row blocks (PEFT MiSS)",
               implementation=".peft_tuners:MiSS", peft_form="own"),
    MethodInfo(tc.C3AConfig, "peft", "d_in·d_out / b",
               "ΔW a grid of b×b circulant blocks applied by FFT (PEFT C3A)", knob="block size b",
               implementation=".peft_tuners:C3A", peft_form="own"),
    MethodInfo(tc.RoAdConfig, "peft", "v·d_out (option variant v = 1, 2, 4)",
               "2-D rotations (angle, scale) of pairs of output features of W0x (PEFT RoAd)", knob="-",
               implementation=".peft_tuners:RoAd", peft_form="own", reaches_budget=False),
    MethodInfo(tc.FourierFTConfig, "peft", "n per module",
               "ΔW the inverse 2-D DFT of n trained coefficients at fixed random frequencies (PEFT FourierFT)",
               knob="coefficients n", implementation=".peft_tuners:FourierFT", peft_form="own"),
    MethodInfo(tc.LoHaConfig, "peft", "2r·(d_in + d_out)",
               "low-rank Hadamard product s·(B₁A₁) ⊙ (B₂A₂) (PEFT LoHa)",
               implementation=".peft_tuners:LoHa", peft_form="own"),
    MethodInfo(tc.LoKrConfig, "peft", "f_out·f_in + r·(d_out/f_out + d_in/f_in)",
               "low-rank Kronecker product s·W₁ ⊗ (BA) (PEFT LoKr)", implementation=".peft_tuners:LoKr",
               peft_form="own", reaches_budget=False),
    MethodInfo(tc.AdaLoRAConfig, "peft", "r₀·(d_in + d_out + 1), r₀ = init_r (1.5·r)",
               "SVD-form P Λ Q whose ranks are pruned by importance from r₀ to an average of r during training "
               "(PEFT AdaLoRA)", knob="init_r r₀ (r = ⅔·r₀)", implementation=".adalora:AdaLoRA",
               peft_form="own"),
    MethodInfo(tc.IA3Config, "peft", "d_out (d_in for FFN-out)",
               "learned scales of activations: attention and FFN-in outputs, FFN-out inputs (PEFT IA³)", knob="-",
               implementation=".peft_tuners:IA3", peft_form="own", reaches_budget=False),
    # baselines: the training layer handles them
    MethodInfo(configs.NoneConfig, "baseline", "0", "zero-shot: the base encoder as is", knob="-",
               trains=False, is_adapter=False),
    MethodInfo(configs.FullConfig, "baseline", "all encoder weights", "full fine-tuning of every encoder weight",
               knob="-", is_adapter=False),
):
    register(_info)
del _info


def available_adapters() -> list[str]:
    """Names accepted by ``apply_adapter``, in registry order (baselines ``none``/``full`` excluded)."""
    return [name for name, info in _ENTRIES.items() if info.is_adapter]


def baselines() -> list[str]:
    """The registered methods that are not adapters (``none``, ``full``)."""
    return [name for name, info in _ENTRIES.items() if not info.is_adapter]


def available_methods() -> list[str]:
    """Every registered method: the adapters, then the baselines."""
    return [*available_adapters(), *baselines()]


def _unknown(name: Any) -> AdapterError:
    return AdapterError(
        f"unknown adapter {name!r}; known: {', '.join(available_adapters())} (baselines: {', '.join(baselines())})"
    )


def method_info(name: str) -> MethodInfo:
    """The torch-free entry of an adapter or baseline (AdapterError for an unknown name)."""
    if not isinstance(name, str) or name not in _ENTRIES:
        raise _unknown(name)
    return _ENTRIES[name]


def get_method(name: str) -> "Method":
    """The implementation of adapter ``name`` (imported on first use). Baselines are refused: not adapters."""
    info = method_info(name)
    if not info.is_adapter:
        raise AdapterError(
            f"'{name}' is a baseline that the training layer handles, not an adapter; "
            f"adapters: {', '.join(available_adapters())}"
        )
    if name not in _METHODS:
        module, _, attribute = info.implementation.partition(":")
        cls = getattr(importlib.import_module(module, __package__), attribute)
        if cls.config_class is not info.config_class:  # pragma: no cover - a registry table error
            raise TypeError(f"{info.implementation} does not implement {info.config_class.__name__}")
        _METHODS[name] = cls()
    return _METHODS[name]


def describe_adapters() -> list[dict[str, str]]:
    """One row per adapter and baseline: name, source (native/peft/baseline), params formula, knob, summary."""
    return [_ENTRIES[name].describe() for name in available_methods()]
