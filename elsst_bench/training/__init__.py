"""Fine-tune a sentence encoder with an adapter: `elsst-bench train` end to end.

Training goes through sentence-transformers' ``SentenceTransformerTrainer`` (the Hugging Face Trainer),
so checkpoints, resumption, logging, mixed precision and DDP (``torchrun``/``accelerate launch``) come
from there. The package, one idea a module:

- :mod:`.config` — :class:`TrainConfig`, the resolved options a run records, the run id (no torch);
- :mod:`.recipes` — ``--recipe``: the rows and the loss a run trains with (no torch until it builds them);
- :mod:`.negatives` — hierarchy-aware hard negatives mined with the base model;
- :mod:`.losses` — :class:`~.losses.GradedInfoNCELoss`, InfoNCE with grade-proportional targets;
- :mod:`.trainer` — :class:`~.trainer.AdapterTrainer`: adapter-only checkpoints, a stop on NaN/inf;
- :mod:`.evaluator` — :class:`~.evaluator.DevEvaluator`: graded nDCG@10 on dev after each epoch;
- :mod:`.callbacks` — :class:`~.callbacks.RunLog` (``train_log.jsonl``), :class:`~.callbacks.SpectraLog`;
- :mod:`.run` — :func:`train`, the driver.

Loss (the ``plain`` recipe): MultipleNegativesRankingLoss (InfoNCE with in-batch negatives, scale 20, cosine
similarity) over (query, grade-3 document) pairs of the train split; the NO_DUPLICATES batch sampler keeps
identical texts out of a batch. Baselines: ``none`` (zero-shot: no training, evaluated as is) and ``full`` (every weight).

Importing this package imports no torch (``sweep --dry-run`` relies on it); the trainer, evaluator, losses and
callbacks modules do, and the driver imports them when a run starts.
"""

from __future__ import annotations

from ..errors import NonFiniteLoss
from .config import TrainConfig, default_run_id, resolved_options, size_label
from .run import latest_checkpoint, train

__all__ = ["NonFiniteLoss", "TrainConfig", "default_run_id", "latest_checkpoint",
           "resolved_options", "size_label", "train"]
