"""What ``elsst-bench evaluate`` does, so the CLI module only parses and prints.

Validation happens before anything slow: dataset, split, tasks and languages, the model path or the run's
dataset fingerprint; only then is the model loaded. Bad input raises :class:`~elsst_bench.errors.BenchError`
(one line, exit status 2).
"""

from __future__ import annotations

from pathlib import Path

from .. import outputs, paths, runs
from ..devices import check_device
from ..errors import BenchError, DataError
from ..models import portable_identity
from ..slugs import slug
from ..tasks import SPLITS, open_prepared
from .encode import default_cache_dir
from .index import INDEX_KINDS
from .loading import (RUN_DIR_HINT, check_model_spec, check_run_fingerprint, is_run_dir, load_base_model,
                      load_run_model)
from .result import EvaluationResult
from .runner import EvaluationOptions, evaluate_model, select


def _dataset(dataset):
    return open_prepared(dataset if dataset is not None else paths.default_dataset_dir())


def zero_shot_dir(model: str | None, prompts: str = "asymmetric") -> Path:
    """``runs/zeroshot-<model slug>``, and ``-prompts-<convention>`` for a convention other than the default."""
    from ..models import DEFAULT_PROMPTS, resolve_model

    suffix = f"-prompts-{prompts}" if prompts != DEFAULT_PROMPTS else ""
    return Path("runs") / f"zeroshot-{slug(resolve_model(model)[0], default='model')}{suffix}"


def evaluate_command(run_dir: str | None = None, model: str | None = None, *, dataset=None, split: str = "test",
                     tasks=None, languages=None, out=None, use_cache: bool = True, cache_dir=None,
                     index: str = "flat", batch_size: int = 128, device: str = "auto",
                     show_progress: bool = False, prompts: str | None = None) -> tuple[EvaluationResult, Path]:
    """Evaluate a run directory (into it) or a base model (into ``runs/zeroshot-<slug>/``); returns the result
    (already written) and the directory it was written to.

    For a run directory, tasks and languages default to the run's own evaluation scope
    (``config.json`` ``options.eval_tasks``/``eval_languages``); ``all`` selects everything. ``prompts``: the prompt
    convention of a base model (:data:`elsst_bench.models.PROMPT_CONVENTIONS`; default asymmetric); a run is
    always evaluated with its own, and another one is refused.
    """
    from ..models import DEFAULT_PROMPTS, check_prompts, prompt_convention

    if prompts is not None:
        check_prompts(prompts)
    if run_dir is not None and model is not None:
        raise BenchError("give either RUN_DIR or --model, not both")
    if model is not None and is_run_dir(model):
        run_dir, model = model, None
    if index not in INDEX_KINDS:
        raise BenchError(f"unknown index {index!r}; known: {', '.join(INDEX_KINDS)}")
    if batch_size < 1:
        raise BenchError("--batch-size must be at least 1")
    check_device(device)
    ds = _dataset(dataset)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    select(ds, tasks, languages, strict=True)
    if run_dir is not None:
        config = runs.read_config(run_dir, hint=RUN_DIR_HINT)
        check_run_fingerprint(run_dir, config, ds)
        out_dir = Path(out) if out is not None else Path(run_dir)
        scope = config.get("options") or {}
        own = prompt_convention(scope)
        if prompts is not None and prompts != own:
            raise BenchError(f"run {run_dir} was trained and scored with --prompts {own}; a run is evaluated with its "
                             f"own convention (evaluate the base model with --prompts {prompts} instead)")
        tasks = tasks if tasks is not None else (list(scope.get("eval_tasks") or []) or None)
        languages = languages if languages is not None else (list(scope.get("eval_languages") or []) or None)
    else:
        check_model_spec(model)
        prompts = prompts or DEFAULT_PROMPTS
        out_dir = Path(out) if out is not None else zero_shot_dir(model, prompts)
        if (out_dir / runs.CONFIG).exists():
            config = runs.read_config(out_dir, hint=RUN_DIR_HINT)
            if runs.trains(config.get("adapter", "none")):
                raise DataError(f"{out_dir} is a training run ({config.get('adapter')}); evaluate it as RUN_DIR, "
                                "or pick another --out")
            if prompt_convention(config.get("options")) != prompts:
                raise DataError(f"{out_dir} holds an evaluation with --prompts "
                                f"{prompt_convention(config.get('options'))}; pick another --out for {prompts}")
    outputs.check_target(out_dir, outputs.EVALUATION, replace=True)  # metrics are added to a run, or replaced
    cache_dir = (cache_dir or default_cache_dir()) if use_cache else None
    if cache_dir is not None:
        outputs.check_writable(cache_dir, "embedding cache (set ELSST_BENCH_CACHE or pass --no-cache)")
    with runs.owner(out_dir):  # a run being trained (or evaluated) by another process is refused here
        outputs.check_target(out_dir, outputs.EVALUATION, replace=True)  # again, now that it is ours
        loaded = (load_run_model(run_dir, ds, device) if run_dir is not None
                  else load_base_model(model, device, prompts=prompts))
        options = EvaluationOptions(cache_dir=cache_dir,
                                    cache_extra=loaded.cache_extra, batch_size=batch_size, index=index)
        result = evaluate_model(loaded.model, ds, split=split, tasks=tasks, languages=languages,
                                identity=loaded.identity, adapter=loaded.adapter,
                                trainable_params=loaded.trainable_params, options=options,
                                show_progress=show_progress)
        records = None
        if run_dir is None:
            langs = sorted({lang for per in result.scores.values() for lang in per if lang != "macro"})
            records = {runs.CONFIG: {
                "kind": "zero-shot", "adapter": "none", "model": portable_identity(loaded.identity),
                "trainable_params": 0, "dataset_id": ds.dataset_id, "dataset_fingerprint": ds.fingerprint,
                "versions": runs.versions(), "options": {"eval_tasks": list(result.scores), "eval_languages": langs,
                                                         **({"prompts": prompts} if prompts != DEFAULT_PROMPTS else {})},
            }}
        result.write(out_dir, records=records)
    return result, out_dir
