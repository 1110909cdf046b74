"""The run driver: ``train(config)`` takes a :class:`~.config.TrainConfig` to a complete run directory.

1. resolve the options (:mod:`.config`) and the run directory; refuse what contradicts an existing run;
2. load the base encoder; let the method make it trainable (an adapter injected by the adapter library,
   every weight for ``full``, nothing for ``none``);
3. train with :class:`~.trainer.AdapterTrainer` (by default MultipleNegativesRankingLoss over (query, grade-3
   document) pairs; ``--recipe`` changes the rows and the loss, :mod:`.recipes`), NO_DUPLICATES batches, dev
   evaluation each epoch, the best epoch kept);
4. save the adapter (or the whole model for ``full``), evaluate on test and write ``metrics.json`` and the
   rankings; mark the run complete.

Every file is written atomically, so a run killed at any moment is resumable (``--resume``) or untouched.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import atomic, outputs, runs
from ..adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from ..errors import BenchError, NonFiniteLoss
from .config import TrainConfig, default_run_id, dev_languages, method_entry, resolved_options, scores_test


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint whose trainer_state.json was written (the Trainer writes it last)."""
    root = run_dir / runs.CHECKPOINTS
    if not root.exists():
        return None
    done = [p for p in root.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.rsplit("-", 1)[-1]), default=None)


def _check_run_dir(config: TrainConfig, run_dir: Path, options: dict) -> bool:
    """Refuse what would overwrite or mix runs, touching nothing; returns whether an existing run is to be
    replaced (``--overwrite``). ``--resume`` continues a run started with the same options. Only a directory
    that holds a run's ``config.json`` is ever replaced (:func:`elsst_bench.outputs.check_target`)."""
    if config.overwrite and config.resume:
        raise BenchError("--overwrite and --resume contradict each other; pick one")
    if not outputs.check_target(run_dir, outputs.RUN, replace=True):
        if config.resume:
            raise BenchError(f"nothing to resume: {run_dir} does not exist")
        return False
    if config.overwrite:
        return True
    previous = runs.read_config(run_dir)
    if previous.get("status") == "complete":
        raise BenchError(f"run {run_dir} is already complete; choose another --run-id or pass --overwrite")
    if not config.resume:
        raise BenchError(f"run {run_dir} exists but is incomplete; pass --resume to continue it")
    recorded = _portable_options(previous.get("options") or {})
    if recorded != options:
        changed = sorted(k for k in options if recorded.get(k) != options[k])
        raise BenchError(f"--resume with different options than {run_dir} was started with: {', '.join(changed)}")
    return False


def _portable_options(options: dict) -> dict:
    """Recorded options as this version records them: a run started before offline bases were recorded without
    their location (:func:`elsst_bench.models.portable_identity`) still resumes."""
    from ..models import portable_identity

    model = options.get("model")
    return {**options, "model": portable_identity(model)} if isinstance(model, dict) else options


def _check_dev_queries(dataset, options: dict) -> None:
    """Epoch selection needs dev queries: refuse a dev selection without any before the run starts."""
    languages = dev_languages(options)
    counts = dataset.manifest["queries"]
    n = sum(counts.get(task, {}).get(lang, {}).get("dev", 0) for task in options["eval_tasks"] for lang in languages)
    if n == 0:
        raise BenchError(f"no dev queries in tasks {', '.join(options['eval_tasks'])} and languages "
                         f"{', '.join(languages)}: the best epoch cannot be chosen; pick other --dev-languages")


def train(config: TrainConfig, progress: bool = True) -> Path:
    """Train (or, for ``none``, just evaluate) and return the completed run directory.

    Everything that can be refused is checked before the run directory is touched: the options, the run id
    and directory, the dev selection, and the method on the loaded model (rank, adapter options, budget,
    EigenLoRAx sources). Only then is an ``--overwrite``-n run replaced and the new one started.
    """
    from ..devices import resolve_device
    from ..models import model_identity, portable_identity
    from ..paths import default_dataset_dir
    from ..tasks import open_prepared
    from . import distributed

    device = resolve_device(config.device)
    world = distributed.init(device)  # under torchrun/accelerate launch: this process's part of one DDP run
    device = world.device or device
    dataset = open_prepared(config.dataset or default_dataset_dir())
    identity = model_identity(config.model)
    options = resolved_options(config, dataset, portable_identity(identity))
    method = method_entry(config.adapter)
    run_id = outputs.check_run_id(config.run_id) if config.run_id is not None else default_run_id(options)
    run_dir = Path(config.out) / run_id

    if config.spectra_every is not None and (not method.is_adapter or config.spectra_every < 1):
        raise BenchError("--spectra-every needs an adapter (not none/full) and a number of steps >= 1")
    if world.size > 1 and not method.trains:
        raise BenchError(f"{config.adapter} trains nothing: run it as one process, not under a launcher")
    world.per_process_batch(options["batch_size"])
    with runs.owner(run_dir, held=world.is_main):  # one process writes a run directory at a time
        replace = _check_run_dir(config, run_dir, options)
        if method.trains:
            _check_dev_queries(dataset, options)
            setup = _setup(config, options, dataset, device, gather=world.size > 1)
            model = setup.model
        else:
            model = _load_base(config, device)
        world.barrier()  # every process has checked the run directory before rank 0 writes it
        if not world.is_main:
            return _follow(config, options, setup, run_dir, world)

        if replace:  # a run directory (check_target saw its config.json): ours to replace
            shutil.rmtree(run_dir)
        record = {
            "run_id": run_id,
            "status": "running",
            "options": options,
            **{k: options[k] for k in ("adapter", "model", "seed", "dataset_id", "dataset_fingerprint")},
            "device": device,
            "distributed": world.record(options["batch_size"]),
            "versions": runs.versions(),
            "git_commit": runs.git_commit(),
            "command": runs.recorded_command(sys.argv),
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_json(run_dir / runs.CONFIG, record)
        started = time.perf_counter()
        world.barrier()  # the run directory exists before any process trains into it
        if method.trains:
            model, train_info = _fit(config, options, setup, run_dir, progress, world)
            trainable = setup.trainable
        else:
            trainable, train_info = 0, {"train_seconds": 0.0, "steps": 0}
        record.update(train_info)
        record["trainable_params"] = trainable
        record["peak_memory_mb"] = round(_peak_memory_mb(device), 1)
        if method.trains:  # a NaN adapter is neither saved nor scored; the run stays "running" (incomplete)
            from ..models import check_finite

            check_finite(model, f"run {run_dir}", trainable_only=True)
        _save_model(model, method, run_dir, options["model"])
        weights = run_dir / runs.ADAPTER_DIR / ADAPTER_WEIGHTS
        if weights.exists():
            record["adapter_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
        record["adapter_config"] = _adapter_config(run_dir)
        if method.is_adapter:  # ΔW's spectrum, kept with the run (small, unlike some methods' adapter files)
            from ..adapters import adapter_spectra
            from ..diagnostics import compact_spectra

            atomic.write_json(run_dir / runs.DELTA_SPECTRUM, compact_spectra(adapter_spectra(model)))
        atomic.write_json(run_dir / runs.CONFIG, record)  # still "running": metrics come next
        if scores_test(options):
            with _shared_encoding(model, world):
                _score_test(model, dataset, options, record, run_dir, progress)
        record["status"] = "complete"
        record["wall_seconds"] = round(time.perf_counter() - started, 2)
        atomic.write_json(run_dir / runs.CONFIG, record)
        if not config.keep_checkpoints:
            shutil.rmtree(run_dir / runs.CHECKPOINTS, ignore_errors=True)
        world.barrier()  # the others return once the run is complete
        return run_dir


def _shared_encoding(model, world):
    """Under DDP, the other processes encode for rank 0 while it scores (sentence-transformers' own sharing);
    a no-op context otherwise."""
    from contextlib import nullcontext

    if world.size == 1:
        return nullcontext()
    from sentence_transformers.util.distributed import distributed_evaluation

    return distributed_evaluation(model)


def _follow(config: TrainConfig, options: dict, setup: "_Setup", run_dir: Path, world) -> Path:
    """A process of rank > 0: train its shard, help encode the test queries, write nothing."""
    world.barrier()
    model, _ = _fit(config, options, setup, run_dir, False, world)
    if scores_test(options):
        with _shared_encoding(model, world):
            pass  # entering, rank > 0 serves rank 0's encodings until it has scored
    world.barrier()
    return run_dir


def _score_test(model, dataset, options: dict, record: dict, run_dir: Path, progress: bool) -> None:
    """Evaluate on test, write metrics.json and the rankings, and note the main score in ``record``."""
    from ..evaluation import evaluate_model

    run_id, identity, trainable = record["run_id"], options["model"], record["trainable_params"]
    eval_identity = {**identity, "run": run_id, "adapter_sha256": record.get("adapter_sha256")}
    result = evaluate_model(
        model, dataset, split="test", tasks=options["eval_tasks"], languages=options["eval_languages"],
        identity=eval_identity, adapter=options["adapter"], trainable_params=trainable, show_progress=progress,
    )
    result.write(run_dir)
    record["test_main_score"] = result.metrics.get("main_score")


def _load_base(config: TrainConfig, device: str):
    from ..models import load_sentence_transformer

    return load_sentence_transformer(config.model, device=device, prompts=config.prompts)


def _adapter_config(run_dir: Path) -> dict | None:
    path = run_dir / runs.ADAPTER_DIR / ADAPTER_CONFIG
    return json.loads(path.read_text()) if path.exists() else None


def _save_model(model, method, run_dir: Path, identity: dict) -> None:
    """An adapter's own tensors under ``adapter/``; a fully fine-tuned encoder whole under ``model/``."""
    if not method.trains:
        return
    if not method.is_adapter:
        with atomic.directory(run_dir / runs.MODEL_DIR, outputs.MODEL) as tmp:
            model.save(str(tmp))
        return
    from ..adapters import save_adapter

    with atomic.directory(run_dir / runs.ADAPTER_DIR, outputs.ADAPTER) as tmp:
        save_adapter(model, tmp, base_model=identity)


def _make_trainable(model, method, options: dict, pairs, sources: list[str], steps: int | None = None) -> int:
    """Apply the method to ``model`` and return its trainable-parameter count."""
    if not method.is_adapter:  # full fine-tuning: every encoder weight
        for p in model.parameters():
            p.requires_grad_(True)
        return sum(p.numel() for p in model.parameters())
    from ..adapters import apply_adapter, count_trainable

    extra = dict(options["options"])
    extra.update(adapter_inputs(model, method, extra, pairs.anchors, pairs.positives,
                                [str(runs.adapter_dir(s)) for s in sources], steps))
    apply_adapter(model, options["adapter"], rank=options["rank"], budget=options["budget"],
                  base_model=options["model"], **extra)
    return count_trainable(model)


def adapter_inputs(model, method, options: dict, anchors: list[str], positives: list[str], sources: list[str],
                   steps: int | None) -> dict:
    """What the training layer hands a method at apply time (:meth:`MethodInfo.training_inputs`: GeLoRA's and EVA's
    texts, EigenLoRAx's sources, AdaLoRA's step count, LoRA-GA's pairs); pairs get the model's prompts, as training
    encodes them (multilingual-e5: ``query: `` before the anchor, ``passage: `` before the positive)."""
    from ..models import role_prompt

    extra = method.training_inputs(anchors, sources, options=options, steps=steps, positives=positives)
    if "pairs" in extra:
        query, document = role_prompt(model, "query"), role_prompt(model, "document")
        extra["pairs"] = [(query + a, document + p) for a, p in extra["pairs"]]
    return extra


def _column_prompts(model, columns: list[str]) -> dict[str, str] | None:
    """The model's own prompts for the text columns (``anchor`` is a query; ``positive`` and ``negative_*``
    documents), so training sees a text as evaluation encodes it (multilingual-e5: ``query: `` / ``passage: ``);
    None for a model without prompts (all-MiniLM-L6-v2), which trains on the bare texts as before."""
    from ..models import role_prompt

    query, document = role_prompt(model, "query"), role_prompt(model, "document")
    if not (query or document):
        return None
    return {c: query if c == "anchor" else document for c in columns if c == "anchor" or c == "positive"
            or c.startswith("negative_")}


@dataclass
class _Setup:
    """What training needs, built (and so validated) before the run directory is touched."""

    model: Any
    trainable: int
    pairs: Any
    method: Any
    dataset: Any
    device: str
    train_dataset: Any  # the recipe's columns (training.recipes)
    make_loss: Any  # model -> the recipe's loss


def _setup(config: TrainConfig, options: dict, dataset, device: str, gather: bool = False) -> _Setup:
    """Sample the pairs, load the base, build the recipe's data and loss (hard negatives are mined here, with the
    base), and apply the method: a bad rank, adapter option, budget or source is refused here, before anything
    is written. ``gather``: the loss gathers in-batch candidates across processes (DDP)."""
    import transformers

    from ..pairs import training_pairs
    from .recipes import build_objective, from_options

    method = method_entry(config.adapter)
    recipe = from_options(options)
    transformers.set_seed(config.seed)
    pairs = training_pairs(dataset, options["tasks"], options["languages"], limit=config.max_pairs,
                           min_grade=recipe.pair_min_grade)
    model = _load_base(config, device)
    train_dataset, make_loss = build_objective(recipe, model, pairs, dataset, lambda: _load_base(config, device),
                                               gather=gather)
    steps = options["epochs"] * max(1, len(train_dataset) // options["batch_size"])  # AdaLoRA's schedule needs it
    trainable = _make_trainable(model, method, options, pairs, config.sources, steps)
    return _Setup(model=model, trainable=trainable, pairs=pairs, method=method, dataset=dataset, device=device,
                  train_dataset=train_dataset, make_loss=make_loss)


def _fit(config: TrainConfig, options: dict, setup: _Setup, run_dir: Path, progress: bool, world):
    """Train with the Trainer; returns (model with the best dev epoch's weights, info). Every process of a DDP
    run calls it; only rank 0 logs."""
    import transformers
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from ..metric_names import dev_key
    from .callbacks import RunLog, SpectraLog
    from .evaluator import DevEvaluator
    from .trainer import AdapterTrainer

    model, pairs, method, device = setup.model, setup.pairs, setup.method, setup.device
    transformers.set_seed(config.seed)  # same initial state for the data order whatever apply_adapter drew
    train_dataset = setup.train_dataset
    prompts = _column_prompts(model, train_dataset.column_names)
    steps_per_epoch = max(1, len(train_dataset) // config.batch_size)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(run_dir / runs.CHECKPOINTS),
        num_train_epochs=options["epochs"],
        per_device_train_batch_size=world.per_process_batch(options["batch_size"]),
        learning_rate=options["lr"],
        warmup_steps=options["warmup_ratio"],  # a float < 1 is a ratio of the total steps (Transformers v5)
        weight_decay=options["weight_decay"],
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=dev_key(),
        greater_is_better=True,
        logging_steps=max(1, min(10, steps_per_epoch // 2)),
        report_to="none",
        use_cpu=device == "cpu",
        fp16=device.startswith("cuda") and method.is_adapter,
        dataloader_num_workers=0,
        disable_tqdm=not progress,
        save_only_model=False,
        prompts=prompts,
    )
    evaluator = DevEvaluator(setup.dataset, options["eval_tasks"], dev_languages(options))
    log = RunLog(run_dir / runs.TRAIN_LOG, resume=config.resume) if world.is_main else None
    loss = setup.make_loss(model)
    trainer = AdapterTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=evaluator,
        callbacks=[log] if log else [], adapter_checkpoints=method.is_adapter, fail_at_step=config.fail_at_step,
    )
    if config.spectra_every and world.is_main:
        trainer.add_callback(SpectraLog(model, run_dir / runs.SPECTRA_LOG, config.spectra_every, resume=config.resume))
    if not progress:  # quiet: the log goes to train_log.jsonl, not to the terminal
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    checkpoint = latest_checkpoint(run_dir) if config.resume else None
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except NonFiniteLoss as err:
        last = latest_checkpoint(run_dir)
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        raise NonFiniteLoss(f"{err}; {where}; lower --lr and retry (or --resume from it)") from None
    info = {
        "train_seconds": round(time.perf_counter() - started + (log.previous_seconds if log else 0.0), 2),
        "steps": trainer.state.global_step,
        "train_pairs": len(train_dataset),
        "pairs_per_source": pairs.counts,
        "best_dev_score": trainer.state.best_metric,
        "best_checkpoint": Path(trainer.state.best_model_checkpoint).name if trainer.state.best_model_checkpoint else None,
        "resumed_from": checkpoint.name if checkpoint else None,
    }
    return model, info
