"""Progress output of the libraries underneath (transformers, huggingface_hub, tqdm), for ``--quiet`` runs."""

from __future__ import annotations

import os
import sys


def quiet_libraries() -> None:
    """No progress bars from transformers/huggingface_hub (weight loading, model cards) or from tqdm bars that
    libraries open directly (sentence-transformers' model card); our own bars follow ``progress=False``.

    Environment variables cover libraries not imported yet (and the processes a command spawns: a sweep's
    runs); the switches of those already imported are flipped too. Imports nothing itself, so a ``--quiet``
    command whose embeddings are cached never pays for importing transformers.
    """
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
