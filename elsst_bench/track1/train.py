"""Training on Track 1's ``train`` split as a retrieval task like the benchmark's own: each (passage, positive
concept) is a row — the passage a query, the concept its term and definition — with hard negatives from the
file (``hard_negative_ids`` in file order; a passage with fewer gets concepts of the pool that are none of its
positives, drawn with the run's seed), MultipleNegativesRankingLoss, the adapter library and the training layer's
Trainer (adapter-only checkpoints, NaN stop), the epoch with the best ``val`` nDCG@10 kept. The run directory is
the benchmark's own layout (``config.json``, ``adapter/``, ``train_log.jsonl``), so ``export``, ``serve`` and
``track1 evaluate|submit`` read it like any run; its ``metrics.val.json`` holds the four Track 1 metrics on val.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import atomic, outputs, runs
from ..errors import BenchError
from .metrics import METRICS, PRIMARY, score
from .release import Release

EVALUATOR = "track1_val"
VAL_METRICS = "metrics.val.json"


@dataclass
class Track1Config:
    adapter: str
    model: str | None = None
    rank: int = 8
    budget: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 1
    batch_size: int = 32
    lr: float | None = None
    seed: int = 0
    hard_negatives: int = 1
    max_pairs: int | None = None
    out: str = "runs"
    run_id: str | None = None
    overwrite: bool = False
    device: str = "auto"


def _rows(release: Release, config: Track1Config) -> list[dict[str, str]]:
    rng = random.Random(config.seed)
    pool = list(release.pool)
    room = len(pool) - max(len(p.positives) for p in release.train)
    if config.hard_negatives > room:
        raise BenchError(f"--hard-negatives {config.hard_negatives} is more than the pool has besides a passage's "
                         f"positives ({room})")
    rows = []
    for passage in release.train:
        for positive in passage.positives:
            negatives = list(passage.negatives[: config.hard_negatives])
            while len(negatives) < config.hard_negatives:
                pick = pool[rng.randrange(len(pool))]
                if pick not in passage.positives and pick not in negatives:
                    negatives.append(pick)
            row = {"anchor": passage.text, "positive": release.pool[positive].text}
            row.update({f"negative_{i + 1}": release.pool[c].text for i, c in enumerate(negatives)})
            rows.append(row)
    if config.max_pairs is not None:
        rows = random.Random(config.seed).sample(rows, min(config.max_pairs, len(rows)))
    return rows


def _evaluator(release: Release):
    from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator

    from .rank import rank_passages

    class Track1Evaluator(SentenceEvaluator):
        """Track 1's four metrics on ``val`` (primary: nDCG@10), what the Trainer keeps the best epoch by."""

        def __init__(self):
            super().__init__()
            self.name, self.primary_metric, self.greater_is_better = EVALUATOR, PRIMARY, True

        def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
            ranked = rank_passages(model, release, release.val)
            values = score(ranked, {p.id: p.positives for p in release.val})
            return self.prefix_name_to_metrics(values, self.name)

    return Track1Evaluator()


def _check(config: Track1Config):
    from ..training.config import method_entry

    method = method_entry(config.adapter)
    if not method.trains:
        raise BenchError(f"{config.adapter} trains nothing; score the base model with `track1 evaluate --model`")
    if config.epochs < 1 or config.batch_size < 2 or config.hard_negatives < 0:
        raise BenchError("--epochs must be >= 1, --batch-size >= 2 and --hard-negatives >= 0")
    if config.max_pairs is not None and config.max_pairs < config.batch_size:
        raise BenchError(f"--max-pairs {config.max_pairs} is less than one batch ({config.batch_size})")
    lr = config.lr if config.lr is not None else method.default_lr
    if not (isinstance(lr, (int, float)) and lr > 0 and lr != float("inf")):
        raise BenchError(f"--lr must be a positive finite number, got {lr}")
    return method, lr


def train_track1(release: Release, config: Track1Config, progress: bool = True) -> Path:
    """Train, keep the best val epoch, write the run directory and its val metrics; returns the run directory."""
    import transformers
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from ..devices import resolve_device
    from ..models import check_finite, load_sentence_transformer, model_identity, portable_identity
    from ..training.callbacks import RunLog
    from ..training.run import _column_prompts
    from ..training.trainer import AdapterTrainer

    method, lr = _check(config)
    run_id = outputs.check_run_id(config.run_id or f"track1-{config.adapter}-s{config.seed}")
    run_dir = Path(config.out) / run_id
    exists = outputs.check_target(run_dir, outputs.RUN, replace=config.overwrite)
    device = resolve_device(config.device)
    identity = model_identity(config.model)
    with runs.owner(run_dir):
        transformers.set_seed(config.seed)
        model = load_sentence_transformer(config.model, device=device)
        rows = _rows(release, config)
        if not rows:
            raise BenchError(f"{release.path}/train.jsonl gives no (passage, positive) rows")
        trainable = _make_trainable(model, method, config, identity, rows,
                                    config.epochs * max(1, len(rows) // config.batch_size))
        if exists:
            shutil.rmtree(run_dir)  # a run directory (check_target saw its config.json): ours to replace
        options = {"adapter": config.adapter, "model": portable_identity(identity), "rank": config.rank,
                   "budget": config.budget, "options": dict(sorted(config.options.items())), "epochs": config.epochs,
                   "batch_size": config.batch_size, "lr": lr, "seed": config.seed,
                   "hard_negatives": config.hard_negatives, "max_pairs": config.max_pairs, "loss": "mnrl",
                   "track1": {"release": str(release.path), "fingerprint": release.fingerprint}}
        record = {"run_id": run_id, "status": "running", "kind": "track1", "options": options,
                  **{k: options[k] for k in ("adapter", "model", "seed")}, "dataset_id": "track1",
                  "dataset_fingerprint": release.fingerprint, "device": device, "versions": runs.versions(),
                  "git_commit": runs.git_commit(), "command": runs.recorded_command(sys.argv)}
        run_dir.mkdir(parents=True)
        atomic.write_json(run_dir / runs.CONFIG, record)
        dataset = Dataset.from_list(rows)
        args = SentenceTransformerTrainingArguments(
            output_dir=str(run_dir / runs.CHECKPOINTS), num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size, learning_rate=lr, warmup_steps=0.1, seed=config.seed,
            data_seed=config.seed, batch_sampler=BatchSamplers.NO_DUPLICATES, eval_strategy="epoch",
            save_strategy="epoch", save_total_limit=2, load_best_model_at_end=True,
            metric_for_best_model=f"eval_{EVALUATOR}_{PRIMARY}", greater_is_better=True,
            logging_steps=max(1, min(10, len(rows) // config.batch_size // 2)), report_to="none",
            use_cpu=device == "cpu", dataloader_num_workers=0, disable_tqdm=not progress,
            prompts=_column_prompts(model, dataset.column_names))
        trainer = AdapterTrainer(model=model, args=args, train_dataset=dataset,
                                 loss=MultipleNegativesRankingLoss(model), evaluator=_evaluator(release),
                                 callbacks=[RunLog(run_dir / runs.TRAIN_LOG)], adapter_checkpoints=method.is_adapter)
        if not progress:
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        trainer.train()
        record.update(train_seconds=round(time.perf_counter() - started, 2), steps=trainer.state.global_step,
                      train_pairs=len(rows), best_dev_score=trainer.state.best_metric, trainable_params=trainable)
        check_finite(model, f"run {run_dir}", trainable_only=True)
        _save(model, method, run_dir, identity)
        from .rank import rank_passages

        values = score(rank_passages(model, release, release.val), {p.id: p.positives for p in release.val})
        atomic.write_json(run_dir / VAL_METRICS, {"split": "val", "release_fingerprint": release.fingerprint,
                                                  "metrics": {m: values[m] for m in METRICS}})
        record.update(status="complete", val_metrics={m: values[m] for m in METRICS})
        atomic.write_json(run_dir / runs.CONFIG, record)
        shutil.rmtree(run_dir / runs.CHECKPOINTS, ignore_errors=True)
    return run_dir


def _make_trainable(model, method, config: Track1Config, identity: dict, rows: list[dict[str, str]],
                    steps: int) -> int:
    if not method.is_adapter:
        for p in model.parameters():
            p.requires_grad_(True)
        return sum(p.numel() for p in model.parameters())
    from ..adapters import apply_adapter, count_trainable

    from ..training.run import adapter_inputs

    extra = dict(config.options)
    extra.update(adapter_inputs(model, method, extra, [r["anchor"] for r in rows], [r["positive"] for r in rows], [],
                                steps))  # EigenLoRAx refuses here
    apply_adapter(model, config.adapter, rank=config.rank, budget=config.budget, base_model=identity, **extra)
    return count_trainable(model)


def _save(model, method, run_dir: Path, identity: dict) -> None:
    from ..models import portable_identity

    if not method.is_adapter:
        with atomic.directory(run_dir / runs.MODEL_DIR, outputs.MODEL) as tmp:
            model.save(str(tmp))
        return
    from ..adapters import save_adapter

    with atomic.directory(run_dir / runs.ADAPTER_DIR, outputs.ADAPTER) as tmp:
        save_adapter(model, tmp, base_model=portable_identity(identity))
