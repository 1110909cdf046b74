"""elsst-bench evaluate vs sentence-transformers' InformationRetrievalEvaluator, side by side.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/evaluate.py [--dataset DIR] [--repeats 3] [--queries 50000]

In one process, with the default offline model (all-MiniLM-L6-v2) loaded once (its load is not timed):

1. **End to end, English, every task of the test split.**
   - ours: ``evaluate_model`` with no embedding cache (cold): encode the de-duplicated texts, FAISS flat
     index, top-100 rankings with own-concept removal and the tie rule, ranx metrics + WuP@1, TREC run files
     and metrics.json written;
   - ours, warm cache: the same call a second time with the on-disk cache (what ``elsst-bench evaluate``
     does the second time; the CLI then also skips the model load);
   - peer: ``InformationRetrievalEvaluator`` per task on the same test queries and corpus, same batch size,
     relevant = grade-3 concepts; for ``broader`` its score function masks the query's own concept (the
     evaluator has no such option), so both rank the same candidates.
   Runs alternate (ours, peer, ours, ...) to share the machine's noise; the table shows medians and the
   binary metrics of both, which must be identical.
2. **Metric computation alone** on N synthetic queries (real concept ids and thesaurus, 100 candidates
   each, 1–4 judged concepts): ``score_rankings`` (all nine metrics incl. graded nDCG and WuP@1) after
   ranx's warm-up, against pytrec_eval and the peer's ``compute_metrics`` on the same rankings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from elsst_bench import paths  # noqa: E402
from elsst_bench.evaluation import (BINARY_METRICS, EvaluationOptions, Rankings, evaluate_model,  # noqa: E402
                                    score_rankings, warm_up)
from elsst_bench.evaluation.rankings import RANK_BASE  # noqa: E402
from elsst_bench.tasks import open_prepared  # noqa: E402

TASKS = ("broader", "synonym", "definition")


def peer_evaluate(model, ds, batch_size: int) -> tuple[float, dict]:
    """sentence-transformers' evaluator on every English task; returns (seconds, {task: metrics})."""
    import torch
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.util import cos_sim

    start = time.perf_counter()
    out = {}
    for task in TASKS:
        data = ds.load(task, "en")
        qrels = data.qrels["test"]
        relevant = {q: {d for d, g in j.items() if g >= 3} for q, j in qrels.items()}
        evaluator = InformationRetrievalEvaluator(
            queries={q: data.queries[q] for q in qrels}, corpus=data.corpus, relevant_docs=relevant,
            mrr_at_k=[10], ndcg_at_k=[3, 10], accuracy_at_k=[1], precision_recall_at_k=[1, 3, 5, 10],
            map_at_k=[100], batch_size=batch_size, write_csv=False)
        score = cos_sim  # the model's own similarity (cosine for all-MiniLM-L6-v2)
        if ds.manifest["exclude_query_concept"].get(task):
            position = {c: i for i, c in enumerate(evaluator.corpus_ids)}
            rows = torch.arange(len(evaluator.queries_ids))
            cols = torch.tensor([position[data.query_concept[q]] for q in evaluator.queries_ids])

            def score(a, b, rows=rows, cols=cols):  # one corpus chunk (3,401 < corpus_chunk_size)
                scores = cos_sim(a, b)
                scores[rows, cols] = -torch.inf
                return scores

        evaluator.score_functions = {"cosine": score}
        m = evaluator.compute_all_metrics(model)["cosine"]
        out[task] = {"mrr@10": m["mrr@k"][10], **{f"recall@{k}": m["recall@k"][k] for k in (1, 3, 5, 10)},
                     "ndcg@3": m["ndcg@k"][3], "ndcg@10": m["ndcg@k"][10], "queries": len(evaluator.queries_ids)}
    return time.perf_counter() - start, out


def ours_evaluate(model, ds, batch_size: int, cache_dir=None) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = evaluate_model(model, ds, split="test", tasks=list(TASKS), languages=["en"],
                                identity={"name": "bench", "sha256": "0" * 64},
                                options=EvaluationOptions(cache_dir=cache_dir, batch_size=batch_size))
        result.write(out)
        return time.perf_counter() - start, result.metrics


def synthetic(ds, n: int, seed: int = 0):
    """N queries over the real English pool: 100 distinct candidates each, 1-4 judged concepts."""
    rng = np.random.default_rng(seed)
    pool = sorted(ds.load("broader", "en").corpus)
    size = len(pool)
    rows = (rng.integers(0, size, (n, 1)) + np.arange(100)[None, :] * 7) % size
    qids = [f"q{i:06d}" for i in range(n)]
    qrels = {}
    for i, qid in enumerate(qids):
        judged = {pool[rows[i, rng.integers(0, 30)]]: 3}
        for _ in range(rng.integers(0, 4)):
            judged.setdefault(pool[rng.integers(0, size)], int(rng.integers(1, 4)))
        qrels[qid] = judged
    scores = np.sort(rng.random((n, 100)).astype(np.float32), axis=1)[:, ::-1]
    return Rankings(qids, pool, rows.astype(np.int64), np.ascontiguousarray(scores)), qrels


def time_metrics(ds, n: int, repeats: int, warm: float) -> list[list]:
    import pytrec_eval
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    ranked, qrels = synthetic(ds, n)
    thesaurus = ds.thesaurus()
    warm_up()
    ours = min(_timed(lambda: score_rankings(ranked, qrels, thesaurus)) for _ in range(repeats))
    ranx_only = min(_timed(lambda: score_rankings(ranked, qrels)) for _ in range(repeats))

    binary = {q: {d: 1 for d, g in j.items() if g >= 3} for q, j in qrels.items()}

    def trec():
        run = ranked.run_dict(k=10)
        rr = pytrec_eval.RelevanceEvaluator(binary, {"recip_rank", "recall.1,3,5,10", "ndcg_cut.3,10"}).evaluate(run)
        graded = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
        return rr, graded

    trec_time = _timed(trec)
    evaluator = InformationRetrievalEvaluator(queries={q: q for q in ranked.qids}, corpus={d: d for d in ranked.doc_ids},
                                              relevant_docs={q: set(j) for q, j in binary.items()},
                                              mrr_at_k=[10], ndcg_at_k=[3, 10], accuracy_at_k=[1],
                                              precision_recall_at_k=[1, 3, 5, 10], map_at_k=[10])

    def peer():
        hits = [[{"corpus_id": ranked.doc_ids[r], "score": float(RANK_BASE - j)}
                 for j, r in enumerate(ranked.rows[i, :10].tolist())] for i in range(len(ranked))]
        return evaluator.compute_metrics(hits)

    peer_time = _timed(peer)
    return [
        ["ranx warm-up (numba kernels from disk cache, once per process)", warm, None],
        [f"ours: 9 metrics incl. graded nDCG + WuP@1, {n:,} q", ours, None],
        [f"ours: ranx metrics only (no WuP@1), {n:,} q", ranx_only, None],
        ["pytrec_eval: same binary + graded metrics (dict input)", trec_time, trec_time / ours],
        ["sentence-transformers compute_metrics (binary only)", peer_time, peer_time / ours],
    ]


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(paths.default_dataset_dir()))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--queries", type=int, default=50_000)
    args = parser.parse_args()

    import torch

    from elsst_bench.cli.common import print_table
    from elsst_bench.models import load_sentence_transformer

    ds = open_prepared(args.dataset)
    model = load_sentence_transformer(None, device="cpu")
    print(f"machine: {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}; batch size {args.batch_size}; repeats {args.repeats}")
    t = time.perf_counter()
    warm_up()
    warm = time.perf_counter() - t
    model.encode(["warm-up"] * 8)  # first-call allocations, for both sides

    ours_t, peer_t, warm_t = [], [], []
    for _ in range(args.repeats):
        t, ours = ours_evaluate(model, ds, args.batch_size)
        ours_t.append(t)
        t, peer = peer_evaluate(model, ds, args.batch_size)
        peer_t.append(t)
    with tempfile.TemporaryDirectory() as cache:
        ours_evaluate(model, ds, args.batch_size, cache_dir=cache)
        for _ in range(args.repeats):
            warm_t.append(ours_evaluate(model, ds, args.batch_size, cache_dir=cache)[0])
    ours_med, peer_med, warm_med = (statistics.median(x) for x in (ours_t, peer_t, warm_t))
    enc = ours["encoding"]

    print("\n1. End to end: English test split, broader + synonym + definition (model load excluded)")
    print_table(["", "seconds (median)", "min", "max", "vs peer"], [
        ["sentence-transformers InformationRetrievalEvaluator", peer_med, min(peer_t), max(peer_t), "1.00x"],
        [f"elsst-bench evaluate, no cache ({enc['texts']:,} texts encoded once)", ours_med, min(ours_t),
         max(ours_t), f"{ours_med / peer_med:.2f}x"],
        ["elsst-bench evaluate, embedding cache warm", warm_med, min(warm_t), max(warm_t),
         f"{warm_med / peer_med:.2f}x"],
    ])
    print("\n   binary metrics, ours | peer (must be identical)")
    rows, worst = [], 0.0
    for task in TASKS:
        a, b = ours["scores"][task]["en"], peer[task]
        diff = max(abs(a[m] - b[m]) for m in BINARY_METRICS)
        worst = max(worst, diff)
        rows.append([task, a["queries"], *[f"{a[m]:.4f} | {b[m]:.4f}" for m in BINARY_METRICS], f"{diff:.1e}"])
    print_table(["task", "queries", *BINARY_METRICS, "max |diff|"], rows)

    print(f"\n2. Metric computation alone, {args.queries:,} synthetic queries (best of {args.repeats})")
    table = time_metrics(ds, args.queries, args.repeats, warm)
    print_table(["", "seconds", "vs ours"], [[a, b, "" if c is None else f"{c:.1f}x"] for a, b, c in table])
    ok = ours_med <= peer_med and worst < 1e-6 and table[1][1] < 2.0
    print(f"\ngoals: end-to-end <= 1.0x peer: {ours_med / peer_med:.2f}x; identical binary metrics: "
          f"max diff {worst:.1e}; metrics for {args.queries:,} queries < 2 s: {table[1][1]:.2f} s -> "
          f"{'all met' if ok else 'NOT all met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
