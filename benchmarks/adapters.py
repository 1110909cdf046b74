"""Training-step time of every adapter next to PEFT's LoRA, and merged-model encoding speed.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/adapters.py [--pairs 64] [--repeats 7] [--threads 2]
                                                             [--budget lora-r8] [--methods lora,pica]

Every method runs at rank 8 with its default options (``--budget lora-r8`` sizes each to LoRA r=8's
parameter count instead). A training step = forward of a (query, positive) batch of ``--pairs`` pairs
through the SentenceTransformer, MultipleNegativesRankingLoss, backward, AdamW step (tokenisation is done
once, outside the timing; it is the same for every method). Every variant is warmed up, then the variants
are timed interleaved, ``--repeats`` rounds with a rotating order; the table gives the median and the best
time with their ratios to PEFT's LoRA (r=8, α=16, the same target modules). The best-of-N ratio is the
steadier figure on a machine shared with other jobs (interference only ever adds time).
``lora-parametrize`` is LoRA written as a ``torch.nn.utils.parametrize`` parametrization of the weight
(W0 + sBA recomputed per forward): the design we measured and rejected (see adapters/layers.py).
Encoding: the base model and a merged LoRA model encode the same texts, interleaved; goal merged ≤ 1.02x.
"""

from __future__ import annotations

import argparse
import atexit
import copy
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402

from elsst_bench import adapters  # noqa: E402
from elsst_bench.models import load_sentence_transformer  # noqa: E402

GOALS = {"lora": 1.05, "orthogeolora": 1.3, "pica": 1.1, "smoa": 1.5}
SUBJECTS = [
    "unemployment", "social inequality", "voting behaviour", "housing policy", "migration", "public health",
    "education attainment", "family structure", "income distribution", "trust in institutions", "poverty",
    "labour market", "religious practice", "crime victimisation", "gender roles", "political participation",
]
FRAMES = [
    "{s}", "attitudes towards {s}", "{s} among young adults", "regional differences in {s}",
    "survey questions on {s}", "long-term trends in {s} in Europe", "{s} and social mobility",
    "measuring {s} in household panels",
]


def make_pairs(n: int) -> tuple[list[str], list[str]]:
    queries, positives = [], []
    for i in range(n):
        subject = SUBJECTS[i % len(SUBJECTS)]
        queries.append(FRAMES[i % len(FRAMES)].format(s=subject))
        positives.append(FRAMES[(i * 3 + 1) % len(FRAMES)].format(s=subject) + f" (study {i})")
    return queries, positives


class ParametrizedLoRA(nn.Module):
    """weight = W0 + s·B A as a parametrization (the rejected design)."""

    def __init__(self, linear: nn.Linear, rank: int = 8, alpha: float = 16):
        super().__init__()
        self.scaling = alpha / rank
        self.A = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(rank, linear.in_features), a=5**0.5))
        self.B = nn.Parameter(torch.zeros(linear.out_features, rank))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.B @ self.A) * self.scaling


def make_variant(base, name: str, texts: list[str], sources: list[str], budget: str | None):
    model = copy.deepcopy(base)
    model.train()
    if name == "peft-lora":
        from peft import LoraConfig, inject_adapter_in_model

        names = list(adapters.find_target_modules(model))
        for p in model.parameters():
            p.requires_grad_(False)
        config = LoraConfig(r=8, lora_alpha=16, target_modules=names, lora_dropout=0.0)
        inject_adapter_in_model(config, model[0].auto_model)
        params = [p for n, p in model.named_parameters() if "lora_" in n]
        for p in params:
            p.requires_grad_(True)
    elif name == "lora-parametrize":
        for p in model.parameters():
            p.requires_grad_(False)
        params = []
        for _, linear in adapters.find_target_modules(model).items():
            parametrization = ParametrizedLoRA(linear)
            parametrize.register_parametrization(linear, "weight", parametrization)
            params += [parametrization.A, parametrization.B]
    else:
        options = adapters.method_info(name).training_inputs(texts, sources)  # what training hands each method
        if budget:
            adapters.apply_adapter(model, name, budget=budget, **options)
        else:
            adapters.apply_adapter(model, name, rank=8, **options)
        params = adapters.trainable_parameters(model)
    return model, params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--budget", default=None,
                        help="size every method to this budget (e.g. lora-r8) instead of rank 8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="all", help="comma-separated subset of adapters (default all)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    base = load_sentence_transformer(None)
    queries, positives = make_pairs(args.pairs)
    features = [dict(base.preprocess(queries)), dict(base.preprocess(positives))]
    labels = torch.zeros(args.pairs)

    tmp = tempfile.mkdtemp(prefix="elsst-bench-sources-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    sources = []
    for i in range(2):  # two random "trained" LoRA adapters as EigenLoRAx sources
        model = copy.deepcopy(base)
        adapters.apply_adapter(model, "lora")
        with torch.no_grad():
            for layer in adapters.adapted_layers(model).values():
                layer.lora_B.normal_(0, 0.01, generator=torch.Generator().manual_seed(i))
        sources.append(str(adapters.save_adapter(model, f"{tmp}/source{i}")))

    names = ["peft-lora", "lora", "lora-parametrize", *[m for m in adapters.available_adapters() if m != "lora"]]
    if args.methods != "all":
        wanted = set(args.methods.split(","))
        names = [n for n in names if n in wanted or n == "peft-lora"]
    variants = {}
    for name in names:
        model, params = make_variant(base, name, queries + positives, sources, args.budget)
        variants[name] = (model, torch.optim.AdamW(params, lr=1e-4), MultipleNegativesRankingLoss(model),
                          sum(p.numel() for p in params))

    def step(name: str) -> float:
        model, optimizer, loss_fn, _ = variants[name]
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn([dict(features[0]), dict(features[1])], labels)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    for name in names:
        for _ in range(args.warmup):
            step(name)
    times = {name: [] for name in names}
    for rep in range(args.repeats):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            times[name].append(step(name))

    # encoding: base vs merged LoRA (after its training steps)
    merged = copy.deepcopy(variants["lora"][0]) if "lora" in variants else None
    encode_rows = []
    if merged is not None:
        adapters.merge_adapter(merged)
        plain = copy.deepcopy(base)
        texts = (queries + positives) * 2
        for m in (plain, merged):
            m.eval()
            m.encode(texts[:64], batch_size=64)
        enc = {"base": [], "merged lora": []}
        for rep in range(args.repeats):
            pair = [("base", plain), ("merged lora", merged)]
            for label, m in (pair if rep % 2 == 0 else pair[::-1]):
                start = time.perf_counter()
                m.encode(texts, batch_size=64)
                enc[label].append(time.perf_counter() - start)
        encode_rows = [(label, statistics.median(v)) for label, v in enc.items()]

    reference = statistics.median(times["peft-lora"])
    reference_min = min(times["peft-lora"])
    print(f"training step, {args.pairs} pairs, {args.threads} threads, median of {args.repeats} interleaved repeats "
          f"(warm-up {args.warmup}), {'budget ' + args.budget if args.budget else 'rank 8'}; torch {torch.__version__}")
    print(f"{'method':18s} {'trainable':>10s} {'median s':>9s} {'min s':>7s} {'x peft (median)':>16s} "
          f"{'x peft (min)':>13s}  goal")
    results = {"training": {}, "encoding": {}, "settings": vars(args) | {"json": str(args.json)}}
    for name in names:
        med, low = statistics.median(times[name]), min(times[name])
        ratio, ratio_min = med / reference, low / reference_min
        goal = GOALS.get(name)
        mark = "" if goal is None else (f"≤{goal:.2f} " + ("ok" if ratio <= goal else "MISS"))
        print(f"{name:18s} {variants[name][3]:10d} {med:9.3f} {low:7.3f} {ratio:15.2f}x {ratio_min:12.2f}x  {mark}")
        results["training"][name] = {"median_s": med, "min_s": low, "ratio": ratio, "ratio_min": ratio_min,
                                     "goal": goal, "trainable": variants[name][3], "times": times[name]}
    if encode_rows:
        base_time = encode_rows[0][1]
        print(f"\nencoding {len(texts)} texts, batch 64, median of {args.repeats} interleaved repeats")
        for label, value in encode_rows:
            ratio = value / base_time
            mark = "≤1.02 " + ("ok" if ratio <= 1.02 else "MISS") if label != "base" else ""
            print(f"{label:18s} {value:9.3f} s {ratio:6.3f}x {mark}")
            results["encoding"][label] = {"median_s": value, "ratio": ratio, "times": enc[label]}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
