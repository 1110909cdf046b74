"""multilingual-e5-small next to all-MiniLM-L6-v2: training-step time and encoding speed, side by side.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/base_models.py [--pairs 64] [--repeats 5] [--threads 2]
                                                                [--adapter orthogeolora] [--encode 1024]

What `--languages all` costs on a CPU. Both bases get the same adapter at LoRA r=8's budget on their own
target modules, and the same batch: ``--pairs`` real (query, grade-3 document) training pairs of the prepared
dataset, drawn evenly over all 15 languages and the three training tasks, with each model's own prompts
(``query: `` / ``passage: `` for e5, none for MiniLM), tokenised once outside the timing. A step = forward of
both columns, MultipleNegativesRankingLoss, backward, AdamW step. The two models are timed interleaved,
``--repeats`` rounds, after a warm-up; the table gives median and best step times and the e5/MiniLM ratio.
Encoding: ``--encode`` ELSST labels (all languages) through ``encode_document``, interleaved likewise, in
texts per second. Needs a prepared dataset (``elsst-bench prepare``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from elsst_bench import adapters, models  # noqa: E402
from elsst_bench.pairs import DEFAULT_TRAIN_TASKS, training_pairs  # noqa: E402
from elsst_bench.paths import default_dataset_dir  # noqa: E402
from elsst_bench.tasks import open_prepared  # noqa: E402

BASES = {"all-MiniLM-L6-v2": None, "multilingual-e5-small": models.MULTILINGUAL_MODEL}


def sample_pairs(ds, n: int) -> tuple[list[str], list[str]]:
    """``n`` train pairs spread evenly over every (task, language) source, deterministically."""
    languages = sorted({lang for t in ds.tasks() for lang in ds.languages(t)})
    pairs = training_pairs(ds, None, languages)
    step = max(1, len(pairs.anchors) // n)
    return pairs.anchors[::step][:n], pairs.positives[::step][:n]


def prepare(name: str, adapter: str, queries: list[str], documents: list[str]):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.manual_seed(0)
    model = models.load_sentence_transformer(BASES[name])
    model.train()
    adapters.apply_adapter(model, adapter, budget="lora-r8")
    q, d = models.role_prompt(model, "query"), models.role_prompt(model, "document")
    features = [dict(model.preprocess([q + t for t in queries])), dict(model.preprocess([d + t for t in documents]))]
    loss = MultipleNegativesRankingLoss(model)
    optimizer = torch.optim.AdamW(adapters.trainable_parameters(model), lr=1e-3)
    tokens = int(sum(f["attention_mask"].sum() for f in features))
    return model, loss, optimizer, features, tokens


def step(loss, optimizer, features, labels) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    value = loss(features, labels)
    value.backward()
    optimizer.step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--adapter", default="orthogeolora")
    parser.add_argument("--encode", type=int, default=1024, help="labels to encode for the throughput figure")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    ds = open_prepared(default_dataset_dir())
    queries, documents = sample_pairs(ds, args.pairs)
    labels = torch.zeros(len(queries))
    subjects = {name: prepare(name, args.adapter, queries, documents) for name in BASES}
    times: dict[str, list[float]] = {name: [] for name in BASES}
    for name, (_, loss, optimizer, features, _) in subjects.items():
        step(loss, optimizer, features, labels)  # warm-up
    for round_ in range(args.repeats):
        order = list(BASES) if round_ % 2 == 0 else list(reversed(BASES))
        for name in order:
            _, loss, optimizer, features, _ = subjects[name]
            times[name].append(step(loss, optimizer, features, labels))

    corpus = sorted({text for t in ds.tasks() for lang in ds.languages(t) for text in ds.load(t, lang).corpus.values()})
    texts = corpus[:: max(1, len(corpus) // args.encode)][: args.encode]
    speed: dict[str, list[float]] = {name: [] for name in BASES}
    for name in BASES:
        subjects[name][0].eval()
        subjects[name][0].encode_document(texts[:64], batch_size=64)  # warm-up
    for round_ in range(2):
        for name in (BASES if round_ == 0 else reversed(list(BASES))):
            start = time.perf_counter()
            with torch.no_grad():
                subjects[name][0].encode_document(texts, batch_size=128)
            speed[name].append(len(texts) / (time.perf_counter() - start))

    miniLM, e5 = list(BASES)
    print(f"{args.adapter} at lora-r8, {len(queries)} pairs from {', '.join(DEFAULT_TRAIN_TASKS)} x 15 languages, "
          f"{args.threads} threads, {args.repeats} interleaved rounds")
    print(f"{'base':<24}{'params':>12}{'tokens':>9}{'median s':>10}{'best s':>9}{'encode texts/s':>16}")
    for name in BASES:
        model, _, _, _, tokens = subjects[name]
        print(f"{name:<24}{adapters.count_trainable(model):>12,}{tokens:>9,}{statistics.median(times[name]):>10.3f}"
              f"{min(times[name]):>9.3f}{max(speed[name]):>16.0f}")
    print(f"ratio e5 / MiniLM: step median {statistics.median(times[e5]) / statistics.median(times[miniLM]):.2f}x, "
          f"best {min(times[e5]) / min(times[miniLM]):.2f}x; encoding {max(speed[miniLM]) / max(speed[e5]):.2f}x slower")
    return 0


if __name__ == "__main__":
    sys.exit(main())
