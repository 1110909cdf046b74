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
so a run killed at any moment is either resumable (``--resume``) or untouched. A run directory has one owner at a
time: ``train`` and ``evaluate`` hold ``.<run>.lock`` beside it (:func:`owner`) while they write it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Iterator

from . import __version__
from .errors import BenchError, DataError
from .jsontypes import INTEGER, OBJECT, TEXT, read_json
from .paths import recorded_path  # noqa: F401 (a run records paths this way; the adapter library too)

CONFIG = "config.json"
ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
TRAIN_LOG = "train_log.jsonl"
SPECTRA_LOG = "spectra.jsonl"
METRICS_FILE = "metrics.json"
CHECKPOINTS = "checkpoints"
DELTA_SPECTRUM = "delta_spectrum.json"  # ΔW's singular values per layer, written when an adapter run is saved
RANKINGS = "rankings"  # <task>.<lang>.<split>.tsv.gz, written with the metrics (evaluation.result)


def lock_path(run_dir: str | Path) -> Path:
    """The lock file of a run directory: beside it, not in it (``--overwrite`` replaces the directory whole)."""
    run_dir = Path(os.path.abspath(run_dir))
    return run_dir.parent / f".{run_dir.name}.lock"


@contextlib.contextmanager
def owner(run_dir: str | Path, held: bool = True) -> Iterator[None]:
    """Own ``run_dir`` for the block: a second ``train`` or ``evaluate`` of the same directory refuses at once
    (one line) instead of deleting the first one's checkpoints or mixing its records with its own. The lock is
    the kernel's (``flock``), so a killed owner releases it. ``held=False`` (a DDP process of rank > 0, which
    writes nothing) takes no lock."""
    if not held:
        yield
        return
    from filelock import FileLock, Timeout

    from .outputs import check_writable

    path = lock_path(run_dir)
    check_writable(path, "run directory's lock", file=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise BenchError(f"{path} (the lock of run {run_dir}) is not a plain file; remove it")
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise BenchError(f"run {run_dir} is being written by another elsst-bench process (it holds {path}); "
                         "wait for it to finish, or choose another --run-id") from None
    try:
        yield
    finally:
        lock.release()


def read_config(run_dir: str | Path, *, hint: str | None = None) -> dict:
    """The run's ``config.json`` as a dict: the one reader of a run's configuration (train, evaluate, submit,
    sweep, inspect, the report).

    A missing directory, a missing ``config.json``, a file that is not JSON or not a JSON object is refused
    with one line (:class:`DataError`); ``hint`` says what to do instead (e.g. "pass a run directory or --model").
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not run_dir.is_dir():
        raise DataError(f"run directory {run_dir} {'is not a directory' if run_dir.exists() else 'does not exist'}")
    if not path.is_file():
        raise DataError(f"{run_dir} is not a run directory: it has no {CONFIG}" + (f"; {hint}" if hint else ""))
    config = read_json(path)
    if not isinstance(config, dict):
        raise DataError(f"{path} is not a run configuration (a JSON object)")
    return config


#: What a complete training run's ``config.json`` must hold for the commands that read it (evaluate, export,
#: inspect, submit): each field and its JSON type.
COMPLETE_FIELDS = {"adapter": TEXT, "model": OBJECT, "trainable_params": INTEGER}


def read_complete(run_dir: str | Path, *, hint: str | None = None) -> dict:
    """:func:`read_config` of a run that must be complete, with its fields checked (:data:`COMPLETE_FIELDS`,
    and a base model with a name): one line naming the field otherwise, never a ``KeyError`` later."""
    config = read_config(run_dir, hint=hint)
    path = Path(run_dir) / CONFIG
    if config.get("status") != "complete" and config.get("kind") != "zero-shot":  # evaluate's zero-shot record
        raise BenchError(f"run {run_dir} is not complete (status: {config.get('status')}); finish it with --resume")
    for key, (ok, what) in COMPLETE_FIELDS.items():
        if key not in config:
            raise DataError(f"{path} has no {key!r} field; it was not written by elsst-bench train, or was damaged")
        if not ok(config[key]):
            raise DataError(f"{path}: {key!r} should be {what}, not {json.dumps(config[key])[:40]}")
    if not isinstance(config["model"].get("name"), str):
        raise DataError(f"{path}: 'model' names no base model (no string 'name')")
    return config


def adapter_dir(source: str | Path) -> Path:
    """The adapter directory a source names: a run directory's ``adapter/``, or the path itself (an adapter
    directory). The training layer resolves EigenLoRAx's ``--sources`` with it, so the adapter library never reads
    a run directory's layout."""
    path = Path(source)
    return path / ADAPTER_DIR if (path / ADAPTER_DIR).is_dir() else path


def recorded_command(argv: list[str]) -> str:
    """The command line as a run records it: the program by its name (``elsst-bench``), not by where this
    machine installed it."""
    return " ".join([Path(argv[0]).name, *argv[1:]]) if argv else ""


def is_complete(run_dir: str | Path) -> bool:
    try:
        return read_config(run_dir).get("status") == "complete"
    except BenchError:
        return False


#: ``versions()`` key -> the distributions that provide it (the first one installed is reported).
PACKAGES = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "sentence-transformers": ("sentence-transformers",),
    "peft": ("peft",),
    "faiss": ("faiss-cpu", "faiss-gpu"),
    "ranx": ("ranx",),
    "numpy": ("numpy",),
}


def versions() -> dict[str, str | None]:
    """Versions of the packages that determine a result (``None``: not installed); recorded in a run's
    ``config.json``, in ``metrics.json`` and in a zero-shot evaluation's ``config.json``."""
    import importlib.metadata as md

    out: dict[str, str | None] = {"python": platform.python_version(), "elsst-bench": __version__}
    for key, dists in PACKAGES.items():
        out[key] = None
        for dist in dists:
            try:
                out[key] = md.version(dist)
                break
            except md.PackageNotFoundError:
                continue
    return out


def method(name: str):
    """The adapter registry's torch-free entry (``trains``, ``is_adapter``, ...) for a run's ``adapter``, or None
    for a name the registry does not know (a submitted run may come from a method of its own)."""
    from .adapters import available_methods, method_info

    return method_info(name) if isinstance(name, str) and name in available_methods() else None


def trains(name: str) -> bool:
    """Whether a run with this ``adapter`` trained anything (False only for the zero-shot baseline ``none``)."""
    entry = method(name)
    return entry is None or entry.trains


def is_adapter(name: str) -> bool:
    """Whether a run with this ``adapter`` keeps an ``adapter/`` directory (False for the baselines none, full)."""
    entry = method(name)
    return entry is None or entry.is_adapter


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
    from .models import load_sentence_transformer, locate, prompt_convention

    run_dir = Path(run_dir)
    config = read_complete(run_dir)
    adapter = config["adapter"]
    prompts = prompt_convention(config.get("options"))  # the run trained and was scored with these
    if trains(adapter) and not is_adapter(adapter):  # full fine-tuning: the whole encoder was saved
        model = load_sentence_transformer(str(run_dir / MODEL_DIR), device=device, prompts=prompts)
    else:
        model = load_sentence_transformer(locate(config["model"]), device=device, prompts=prompts)
        if is_adapter(adapter):
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
