"""A tiny, randomly initialised BERT sentence encoder: the base of the tests that exercise mechanics.

Training, resuming, sweeping, exporting and submitting behave the same whatever the encoder's size, and on
2 CPU cores a 2-layer, 64-wide BERT is about 20 times cheaper than all-MiniLM-L6-v2 (the approach of
transformers' own ``hf-internal-testing/tiny-random-*`` models). It uses all-MiniLM-L6-v2's WordPiece
tokenizer and the module names of a real BertModel, so every adapter finds its targets; the registry-wide
adapter lifecycle runs on it too. Tests that check numbers of the real bases name them: parameter counts and
budgets use all-MiniLM-L6-v2 (tests/adapter_fixtures.py), the multilingual base has tests/test_e5.py.

The weights come from ``torch.manual_seed(0)``: the same directory, byte for byte, in every test session.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HIDDEN, LAYERS, HEADS, FFN = 64, 2, 4, 128
#: LoRA r=8 on its 12 linear layers (per layer: q, k, v, attention output H→H; intermediate H→FFN; output FFN→H):
#: r·(in + out) each, counted by hand so that the adapter library's count is checked against it.
LORA_R8_PARAMS = 8 * LAYERS * (4 * (HIDDEN + HIDDEN) + 2 * (HIDDEN + FFN))
LINEAR_LAYERS = 6 * LAYERS
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def build_tiny_model(target: Path) -> Path:
    """Write the tiny sentence-transformers model (mean pooling, L2 normalisation) to ``target``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    from elsst_bench.models import english_model_path

    english = english_model_path()
    source = english if (english / "tokenizer.json").exists() else next(english.rglob("tokenizer.json")).parent
    bert_dir = target.parent / f"{target.name}-bert"
    bert_dir.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, bert_dir / name)
    vocab = sum(1 for _ in (source / "vocab.txt").open(encoding="utf-8"))
    hf_logging.disable_progress_bar()  # no "Writing model shards" bars at the start of every test session
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                        intermediate_size=FFN, max_position_embeddings=128)
    BertModel(config).save_pretrained(bert_dir)
    word = Transformer(str(bert_dir), max_seq_length=128)
    model = SentenceTransformer(modules=[word, Pooling(HIDDEN, "mean"), Normalize()], device="cpu")
    model.save(str(target))
    shutil.rmtree(bert_dir)
    hf_logging.enable_progress_bar()
    return target
