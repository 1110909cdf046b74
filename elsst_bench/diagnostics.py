"""`elsst-bench inspect`: what a run trained and what its update looks like.

For each adapted layer the update ΔW (for ``full``: W_trained − W_base on the same linears) is summarised by
its singular values σ₁ ≥ σ₂ ≥ … and its effective rank ``exp(H(p))``, ``p_i = σ_i / Σσ`` (Roy & Vetterli
2007): 1 when one direction carries everything, r when r directions carry equal mass. A LoRA update that
drifts toward rank collapse shows an effective rank well below its nominal rank r.
Plots (matplotlib, Agg): ``plots/loss.png`` (training loss and dev primary metric) and ``plots/spectra.png``
(normalised singular values per layer and effective rank per layer).
"""

from __future__ import annotations

from pathlib import Path

from . import atomic, runs
from .metric_names import dev_key


def compact_spectra(spectra: dict[str, dict]) -> dict[str, dict]:
    """What ``delta_spectrum.json`` keeps: each layer's effective rank (exact) and σ to 6 significant digits."""
    return {name: {"effective_rank": v["effective_rank"],
                   "singular_values": [float(f"{x:.6g}") for x in v["singular_values"]]} for name, v in spectra.items()}


def delta_spectrum(run_dir: Path) -> dict[str, dict]:
    """The run's ``delta_spectrum.json`` (written when the run saved its adapter; kept in the repository for runs
    whose adapter file is too large to commit), or, for a run without one, computed from the run (nothing is
    written into it)."""
    path = Path(run_dir) / runs.DELTA_SPECTRUM
    if path.is_file():
        from .jsontypes import read_json

        return read_json(path)
    return compact_spectra(run_spectra(run_dir))


def run_spectra(run_dir: Path) -> dict[str, dict]:
    """``{layer: {"singular_values", "effective_rank"}}`` of the run's update; empty for a run that trained
    nothing (``none``)."""
    import torch

    from .adapters import adapter_spectra, effective_rank, find_target_modules

    config = runs.read_complete(run_dir)
    if not runs.trains(config["adapter"]):
        return {}
    from .models import check_finite, load_sentence_transformer, locate

    model, _ = runs.load_run(run_dir)
    check_finite(model, f"run {run_dir}")  # the SVD of a NaN update crashes; a tampered run is refused in one line
    if runs.is_adapter(config["adapter"]):
        return adapter_spectra(model)
    base = load_sentence_transformer(locate(config["model"]), device="cpu")
    tuned = find_target_modules(model)
    original = find_target_modules(base)
    out = {}
    for name, layer in tuned.items():
        delta = (layer.weight.detach() - original[name].weight.detach()).double()
        s = torch.linalg.svdvals(delta)
        out[name] = {"singular_values": s.tolist(), "effective_rank": effective_rank(s)}
    return out


def summary(run_dir: Path) -> dict:
    config = runs.read_complete(run_dir)
    spectra = run_spectra(run_dir)
    ranks = [v["effective_rank"] for v in spectra.values()]
    return {
        "run_id": config.get("run_id"),
        "adapter": config.get("adapter"),
        "trainable_params": config.get("trainable_params"),
        "train_seconds": config.get("train_seconds"),
        "peak_memory_mb": config.get("peak_memory_mb"),
        "steps": config.get("steps"),
        "best_dev_score": config.get("best_dev_score"),
        "test_main_score": config.get("test_main_score"),
        "mean_effective_rank": sum(ranks) / len(ranks) if ranks else None,
        "layers": {name: {"effective_rank": v["effective_rank"], "top_singular_values": v["singular_values"][:8]}
                   for name, v in spectra.items()},
        "_spectra": spectra,
    }


def _save_figure(fig, path: Path) -> None:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    atomic.write_bytes(path, buffer.getvalue())


def plot(run_dir: Path, info: dict) -> list[Path]:
    """Write plots/loss.png and plots/spectra.png; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    log_path = run_dir / runs.TRAIN_LOG
    rows = atomic.read_jsonl(log_path) if log_path.exists() else []
    loss = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    key = dev_key()
    dev = [(r["step"], r[key]) for r in rows if key in r]
    if loss or dev:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if loss:
            ax.plot(*zip(*loss), color="tab:blue", label="train loss")
        ax.set_xlabel("step")
        ax.set_ylabel("MNRL loss", color="tab:blue")
        if dev:
            ax2 = ax.twinx()
            ax2.plot(*zip(*dev), "o-", color="tab:orange", label="dev nDCG@10 (graded)")
            ax2.set_ylabel("dev nDCG@10 (graded)", color="tab:orange")
        ax.set_title(f"{info['run_id']}")
        path = run_dir / "plots" / "loss.png"
        _save_figure(fig, path)
        plt.close(fig)
        written.append(path)
    spectra = info["_spectra"]
    if spectra:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
        for name, v in spectra.items():
            s = v["singular_values"]
            top = s[0] if s and s[0] > 0 else 1.0
            k = min(len(s), 64)
            left.plot(range(1, k + 1), [x / top for x in s[:k]], alpha=0.5, lw=1)
        left.set_yscale("log")
        left.set_ylim(1e-6, 1.5)
        left.set_xlabel("index i")
        left.set_ylabel("σ_i / σ_1")
        left.set_title("singular values of ΔW per layer")
        names = list(spectra)
        right.bar(range(len(names)), [spectra[n]["effective_rank"] for n in names], color="tab:green")
        right.set_xlabel("adapted layer (module order)")
        right.set_ylabel("effective rank exp(H(σ/Σσ))")
        right.set_title(f"mean {info['mean_effective_rank']:.2f}")
        path = run_dir / "plots" / "spectra.png"
        _save_figure(fig, path)
        plt.close(fig)
        written.append(path)
    return written
