"""Fine-tune a sentence encoder with an adapter: `elsst-bench train` end to end.

Training goes through sentence-transformers' ``SentenceTransformerTrainer`` (the Hugging Face Trainer),
so checkpoints, resumption, logging, mixed precision and DDP (``torchrun``/``accelerate launch``) come
from there. Our additions are small:

- :class:`AdapterTrainer` saves and loads **only the adapter tensors** in checkpoints (a few MB instead of
  the whole encoder) and stops on a non-finite loss, keeping the last good checkpoint;
- :class:`DevEvaluator`, a ``SentenceEvaluator`` that runs the evaluation layer on the dev split after each
  epoch (primary metric: graded nDCG@10, macro over tasks and languages); the best epoch is kept;
- :class:`RunLog`, a ``TrainerCallback`` that writes ``train_log.jsonl`` atomically.

Loss: MultipleNegativesRankingLoss (InfoNCE with in-batch negatives, scale 20, cosine similarity) over
(query, grade-3 document) pairs of the train split; the NO_DUPLICATES batch sampler keeps identical texts
out of a batch. Baselines: ``none`` (zero-shot: no training, evaluated as is) and ``full`` (every weight).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import resource
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import atomic, runs
from .errors import BenchError

#: Default learning rate per method. LoRA and OrthoGeoLoRA from the measurements in METHODS.md (English
#: `broader`, all-MiniLM-L6-v2: LoRA best around 1e-3–3e-3, OrthoGeoLoRA needs 1e-2 because σ starts at 0 and
#: carries the whole magnitude). Others: the rate of the closest relative; none is tuned per method on dev.
DEFAULT_LR = {
    "full": 2e-5,
    "lora": 3e-3,
    "orthogeolora": 1e-2,
    "gelora": 3e-3,
    "smoa": 3e-3,
    "eigenlorax": 1e-2,
    "pica": 3e-3,
    "dora": 3e-3,
    "pissa": 1e-3,
    "vera": 1e-2,
    "hra": 3e-3,
}
BASELINES = ("none", "full")
SPECTRA_LOG = "spectra.jsonl"


class NonFiniteLoss(BenchError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    adapter: str
    model: str | None = None
    rank: int = 8
    budget: str | None = None
    tasks: list[str] | None = None
    languages: list[str] | None = None
    epochs: int = 3
    batch_size: int = 64
    lr: float | None = None
    seed: int = 0
    out: str = "runs"
    run_id: str | None = None
    resume: bool = False
    device: str = "auto"
    dataset: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    max_pairs: int | None = None  # per task/language, for smoke tests
    eval_languages: list[str] | None = None  # dev/test evaluation languages (default: the training ones)
    eval_tasks: list[str] | None = None  # default: broader, synonym, crosslingual, definition where prepared
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    keep_checkpoints: bool = False
    spectra_every: int | None = None  # log ΔW's singular values every N steps to spectra.jsonl (analysis aid)
    overwrite: bool = False  # replace an existing run directory of the same id
    fail_at_step: int | None = None  # testing aid: poison the loss with NaN at this step


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise BenchError(f"unknown device {device!r}; use auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but no CUDA device is available")
    return device


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text.rsplit("/", 1)[-1]).strip("-").lower()


def resolved_options(config: TrainConfig, dataset, identity: dict) -> dict:
    """Every option that determines the result (what `config.json` records and `--resume` compares)."""
    from .adapters import available_adapters
    from .pairs import DEFAULT_TRAIN_TASKS
    from .tasks import resolve_selection

    known = [*available_adapters(), *BASELINES]
    if config.adapter not in known:
        raise BenchError(f"unknown adapter {config.adapter!r}; known: {', '.join(known)}")
    tasks = resolve_selection(config.tasks or [t for t in DEFAULT_TRAIN_TASKS if t in dataset.tasks()],
                              dataset.tasks(), "task")
    langs_available = sorted({lang for t in dataset.tasks() for lang in dataset.languages(t)})
    languages = resolve_selection(config.languages or ["en"], langs_available, "language")
    eval_languages = resolve_selection(config.eval_languages or languages, langs_available, "language")
    eval_tasks = resolve_selection(config.eval_tasks, dataset.tasks(), "task")
    if config.epochs < 1 or config.batch_size < 2:
        raise BenchError("--epochs must be >= 1 and --batch-size >= 2 (in-batch negatives need two pairs)")
    lr = config.lr if config.lr is not None else DEFAULT_LR.get(config.adapter)
    if config.adapter != "none" and (lr is None or not lr > 0):
        raise BenchError(f"--lr must be a positive number, got {lr}")
    return {
        "adapter": config.adapter,
        "model": identity,
        "rank": config.rank,
        "budget": config.budget,
        "tasks": tasks,
        "languages": languages,
        "eval_tasks": eval_tasks,
        "eval_languages": eval_languages,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": lr if config.adapter != "none" else None,
        "seed": config.seed,
        "options": dict(sorted(config.options.items())),
        "sources": [str(Path(s)) for s in config.sources],
        "max_pairs": config.max_pairs,
        "warmup_ratio": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "loss": "MultipleNegativesRankingLoss(scale=20, cos_sim)",
        "batch_sampler": "no_duplicates",
        "dataset_id": dataset.dataset_id,
        "dataset_fingerprint": dataset.fingerprint,
    }


def default_run_id(options: dict) -> str:
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    size = options["budget"] or f"r{options['rank']}"
    if options["adapter"] in BASELINES:
        size = "all" if options["adapter"] == "full" else "0"
    langs = "+".join(options["languages"]) if len(options["languages"]) <= 3 else f"{len(options['languages'])}lang"
    return f"{options['adapter']}-{langs}-{size}-s{options['seed']}-{digest}"


def _peak_memory_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint whose trainer_state.json was written (the Trainer writes it last)."""
    root = run_dir / runs.CHECKPOINTS
    if not root.exists():
        return None
    done = [p for p in root.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.rsplit("-", 1)[-1]), default=None)


def train(config: TrainConfig, progress: bool = True) -> Path:
    """Train (or, for ``none``, just evaluate) and return the completed run directory."""
    from .models import model_identity
    from .paths import default_dataset_dir
    from .tasks import open_prepared

    device = resolve_device(config.device)
    dataset = open_prepared(config.dataset or default_dataset_dir())
    identity = model_identity(config.model)
    options = resolved_options(config, dataset, identity)
    run_id = config.run_id or default_run_id(options)
    run_dir = Path(config.out) / run_id

    if config.spectra_every is not None and (config.adapter in BASELINES or config.spectra_every < 1):
        raise BenchError("--spectra-every needs an adapter (not none/full) and a number of steps >= 1")
    if config.overwrite and config.resume:
        raise BenchError("--overwrite and --resume contradict each other; pick one")
    if config.overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    if (run_dir / runs.CONFIG).exists():
        previous = runs.read_config(run_dir)
        if previous.get("status") == "complete":
            raise BenchError(f"run {run_dir} is already complete; choose another --run-id or pass --overwrite")
        if not config.resume:
            raise BenchError(f"run {run_dir} exists but is incomplete; pass --resume to continue it")
        if previous.get("options") != options:
            changed = sorted(k for k in options if previous.get("options", {}).get(k) != options[k])
            raise BenchError(f"--resume with different options than {run_dir} was started with: {', '.join(changed)}")
    elif config.resume:
        raise BenchError(f"nothing to resume: {run_dir} does not exist")

    record = {
        "run_id": run_id,
        "status": "running",
        "options": options,
        **{k: options[k] for k in ("adapter", "model", "seed", "dataset_id", "dataset_fingerprint")},
        "device": device,
        "versions": runs.versions(),
        "git_commit": runs.git_commit(),
        "command": " ".join(sys.argv),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(run_dir / runs.CONFIG, record)
    started = time.perf_counter()
    if config.adapter == "none":
        model, trainable = _load_base(config, device), 0
        train_info: dict[str, Any] = {"train_seconds": 0.0, "steps": 0}
    else:
        model, trainable, train_info = _fit(config, options, dataset, run_dir, device, progress)
    record.update(train_info)
    record["trainable_params"] = trainable
    record["peak_memory_mb"] = round(_peak_memory_mb(device), 1)
    _save_model(model, config.adapter, run_dir, identity)
    if (run_dir / runs.ADAPTER_DIR / "adapter.safetensors").exists():
        record["adapter_sha256"] = hashlib.sha256((run_dir / runs.ADAPTER_DIR / "adapter.safetensors").read_bytes()).hexdigest()
    record["adapter_config"] = _adapter_config(run_dir)
    atomic.write_json(run_dir / runs.CONFIG, record)  # still "running": metrics come next

    from .evaluation import evaluate_model

    eval_identity = {**identity, "run": run_id, "adapter_sha256": record.get("adapter_sha256")}
    metrics = evaluate_model(
        model, dataset, split="test", tasks=options["eval_tasks"], languages=options["eval_languages"],
        out_dir=run_dir, identity=eval_identity, adapter=config.adapter, trainable_params=trainable,
        show_progress=progress,
    )
    record["status"] = "complete"
    record["wall_seconds"] = round(time.perf_counter() - started, 2)
    record["test_main_score"] = metrics.get("main_score")
    atomic.write_json(run_dir / runs.CONFIG, record)
    if not config.keep_checkpoints:
        shutil.rmtree(run_dir / runs.CHECKPOINTS, ignore_errors=True)
    return run_dir


def _load_base(config: TrainConfig, device: str):
    from .models import load_sentence_transformer

    return load_sentence_transformer(config.model, device=device)


def _adapter_config(run_dir: Path) -> dict | None:
    path = run_dir / runs.ADAPTER_DIR / "adapter_config.json"
    return json.loads(path.read_text()) if path.exists() else None


def _save_model(model, adapter: str, run_dir: Path, identity: dict) -> None:
    if adapter == "none":
        return
    if adapter == "full":
        with atomic.directory(run_dir / runs.MODEL_DIR) as tmp:
            model.save(str(tmp))
        return
    from .adapters import save_adapter

    with atomic.directory(run_dir / runs.ADAPTER_DIR) as tmp:
        save_adapter(model, tmp, base_model=identity)


def _fit(config: TrainConfig, options: dict, dataset, run_dir: Path, device: str, progress: bool):
    """Apply the adapter and train with the Trainer; returns (model with best weights, trainable, info)."""
    import transformers
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from .adapters import apply_adapter, count_trainable
    from .pairs import training_pairs

    transformers.set_seed(config.seed)
    pairs = training_pairs(dataset, options["tasks"], options["languages"], limit=config.max_pairs)
    model = _load_base(config, device)
    if config.adapter == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        trainable = sum(p.numel() for p in model.parameters())
    else:
        extra = dict(options["options"])
        if config.adapter == "gelora":
            rng_texts = sorted(set(pairs.anchors))
            step = max(1, len(rng_texts) // 512)
            extra.setdefault("texts", rng_texts[::step][:512])
        if config.adapter == "eigenlorax":
            extra["sources"] = _eigenlorax_sources(config.sources)
        apply_adapter(model, config.adapter, rank=options["rank"], budget=options["budget"],
                      base_model=options["model"], **extra)
        trainable = count_trainable(model)

    transformers.set_seed(config.seed)  # same initial state for the data order whatever apply_adapter drew
    train_dataset = pairs.to_dataset()
    steps_per_epoch = max(1, len(train_dataset) // config.batch_size)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(run_dir / runs.CHECKPOINTS),
        num_train_epochs=options["epochs"],
        per_device_train_batch_size=options["batch_size"],
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
        metric_for_best_model="eval_dev_ndcg@10_graded",
        greater_is_better=True,
        logging_steps=max(1, min(10, steps_per_epoch // 2)),
        report_to="none",
        use_cpu=device == "cpu",
        fp16=device == "cuda" and config.adapter not in ("full",),
        dataloader_num_workers=0,
        disable_tqdm=not progress,
        save_only_model=False,
    )
    classes = _build_classes()
    evaluator = classes["DevEvaluator"](dataset, options["eval_tasks"], options["eval_languages"])
    log = classes["RunLog"](run_dir / runs.TRAIN_LOG, resume=config.resume)
    loss = MultipleNegativesRankingLoss(model)
    trainer = classes["AdapterTrainer"](
        model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=evaluator, callbacks=[log],
        adapter_name=config.adapter, fail_at_step=config.fail_at_step,
    )
    if config.spectra_every:
        trainer.add_callback(classes["SpectraLog"](model, run_dir / SPECTRA_LOG, config.spectra_every,
                                                   resume=config.resume))
    if not progress:  # quiet: the log goes to train_log.jsonl, not to the terminal
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    checkpoint = _latest_checkpoint(run_dir) if config.resume else None
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except NonFiniteLoss as err:
        last = _latest_checkpoint(run_dir)
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
        raise NonFiniteLoss(f"{err}; {where}; lower --lr and retry (or --resume from it)") from None
    info = {
        "train_seconds": round(time.perf_counter() - started + log.previous_seconds, 2),
        "steps": trainer.state.global_step,
        "train_pairs": len(train_dataset),
        "pairs_per_source": pairs.counts,
        "best_dev_score": trainer.state.best_metric,
        "best_checkpoint": Path(trainer.state.best_model_checkpoint).name if trainer.state.best_model_checkpoint else None,
        "resumed_from": checkpoint.name if checkpoint else None,
    }
    return model, trainable, info


def _eigenlorax_sources(sources: list[str]) -> list[str]:
    if not sources:
        raise BenchError(
            "eigenlorax needs --sources RUN_DIR... : two or more LoRA runs of the same base model, e.g. "
            "`elsst-bench train --adapter lora --tasks synonym` and `--tasks crosslingual`"
        )
    dirs = []
    for source in sources:
        path = Path(source)
        adapter_dir = path / runs.ADAPTER_DIR if (path / runs.ADAPTER_DIR).exists() else path
        if not (adapter_dir / "adapter_config.json").exists():
            raise BenchError(f"eigenlorax source {source} is neither a LoRA run directory nor an adapter directory")
        dirs.append(str(adapter_dir))
    return dirs


def _load_adapter_weights(model, directory: Path) -> None:
    """Copy saved adapter tensors into the adapter already applied to ``model`` (checkpoint reload)."""
    from .adapters import base

    state = base.get_state(model)
    base._copy_tensors(state, base.read_adapter_tensors(directory), directory / base.ADAPTER_WEIGHTS)


# ----- Trainer pieces -----------------------------------------------------------------------------------
# Built on first use so that importing this module (and `elsst-bench --help`) does not import torch.
def __getattr__(name: str):  # PEP 562
    if name in ("AdapterTrainer", "DevEvaluator", "RunLog"):
        return _build_classes()[name]
    raise AttributeError(name)


@functools.cache
def _build_classes() -> dict:
    import torch
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator
    from transformers import TrainerCallback

    class AdapterTrainer(SentenceTransformerTrainer):
        """A SentenceTransformerTrainer whose checkpoints hold only the adapter, and that stops on NaN/inf."""

        def __init__(self, *args, adapter_name: str, fail_at_step: int | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.adapter_name = adapter_name
            self.fail_at_step = fail_at_step

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
            value = loss[0] if isinstance(loss, tuple) else loss
            if self.fail_at_step is not None and self.state.global_step + 1 >= self.fail_at_step:
                value = value * float("nan")
            if not torch.isfinite(value.detach()).all():
                raise NonFiniteLoss(
                    f"the training loss became {value.item()} at step {self.state.global_step + 1}"
                )
            return loss

        def _save(self, output_dir: str | None = None, state_dict=None) -> None:
            if self.adapter_name == "full":
                return super()._save(output_dir, state_dict)
            from .adapters import save_adapter

            output_dir = output_dir or self.args.output_dir
            save_adapter(self.model, Path(output_dir) / runs.ADAPTER_DIR)

        def _load_from_checkpoint(self, checkpoint_path: str, model=None) -> None:
            if self.adapter_name == "full":
                return super()._load_from_checkpoint(checkpoint_path)
            _load_adapter_weights(self.model, Path(checkpoint_path) / runs.ADAPTER_DIR)

    class DevEvaluator(SentenceEvaluator):
        """Runs the evaluation layer on the dev split; primary metric: macro graded nDCG@10."""

        def __init__(self, dataset, tasks: list[str], languages: list[str]):
            super().__init__()
            self.dataset = dataset
            self.tasks = [t for t in tasks]
            self.languages = languages
            self.name = "dev"
            self.primary_metric = "ndcg@10_graded"
            self.greater_is_better = True

        def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
            from .evaluation import evaluate_model

            metrics = evaluate_model(model, self.dataset, split="dev", tasks=self.tasks, languages=self.languages,
                                     show_progress=False)
            scores = {"ndcg@10_graded": float(metrics["main_score"])}
            for task, per_lang in metrics["scores"].items():
                scores[f"{task}_ndcg@10_graded"] = float(per_lang["macro"]["ndcg@10_graded"])
            return self.prefix_name_to_metrics(scores, self.name)

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
            from .adapters import adapter_spectra

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

    return {"AdapterTrainer": AdapterTrainer, "DevEvaluator": DevEvaluator, "RunLog": RunLog,
            "SpectraLog": SpectraLog}
