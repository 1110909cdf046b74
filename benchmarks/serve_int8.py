"""The int8 serving backend (``--backend openvino``) against the fp32 torch model: retrieval quality and speed.

Usage: .venv/bin/python benchmarks/serve_int8.py [--models zero-shot,run] [--run RUN_DIR] [--languages all]
       [--tasks all] [--skip-quality] [--skip-speed] [--threads 2] [--out serve_int8.json]

Needs the ``serve-int8`` extra. For each model, zero-shot multilingual-e5-small and a trained run (default
``results/multilingual/runs/lora-graded-g1-s0``, its adapter merged):

1. **Quality.** The int8 model (``elsst_bench.serve.backends.serving_model``, calibrated on every language of the
   dataset, as ``elsst-bench serve`` without ``--languages`` builds it) is evaluated with ``evaluate_model`` on the
   test split of the selected tasks and languages; graded nDCG@10 per task (macro over the selected languages) and
   the main score (mean over tasks) are set beside the fp32 numbers committed in the model's ``metrics.json``
   (``results/multilingual/runs/none-s0`` for zero-shot), re-averaged over the same languages. Its embeddings go to
   the embedding cache under the int8 tag (``--no-cache``: none), so a second run only ranks and scores.
2. **Speed, encode only** (what a suggestion request costs before the index search): the fp32 torch model (adapter
   merged) and the int8 model loaded side by side in one process, measured in alternating blocks of calls
   (``--rounds``; see ``measure``) so that both see the same machine noise; one text per call, p50/p95 over
   ``--repeats`` calls, for a short title and a 200-word abstract; then throughput of batches of 32 titles and of
   32 abstracts. Both encode through ``encode_role``, the suggester's path (tokenisation, prompt, pooling and
   normalisation included), with ``--threads`` threads.

The tables are printed and written to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from elsst_bench import paths, runs  # noqa: E402
from elsst_bench.evaluation import EvaluationOptions, evaluate_model, macro  # noqa: E402
from elsst_bench.evaluation.encode import default_cache_dir, encode_role  # noqa: E402
from elsst_bench.evaluation.loading import LazySentenceTransformer, load_base_model, load_run_model  # noqa: E402
from elsst_bench.evaluation.runner import select  # noqa: E402
from elsst_bench.serve.backends import calibration_texts, check_backend, serving_model  # noqa: E402
from elsst_bench.serve.core import search_languages  # noqa: E402
from elsst_bench.tasks import open_prepared  # noqa: E402

PRIMARY = "ndcg@10_graded"
DEFAULT_RUN = "results/multilingual/runs/lora-graded-g1-s0"
ZERO_SHOT_FP32 = "results/multilingual/runs/none-s0"
#: Untimed calls of a model before each block of timed ones.
WARM_CALLS = 3
TITLE = "Youth unemployment and social exclusion in rural regions of Europe"
ABSTRACT = (
    "This study examines how young people in rural regions of Europe move between education, employment and "
    "unemployment in the decade after the financial crisis. Using longitudinal survey data from twelve countries, "
    "we follow a cohort of respondents aged fifteen to twenty-nine and relate their labour market trajectories to "
    "household income, parental education, local public transport and access to vocational training. Young women "
    "with low educational attainment were the most likely to experience long periods of unemployment or economic "
    "inactivity, while migration to urban areas reduced the risk of social exclusion but weakened family and "
    "community ties. Regional differences were large: active labour market policies and apprenticeship schemes "
    "were associated with faster entry into stable jobs, whereas temporary contracts and informal work were "
    "common where such programmes were absent. Subjective well-being, trust in public institutions and "
    "political participation declined with the length of unemployment, and the effect persisted after "
    "re-employment. We discuss the implications for social policy, for the measurement of youth unemployment in "
    "comparative research, and for data archives that document these surveys, and we recommend that future "
    "waves collect information on housing conditions, health, digital skills and care responsibilities so that "
    "the mechanisms of social mobility and inequality can be studied more closely across the life course."
)


def load_merged(spec: str | None, ds):
    """``(LoadedModel, fp32 SentenceTransformer with the adapter merged, in eval mode)``, as ``load_suggester``."""
    if spec is None:
        loaded = load_base_model(None, "cpu", lazy=False)
    else:
        loaded = load_run_model(spec, ds, "cpu")
    model = loaded.model
    if isinstance(model, LazySentenceTransformer):
        model = model.load()
    if spec is not None and runs.is_adapter(loaded.adapter):
        from elsst_bench.adapters import merge_adapter

        merge_adapter(model)
    model.eval()
    return loaded, model


def fp32_reference(path: Path, loaded, ds, selection) -> dict:
    """The committed fp32 metrics, checked to be of this model and dataset and to cover the selection."""
    metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    if metrics.get("dataset_fingerprint") != ds.fingerprint:
        sys.exit(f"{path}/metrics.json was computed on another dataset")
    if (metrics.get("model") or {}).get("sha256") != loaded.identity.get("sha256"):
        sys.exit(f"{path}/metrics.json is of another base model")
    if metrics.get("split") != "test":
        sys.exit(f"{path}/metrics.json is not the test split")
    missing = [f"{task}/{lang}" for task, langs in selection for lang in langs
               if lang not in metrics["scores"].get(task, {})]
    if missing:
        sys.exit(f"{path}/metrics.json lacks {', '.join(missing)}")
    return metrics


def quality(name: str, spec: str | None, ds, args) -> dict:
    selection = select(ds, args.tasks, args.languages)
    loaded, model = load_merged(spec, ds)
    reference = fp32_reference(Path(spec or ZERO_SHOT_FP32), loaded, ds, selection)
    cache = None if args.no_cache else str(default_cache_dir())
    start = time.perf_counter()
    model, extra = serving_model(model, "openvino", loaded.identity, loaded.cache_extra, cache,
                                 calibration_texts(ds, search_languages(ds)))
    export_s = time.perf_counter() - start
    options = EvaluationOptions(cache_dir=cache, cache_extra=extra, batch_size=args.batch_size)
    start = time.perf_counter()
    result = evaluate_model(model, ds, split="test", tasks=[t for t, _ in selection],
                            languages=sorted({lang for _, langs in selection for lang in langs}),
                            identity=loaded.identity, adapter=loaded.adapter, options=options)
    eval_s = time.perf_counter() - start
    rows, per_language = [], {}
    for task, langs in selection:
        fp32 = macro({lang: reference["scores"][task][lang] for lang in langs})[PRIMARY]
        int8 = result.scores[task]["macro"][PRIMARY]
        deltas = {lang: result.scores[task][lang][PRIMARY] - reference["scores"][task][lang][PRIMARY]
                  for lang in langs}
        per_language[task] = {lang: {"fp32": reference["scores"][task][lang][PRIMARY],
                                     "int8": result.scores[task][lang][PRIMARY], "delta": d}
                              for lang, d in deltas.items()}
        worst = min(deltas, key=deltas.get)
        rows.append({"task": task, "languages": len(langs), "fp32": fp32, "int8": int8, "delta": int8 - fp32,
                     "worst_language": worst, "worst_delta": deltas[worst]})
    main_fp32 = statistics.fmean(r["fp32"] for r in rows)
    main_int8 = statistics.fmean(r["int8"] for r in rows)
    full = all(len(langs) == len(reference["scores"][task]) - 1 for task, langs in selection) and \
        len(selection) == len(reference["scores"])
    if full and abs(main_fp32 - reference["main_score"]) > 1e-9:
        sys.exit(f"re-averaged fp32 main score {main_fp32} differs from the committed {reference['main_score']}")
    print(f"\n## quality: {name} ({spec or 'zero-shot'}), test split, {PRIMARY}, macro over languages")
    print(f"int8 export/load {export_s:.1f} s, evaluation {eval_s:.1f} s "
          f"({result.metrics['encoding']['encoded']:,} texts encoded, {result.metrics['encoding']['from_cache']:,} "
          "from cache)")
    print(f"| {'task':<12} | langs | {'fp32':>7} | {'int8':>7} | {'delta':>8} | worst language (delta) |")
    print(f"|{'-' * 14}|-------|{'-' * 9}|{'-' * 9}|{'-' * 10}|------------------------|")
    for r in rows:
        print(f"| {r['task']:<12} | {r['languages']:>5} | {r['fp32']:.4f} | {r['int8']:.4f} | {r['delta']:+.4f} | "
              f"{r['worst_language']} ({r['worst_delta']:+.4f}) |")
    print(f"| {'main score':<12} |       | {main_fp32:.4f} | {main_int8:.4f} | {main_int8 - main_fp32:+.4f} | |")
    return {"model": spec or "zero-shot", "fp32_metrics": str(Path(spec or ZERO_SHOT_FP32) / "metrics.json"),
            "cache_extra": extra, "export_seconds": round(export_s, 2), "evaluation_seconds": round(eval_s, 2),
            "encoding": result.metrics["encoding"], "tasks": rows,
            "main_score": {"fp32": main_fp32, "int8": main_int8, "delta": main_int8 - main_fp32,
                           "committed_fp32_main_score": reference["main_score"]},
            "per_language": per_language}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(models: dict, texts: list[str], repeats: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per ``encode_role`` call of each model: ``rounds`` rounds, each a block of calls per model after
    ``WARM_CALLS`` untimed ones. Blocks, not call-by-call alternation: torch's OpenMP threads and OpenVINO's TBB
    threads keep spinning for a while after a call, and on a 2-core machine the other backend's next call then
    waits for a core (measured: a title's torch p50 went from 20 ms to 330 ms when calls alternated)."""
    samples: dict[str, list[float]] = {label: [] for label in models}
    per_round = [repeats // rounds + (1 if r < repeats % rounds else 0) for r in range(rounds)]
    for n in per_round:
        for label, model in models.items():
            for _ in range(WARM_CALLS):
                encode_role(model, texts, "query", 32)
            samples[label].extend(timed(lambda: encode_role(model, texts, "query", 32)) for _ in range(n))
    return samples


def speed(name: str, spec: str | None, ds, args) -> dict:
    _, fp32 = load_merged(spec, ds)
    loaded, int8 = load_merged(spec, ds)
    cache = None if args.no_cache else str(default_cache_dir())
    int8, _ = serving_model(int8, "openvino", loaded.identity, loaded.cache_extra, cache,
                            calibration_texts(ds, search_languages(ds)))
    models = {"torch fp32": fp32, "openvino int8": int8}
    titles = [TITLE] * 32
    sentences = ABSTRACT.split(". ")
    abstracts = [". ".join(sentences[i % len(sentences):] + sentences[:i % len(sentences)]) for i in range(32)]
    inputs = {"title": [TITLE], "abstract": [ABSTRACT]}
    tokens = {k: len(fp32.tokenizer("query: " + v[0])["input_ids"]) for k, v in inputs.items()}
    out: dict = {"words": {"title": len(TITLE.split()), "abstract": len(ABSTRACT.split())}, "tokens": tokens,
                 "single": {}, "batch32": {}}
    for label, model in models.items():  # first calls allocate memory and compile kernels for new shapes
        for texts in (inputs["title"], inputs["abstract"], titles, abstracts):
            encode_role(model, texts, "query", 32)
    for kind, texts in inputs.items():
        samples = measure(models, texts, args.repeats, args.rounds)
        out["single"][kind] = {label: {"p50_ms": float(np.percentile(s, 50)) * 1000,
                                       "p95_ms": float(np.percentile(s, 95)) * 1000,
                                       "mean_ms": statistics.fmean(s) * 1000} for label, s in samples.items()}
    for kind, texts in (("title", titles), ("abstract", abstracts)):
        samples = measure(models, texts, args.batch_repeats, args.rounds)
        out["batch32"][kind] = {label: {"median_s": statistics.median(s), "texts_per_s": 32 / statistics.median(s)}
                                for label, s in samples.items()}
    print(f"\n## speed: {name}, encode only, {args.threads} threads, title {tokens['title']} tokens, "
          f"abstract {out['words']['abstract']} words / {tokens['abstract']} tokens")
    print("| input | measure | torch fp32 | openvino int8 | ratio fp32/int8 |")
    print("|---|---|---|---|---|")
    for kind, per in out["single"].items():
        for q in ("p50_ms", "p95_ms"):
            a, b = per["torch fp32"][q], per["openvino int8"][q]
            per.setdefault("ratio", {})[q] = a / b
            print(f"| 1 {kind} | {q[:3]} ms ({args.repeats} calls) | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
    for kind, per in out["batch32"].items():
        a, b = per["torch fp32"]["texts_per_s"], per["openvino int8"]["texts_per_s"]
        per["ratio_texts_per_s"] = b / a
        print(f"| 32 {kind}s | texts/s ({args.batch_repeats} batches) | {a:.1f} | {b:.1f} | {b / a:.2f}x |")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=None, help="prepared dataset (default: data/prepared/elsst-r5)")
    parser.add_argument("--models", default="zero-shot,run", help="zero-shot, run or both (comma-separated)")
    parser.add_argument("--run", default=DEFAULT_RUN, help="the trained run directory")
    parser.add_argument("--languages", default=None, help="comma-separated; default: all")
    parser.add_argument("--tasks", default=None, help="comma-separated; default: all")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--no-cache", action="store_true",
                        help="no embedding cache and no int8 export kept on disk (quantised afresh)")
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenVINO threads (default 2)")
    parser.add_argument("--repeats", type=int, default=100, help="single-text calls per input and backend")
    parser.add_argument("--batch-repeats", type=int, default=5, help="batches of 32 per input and backend")
    parser.add_argument("--rounds", type=int, default=2,
                        help="blocks per backend the timed calls are split into, alternating backends")
    parser.add_argument("--batch-size", type=int, default=128, help="evaluation encoding batch size")
    parser.add_argument("--out", default=None, help="write the results here as JSON")
    args = parser.parse_args(argv)
    args.languages = [x.strip() for x in args.languages.split(",") if x.strip()] if args.languages else None
    args.tasks = [x.strip() for x in args.tasks.split(",") if x.strip()] if args.tasks else None
    names = [x.strip() for x in args.models.split(",") if x.strip()]
    if not names or set(names) - {"zero-shot", "run"}:
        parser.error("--models takes zero-shot, run or both")

    import nncf
    import openvino
    import torch

    check_backend("openvino")
    torch.set_num_threads(args.threads)
    ds = open_prepared(args.dataset or paths.default_dataset_dir())
    report = {"machine": {"cpu_count": os.cpu_count(), "threads": args.threads, "platform": platform.platform(),
                          "processor": platform.processor(), "load_average_start": os.getloadavg()},
              "versions": {"torch": torch.__version__, "openvino": openvino.__version__, "nncf": nncf.__version__},
              "dataset": str(ds.path), "languages": args.languages or "all", "tasks": args.tasks or "all",
              "models": {}}
    print(f"machine: {os.cpu_count()} CPU cores, {args.threads} threads; torch {torch.__version__}, "
          f"openvino {openvino.__version__}, nncf {nncf.__version__}; load average {os.getloadavg()[0]:.2f}")
    for name in names:
        spec = None if name == "zero-shot" else args.run
        entry = report["models"][name] = {}
        if not args.skip_quality:
            entry["quality"] = quality(name, spec, ds, args)
        if not args.skip_speed:
            entry["speed"] = speed(name, spec, ds, args)
        if args.out:  # after each model, so that a long run keeps what it has
            report["machine"]["load_average_end"] = os.getloadavg()
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    report["machine"]["load_average_end"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
