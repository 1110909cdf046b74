"""Progress output of the libraries underneath (transformers, huggingface_hub, tqdm), for ``--quiet`` runs."""

from __future__ import annotations

import os


def quiet_libraries() -> None:
    """No progress bars from transformers/huggingface_hub (weight loading, model cards) or from tqdm bars that
    libraries open directly (sentence-transformers' model card); our own bars follow ``progress=False``."""
    os.environ["TQDM_DISABLE"] = "1"
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    disable_progress_bars()
