"""A run as something other tools load: a plain sentence-transformers model with the adapter merged into the base
weights, or a standard PEFT adapter for the base transformer (:mod:`elsst_bench.adapters.peft_export`); either with
a model card (:mod:`elsst_bench.cards`). What ``elsst-bench export`` does, so the CLI only parses and prints.

Everything that can be refused is checked before the run is loaded: exactly one target, a complete run, a target
that is new, empty or (with ``overwrite``) an earlier export of the same kind, and a method with a PEFT form for
``peft``. A run whose weights are not finite is never exported. The target is written whole or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import atomic, outputs, runs
from .errors import BenchError


def export_run(run_dir: str | Path, *, merged: str | Path | None = None, peft: str | Path | None = None,
               overwrite: bool = False) -> str:
    """Write the run to ``merged`` or ``peft``; returns what was written and how to load it, in one sentence."""
    from .cards import write_card
    from .models import check_finite

    if (merged is None) == (peft is None):
        raise BenchError("give exactly one of --merged DIR and --peft DIR")
    config = runs.read_complete(run_dir)  # a complete run, before the target is looked at
    target = Path(merged if merged is not None else peft)
    kind = outputs.MODEL if merged is not None else outputs.PEFT_ADAPTER
    outputs.check_target(target, kind, replace=overwrite)
    if peft is not None:
        info = runs.method(config["adapter"])
        if info is None or info.peft_form is None:
            why = ("not an adapter" if info is not None and not info.is_adapter else
                   "without a PEFT form (ΔW of rank > r, and no adapter type of its own in PEFT)"
                   if info is not None else "an unknown method")
            raise BenchError(f"run {run_dir} is {config['adapter']}, {why}: export it with --merged")
    model, info = runs.load_run(run_dir)
    check_finite(model, f"run {run_dir}")
    base = info["identity"]["name"]
    if peft is not None:
        from .adapters.peft_export import export_peft

        with atomic.directory(target, kind if overwrite else None) as tmp:
            export_peft(model, tmp, base_name=base)
            write_card(run_dir, tmp, kind="peft")  # in place of PEFT's template card
        peft_type = json.loads((target / "adapter_config.json").read_text(encoding="utf-8"))["peft_type"]
        return (f"wrote {target}: {info['adapter']} as a PEFT {peft_type} adapter for {base}; load it with "
                f"PeftModel.from_pretrained(<its transformer>, {str(target)!r})")
    if runs.is_adapter(info["adapter"]):
        from .adapters import merge_adapter

        merge_adapter(model)
    with atomic.directory(target, kind if overwrite else None) as tmp:
        model.save(str(tmp), create_model_card=False)
        write_card(run_dir, tmp, kind="merged")
    return f"wrote {target}: {info['adapter']} merged into {base}; load it with SentenceTransformer({str(target)!r})"
