"""What a training run is, before anything runs: :class:`TrainConfig`, its resolution and the run id.

Imports no torch (nor the adapter implementations): ``elsst-bench sweep --dry-run`` resolves every planned
run's options with this module, and must stay instant. A method's default learning rate and whether it
trains at all come from the adapter registry's torch-free entries.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BenchError
from .recipes import DEFAULT_HARD_NEGATIVES, DEFAULT_MIN_GRADE, PLAIN, Recipe

BATCH_SAMPLER = "no_duplicates"


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
    max_pairs: int | None = None  # per task/language: a fixed hash sample (pairs.sample_key)
    eval_languages: list[str] | None = None  # dev/test evaluation languages (default: the training ones)
    eval_tasks: list[str] | None = None  # default: broader, synonym, crosslingual, definition where prepared
    dev_languages: list[str] | None = None  # dev (epoch and rate selection) languages; default: eval_languages
    test: bool = True  # False: a dev-only run (rate tuning): trained and kept, never scored on test
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    keep_checkpoints: bool = False
    spectra_every: int | None = None  # log ΔW's singular values every N steps to spectra.jsonl (analysis aid)
    overwrite: bool = False  # replace an existing run directory of the same id
    fail_at_step: int | None = None  # testing aid: poison the loss with NaN at this step
    recipe: str = PLAIN  # what the run trains on and with which loss (training.recipes)
    hard_negatives: int = DEFAULT_HARD_NEGATIVES  # negatives mined per pair (recipe component hard-negatives)
    min_grade: int = DEFAULT_MIN_GRADE  # lowest grade that makes a row (recipe component graded)
    prompts: str = "asymmetric"  # the prompt convention of training and evaluation (models.PROMPT_CONVENTIONS)


def method_entry(name: str):
    """The registry's torch-free entry for ``name`` (an adapter or a baseline), or one clear BenchError."""
    from ..adapters import available_methods, method_info

    known = available_methods()
    if name not in known:
        raise BenchError(f"unknown adapter {name!r}; known: {', '.join(known)}")
    return method_info(name)


def resolved_options(config: TrainConfig, dataset, identity: dict) -> dict:
    """Every option that determines the result (what `config.json` records and `--resume` compares)."""
    from ..pairs import DEFAULT_TRAIN_TASKS
    from ..tasks import resolve_selection

    method = method_entry(config.adapter)
    tasks = resolve_selection(config.tasks or [t for t in DEFAULT_TRAIN_TASKS if t in dataset.tasks()],
                              dataset.tasks(), "task")
    langs_available = sorted({lang for t in dataset.tasks() for lang in dataset.languages(t)})
    languages = resolve_selection(config.languages or ["en"], langs_available, "language")
    eval_languages = resolve_selection(config.eval_languages or languages, langs_available, "language")
    eval_tasks = resolve_selection(config.eval_tasks, dataset.tasks(), "task")
    dev_langs = resolve_selection(config.dev_languages, langs_available, "language") if config.dev_languages \
        else eval_languages
    if config.max_pairs is not None and config.max_pairs < 1:
        raise BenchError(f"--max-pairs must be >= 1 (pairs per task and language), got {config.max_pairs}")
    if config.epochs < 1 or config.batch_size < 2:
        raise BenchError("--epochs must be >= 1 and --batch-size >= 2 (in-batch negatives need two pairs)")
    from ..models import DEFAULT_PROMPTS, check_prompts

    check_prompts(config.prompts)
    recipe = Recipe.resolve(config.recipe, config.hard_negatives, config.min_grade)
    if recipe.components and not method.trains:
        raise BenchError(f"--recipe {recipe.name} trains, and {config.adapter} trains nothing; leave --recipe plain")
    lr = config.lr if config.lr is not None else method.default_lr
    if method.trains and (lr is None or not (math.isfinite(lr) and lr > 0)):
        raise BenchError(f"--lr must be a positive finite number, got {lr}")
    options = {
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
        "lr": lr if method.trains else None,
        "seed": config.seed,
        "options": dict(sorted(config.options.items())),
        "sources": [str(Path(s)) for s in config.sources],
        "max_pairs": config.max_pairs,
        "warmup_ratio": config.warmup_ratio,
        "weight_decay": config.weight_decay,
        "loss": recipe.loss,
        "batch_sampler": BATCH_SAMPLER,
        "dataset_id": dataset.dataset_id,
        "dataset_fingerprint": dataset.fingerprint,
    }
    # Recorded only when they differ from the default, so runs made before these options existed still match.
    if dev_langs != eval_languages:
        options["dev_languages"] = dev_langs
    if not config.test:
        options["test"] = False
    if recipe.components:
        options["recipe"] = recipe.name
        options["recipe_options"] = recipe.options
    if config.prompts != DEFAULT_PROMPTS:
        options["prompts"] = config.prompts
    return options


def dev_languages(options: dict) -> list[str]:
    """The languages a run's dev evaluation scores (its evaluation languages unless set apart)."""
    return options.get("dev_languages", options["eval_languages"])


def scores_test(options: dict) -> bool:
    """Whether a run is scored on test at the end (False: a dev-only rate-tuning run)."""
    return options.get("test", True)


def size_label(adapter: str, rank: int, budget: str | None) -> str:
    """How big a run's trainable part is, in words: ``lora-r8`` (a budget), ``r8``, ``all`` (full), ``0``."""
    method = method_entry(adapter)
    if not method.trains:
        return "0"
    if not method.is_adapter:
        return "all"
    return budget or f"r{rank}"


def default_run_id(options: dict) -> str:
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    size = size_label(options["adapter"], options["rank"], options["budget"])
    langs = "+".join(options["languages"]) if len(options["languages"]) <= 3 else f"{len(options['languages'])}lang"
    return f"{options['adapter']}-{langs}-{size}-s{options['seed']}-{digest}"
