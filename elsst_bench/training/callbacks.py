"""Trainer callbacks that write a run's logs: ``train_log.jsonl`` and (optionally) ``spectra.jsonl``.

Both rewrite their file atomically on every record, so a run killed at any moment leaves a readable log,
and both trim what lies past the checkpoint a resumed run restarts from.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from transformers import TrainerCallback

from .. import atomic


class RunLog(TrainerCallback):
    """Appends every log record (loss, lr, dev metrics) to train_log.jsonl, rewriting it atomically."""

    def __init__(self, path: Path, resume: bool = False):
        self.path = path
        self.rows: list[dict] = []
        self.previous_seconds = 0.0
        if resume and path.exists():
            self.rows = atomic.read_jsonl(path)
        elif path.exists():
            path.unlink()
        self.start = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        # After a resume, drop log lines past the checkpoint we restarted from, then keep counting time.
        self.rows = [r for r in self.rows if r.get("step", 0) <= state.global_step]
        self.previous_seconds = max((r.get("seconds", 0.0) for r in self.rows), default=0.0)
        self.start = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
               "seconds": round(self.previous_seconds + time.perf_counter() - self.start, 3)}
        row.update({k: v for k, v in (logs or {}).items() if isinstance(v, (int, float)) and math.isfinite(v)})
        self.rows.append(row)
        atomic.write_bytes(self.path, atomic.jsonl_bytes(self.rows))


class SpectraLog(TrainerCallback):
    """Every ``every`` steps (and at step 0), the singular values and effective rank of each adapted layer's
    ΔW, one JSON line per point in ``spectra.jsonl``: the trajectory behind the rank-collapse analysis.
    Read-only on the model (no gradients, no random numbers), so a tracked run trains bit-identically."""

    TOP = 16  # singular values kept per layer (ΔW of a rank-r adapter has at most r non-zero ones)

    def __init__(self, model, path: Path, every: int, resume: bool = False):
        self.model, self.path, self.every = model, path, every
        self.rows: list[dict] = atomic.read_jsonl(path) if resume and path.exists() else []

    def _record(self, state) -> None:
        from ..adapters import adapter_spectra

        spectra = adapter_spectra(self.model)
        ranks = [v["effective_rank"] for v in spectra.values()]
        self.rows.append({
            "step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
            "mean_effective_rank": sum(ranks) / len(ranks),
            "layers": {name: {"effective_rank": v["effective_rank"],
                              "singular_values": v["singular_values"][: self.TOP]} for name, v in spectra.items()},
        })
        atomic.write_bytes(self.path, atomic.jsonl_bytes(self.rows))

    def on_train_begin(self, args, state, control, **kwargs):
        self.rows = [r for r in self.rows if r["step"] < state.global_step]
        if not self.rows or self.rows[-1]["step"] != state.global_step:
            self._record(state)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._record(state)
