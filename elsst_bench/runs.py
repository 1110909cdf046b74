"""Run directories: what a training run leaves on disk, and how to load its model back.

```
runs/<run_id>/
  config.json          every resolved option, base model identity, dataset fingerprint, adapter config,
                       versions, git commit, device, seed, status, train time, peak memory
  adapter/             adapter_config.json + adapter.safetensors (adapter tensors only)
  model/               only for `full` fine-tuning: the whole SentenceTransformer
  train_log.jsonl      one line per logging step and per dev evaluation (step, epoch, loss, lr, seconds, ...)
  metrics.json         test-split metrics (evaluation layer), rankings/*.tsv.gz, plots/*.png
  checkpoints/         Trainer checkpoints while running (removed when the run completes)
```

A run is *complete* when ``config.json`` says ``"status": "complete"``; every file is written atomically,
so a run killed at any moment is either resumable (``--resume``) or untouched.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

from . import __version__
from .errors import BenchError

CONFIG = "config.json"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
TRAIN_LOG = "train_log.jsonl"
METRICS = "metrics.json"
CHECKPOINTS = "checkpoints"


def read_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise BenchError(f"{run_dir} is not a run directory (no {CONFIG}); make one with `elsst-bench train`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BenchError(f"{path} is corrupt ({err})") from err


def is_complete(run_dir: str | Path) -> bool:
    try:
        return read_config(run_dir).get("status") == "complete"
    except BenchError:
        return False


def versions() -> dict[str, str]:
    """Versions of the packages that determine a result."""
    import importlib.metadata as md

    out = {"python": platform.python_version(), "elsst-bench": __version__}
    for name in ("torch", "transformers", "sentence-transformers", "peft", "faiss-cpu", "ranx", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def load_run(run_dir: str | Path, device: str | None = "cpu"):
    """Load a run's model: the base encoder with the run's adapter applied (not merged).

    Returns ``(model, info)`` with ``info = {"identity", "adapter", "trainable_params", "dataset_fingerprint",
    "config"}``. ``identity`` names the base model and the adapter file, so embedding caches never mix runs.
    """
    from .models import load_sentence_transformer

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    adapter = config.get("adapter")
    if config.get("status") != "complete":
        raise BenchError(f"run {run_dir} is not complete (status: {config.get('status')}); finish it with --resume")
    if adapter == "full":
        model = load_sentence_transformer(str(run_dir / MODEL_DIR), device=device)
    else:
        model = load_sentence_transformer(config["model"]["location"], device=device)
        if adapter != "none":
            from .adapters import load_adapter

            load_adapter(model, run_dir / ADAPTER_DIR)
    identity = dict(config["model"])
    identity["run"] = config.get("run_id")
    identity["adapter_sha256"] = config.get("adapter_sha256")
    info = {
        "identity": identity,
        "adapter": adapter,
        "trainable_params": config.get("trainable_params", 0),
        "dataset_fingerprint": config.get("dataset_fingerprint"),
        "config": config,
    }
    model.eval()
    return model, info
