"""Write RESULTS.md and results/plots/*.png from the published grid: the runs in results/runs (config.json,
metrics.json, spectra.jsonl, adapters) and their re-scored entries in leaderboards/.

    .venv/bin/python results/report.py          # after `elsst-bench sweep results/sweep.toml`

Statistics:
- mean ± sample standard deviation (ddof = 1) over the seeds of a method;
- paired Fisher randomization test of a method against LoRA on per-query graded nDCG@10, each query's score
  averaged over the seeds first: p = (1 + #{|mean(s·d)| ≥ |mean(d)|}) / (1 + N) over N = 10,000 random sign
  vectors s (two-sided; Smucker et al. 2007). numpy with a fixed seed, so p does not depend on the thread count
  (ranx's numba version is parallel and its stream does); the tests check it against ranx's;
- Holm's step-down correction over the methods compared with LoRA, per task (family-wise α = 0.05);
- effective rank of ΔW = exp(H(σ/Σσ)) (Roy & Vetterli 2007), per adapted layer, averaged over the 36 layers.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout: the package next to this file
    sys.path.insert(0, str(ROOT))

from elsst_bench.runs import CONFIG, SPECTRA_LOG, is_adapter, is_complete, read_config, trains  # noqa: E402 (torch-free)
from elsst_bench.metric_names import PRIMARY_METRIC  # noqa: E402

RUNS = ROOT / "results" / "runs"
BOARD = ROOT / "leaderboards"
PLOTS = ROOT / "results" / "plots"
CLAIMS = ROOT / "results" / "claims.md"
OUT = ROOT / "RESULTS.md"

METHODS = ("none", "full", "lora", "orthogeolora", "dora", "pissa", "vera", "hra", "gelora", "smoa", "eigenlorax",
           "pica")
SEEDS = (0, 1, 2)
TASKS = ("broader", "synonym", "definition")
LANG = "en"
RANKS = (2, 4, 8, 16)
PERMUTATIONS = 10_000
ALPHA = 0.05


# ----------------------------------------------------------------------------------------------------- reading
def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def grid_runs(root: Path = RUNS) -> dict[str, list[Path]]:
    """``{method: [complete run directories of the seeds]}`` (``none`` has one run: a seed changes nothing)."""
    out = {}
    for method in METHODS:
        seeds = SEEDS if trains(method) else (0,)
        out[method] = [root / f"{method}-s{s}" for s in seeds if is_complete(root / f"{method}-s{s}")]
    return out


def metric(run: Path, task: str, name: str) -> float:
    return read_json(run / "metrics.json")["scores"][task][LANG][name]


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


# ------------------------------------------------------------------------------------------------- statistics
def fisher(control: np.ndarray, treatment: np.ndarray, n: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided paired randomization test on the mean difference (see the module docstring)."""
    d = np.asarray(treatment, dtype=np.float64) - np.asarray(control, dtype=np.float64)
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n, 1000):
        signs = rng.choice((-1.0, 1.0), size=(min(1000, n - start), len(d)))
        hits += int((np.abs(signs @ d) / len(d) >= observed - 1e-12).sum())
    return (1 + hits) / (1 + n)


def holm(pvalues: dict[str, float], alpha: float = ALPHA) -> dict[str, bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise level ``alpha``."""
    order = sorted(pvalues, key=pvalues.get)
    rejected, m = {}, len(order)
    still = True
    for i, key in enumerate(order):
        still = still and pvalues[key] <= alpha / (m - i)
        rejected[key] = still
    return rejected


@functools.cache
def per_query_scores(run: Path) -> dict[str, dict[str, float]]:
    """``{task: {qid: graded nDCG@10}}`` re-scored from the run's leaderboard entry (its stored top 10).
    Cached: the tables ask for each run once per task, and decoding an entry is the slow part of the report."""
    from elsst_bench.evaluation.metrics import score_rankings
    from elsst_bench.evaluation.rankings import Rankings
    from elsst_bench.leaderboard import benchmark_dataset, read_benchmark
    from elsst_bench.leaderboard.entry import decode

    submitted = read_json(run / "submitted.json")
    entry = read_json(BOARD / submitted["entry"])
    bench = read_benchmark(BOARD)
    rows, refs, _ = decode(entry, bench, benchmark_dataset(bench), submitted["entry"])
    out = {}
    for (task, lang), top in rows.items():
        ref = refs[(task, lang)]
        ranked = Rankings(list(ref.qids), list(ref.pool), top, np.zeros(top.shape, dtype=np.float32))
        out[task] = score_rankings(ranked, ref.qrels, per_query=True)["per_query"][PRIMARY_METRIC]
    return out


def seed_averaged(runs: list[Path], task: str) -> tuple[list[str], np.ndarray]:
    scores = [per_query_scores(r)[task] for r in runs]
    qids = sorted(scores[0])
    return qids, np.mean([[s[q] for q in qids] for s in scores], axis=0)


# ---------------------------------------------------------------------------------------------- effective rank
def spectra_log(run: Path) -> list[dict]:
    path = run / SPECTRA_LOG
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def final_spectra(run: Path) -> dict[str, dict]:
    """Singular values and effective rank of the saved adapter's ΔW per layer (the kept, best-dev epoch).

    Computed once from the adapter and kept in the run as ``delta_spectrum.json``, so the numbers stay in the
    repository for runs whose adapter file is too large to commit (PiCa's projections, EigenLoRAx's bases)."""
    from elsst_bench import atomic
    from elsst_bench.diagnostics import run_spectra

    path = run / "delta_spectrum.json"
    if path.exists():
        return read_json(path)
    spectra = {name: {"effective_rank": v["effective_rank"],  # exact; σ to 6 digits keeps the file small
                      "singular_values": [float(f"{x:.6g}") for x in v["singular_values"]]}
               for name, v in run_spectra(run).items()}
    atomic.write_json(path, spectra)
    return spectra


def mean_effective_rank(spectra: dict[str, dict]) -> float:
    return float(np.mean([v["effective_rank"] for v in spectra.values()]))


def energy_rank(spectra: dict[str, dict], share: float = 0.9) -> float:
    """Mean over layers of the number of singular values holding ``share`` of Σσ² (a second view of collapse)."""
    counts = []
    for v in spectra.values():
        s2 = np.square(np.asarray(v["singular_values"], dtype=np.float64))
        counts.append(int(np.searchsorted(np.cumsum(s2) / s2.sum(), share) + 1) if s2.sum() > 0 else 0)
    return float(np.mean(counts))


# ------------------------------------------------------------------------------------------------------ output
def fmt(mean: float | None, std: float | None, digits: int = 4) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def fmt_p(p: float) -> str:
    return f"{p:.4f}" if p >= 1e-3 else f"{p:.1e}"


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines)


def main_table(grid: dict[str, list[Path]]) -> tuple[str, dict]:
    rows, numbers = [], {}
    for method, runs in grid.items():
        if not runs:
            rows.append([f"`{method}`", "–", *["not run"] + ["–"] * 8])
            continue
        cfg = [read_config(r) for r in runs]
        cells = {f"{t}": mean_std([metric(r, t, PRIMARY_METRIC) for r in runs]) for t in TASKS}
        macro = mean_std([float(np.mean([metric(r, t, PRIMARY_METRIC) for t in TASKS])) for r in runs])
        mrr = mean_std([metric(r, "broader", "mrr@10") for r in runs])
        wup = mean_std([metric(r, "broader", "wup@1") for r in runs])
        seconds = float(np.median([c.get("train_seconds") or 0.0 for c in cfg]))
        memory = float(np.median([c.get("peak_memory_mb") or 0.0 for c in cfg]))
        numbers[method] = {"tasks": cells, "macro": macro, "params": cfg[0]["trainable_params"], "seeds": len(runs)}
        rows.append([f"`{method}`", f"{cfg[0]['trainable_params']:,}", *[fmt(*cells[t]) for t in TASKS], fmt(*macro),
                     fmt(*mrr), fmt(*wup), f"{seconds:.0f}", f"{memory:.0f}", str(len(runs))])
    header = ["method", "trainable params", "broader nDCG@10", "synonym nDCG@10", "definition nDCG@10",
              "macro nDCG@10", "broader MRR@10", "broader WuP@1", "train s", "peak MB", "seeds"]
    return table(rows, header), numbers


def significance_table(grid: dict[str, list[Path]]) -> tuple[str, dict]:
    if not grid.get("lora"):
        return "LoRA has no complete runs yet; no tests.", {}
    tests: dict[str, dict[str, tuple[float, float]]] = {t: {} for t in TASKS}
    paired: dict[str, str] = {}
    lora = {r.name.rsplit("-s", 1)[1]: r for r in grid["lora"]}
    for method, runs in grid.items():
        if method == "lora" or not runs:
            continue
        # Pair on the seeds both have (the zero-shot model has one run: it is compared with every LoRA seed).
        mine = {r.name.rsplit("-s", 1)[1]: r for r in runs}
        seeds = sorted(set(mine) & set(lora)) if trains(method) else sorted(lora)
        if not seeds:
            continue
        paired[method] = ",".join(seeds)
        for task in TASKS:
            qids, control = seed_averaged([lora[s] for s in seeds], task)
            q2, treatment = seed_averaged([mine[s] for s in seeds] if trains(method) else runs, task)
            assert q2 == qids, f"{method} {task}: other queries than LoRA's"
            tests[task][method] = (float(treatment.mean() - control.mean()), fisher(control, treatment))
    rejected = {t: holm({m: p for m, (_, p) in tests[t].items()}) for t in TASKS}
    rows = []
    for method in grid:
        if method not in paired:
            continue
        cells = []
        for task in TASKS:
            delta, p = tests[task][method]
            mark = " **✓**" if rejected[task][method] else ""
            cells.append(f"{delta:+.4f} (p={fmt_p(p)}){mark}")
        rows.append([f"`{method}`", paired[method], *cells])
    header = ["method vs LoRA", "seeds paired", *[f"{t} Δ nDCG@10 (p)" for t in TASKS]]
    return table(rows, header), {"tests": tests, "rejected": rejected}


def rank_sweep(root: Path = RUNS) -> tuple[str, dict]:
    rows, numbers = [], {}
    for method in ("lora", "orthogeolora"):
        for r in RANKS:
            run = root / (f"{method}-s0" if r == 8 else f"{method}-r{r}-s0")
            if not is_complete(run):
                rows.append([f"`{method}`", str(r), "not run", "–", "–", "–", "–"])
                continue
            cfg = read_config(run)
            spectra = final_spectra(run)
            numbers[(method, r)] = {"broader": metric(run, "broader", PRIMARY_METRIC),
                                    "eff": mean_effective_rank(spectra), "energy": energy_rank(spectra)}
            rows.append([f"`{method}`", str(r), f"{cfg['trainable_params']:,}",
                         f"{metric(run, 'broader', PRIMARY_METRIC):.4f}",
                         f"{float(np.mean([metric(run, t, PRIMARY_METRIC) for t in TASKS])):.4f}",
                         f"{numbers[(method, r)]['eff']:.2f}", f"{numbers[(method, r)]['energy']:.2f}"])
    header = ["method", "rank r", "trainable params", "broader nDCG@10", "macro nDCG@10",
              "mean effective rank of ΔW", "σ² 90 % rank"]
    return table(rows, header), numbers


def seed0_ranks(grid: dict[str, list[Path]]) -> tuple[str, dict]:
    rows, numbers = [], {}
    for method, runs in grid.items():
        run = next((r for r in runs if r.name.endswith("-s0")), None)
        if not is_adapter(method) or run is None:
            continue
        spectra = final_spectra(run)
        numbers[method] = (mean_effective_rank(spectra), energy_rank(spectra))
        rows.append([f"`{method}`", f"{numbers[method][0]:.2f}", f"{numbers[method][1]:.2f}",
                     str(len(spectra))])
    return table(rows, ["method (seed 0)", "mean effective rank of ΔW", "σ² 90 % rank", "layers"]), numbers


def tuning_points(grid: dict[str, list[Path]], root: Path = RUNS) -> dict[str, list[Path]]:
    """``{method: [seed-0 runs]}`` of the learning-rate check: the grid's seed-0 run (the default rate) and the
    complete runs under ``tuning/`` of the same method, in :data:`METHODS` order."""
    found: dict[str, list[tuple[Path, dict]]] = {}
    for path in sorted((root / "tuning").glob(f"*/{CONFIG}")):
        if is_complete(path.parent):
            cfg = read_config(path.parent)
            found.setdefault(cfg["adapter"], []).append((path.parent, cfg))
    out = {}
    for method in (m for m in METHODS if m in found):
        default = [r for r in grid.get(method, []) if r.name.endswith("-s0")]
        points = sorted(found[method], key=lambda rc: (str(rc[1]["options"]["options"]), rc[1]["options"]["lr"]))
        out[method] = default + [run for run, _ in points]
    return out


def run_label(run: Path) -> str:
    return f"tuning/{run.name}" if run.parent.name == "tuning" else run.name


def tuning_table(grid: dict[str, list[Path]], root: Path = RUNS) -> tuple[str, dict[str, Path]]:
    """Every seed-0 point of the check; ★ per method the one with the best dev score (macro graded nDCG@10 of
    the dev split, the score that picked the epoch): the point a dev-tuned comparison uses."""
    rows, picked = [], {}
    for method, runs in tuning_points(grid, root).items():
        cfgs = {run: read_config(run) for run in runs}
        picked[method] = max(runs, key=lambda r: cfgs[r]["best_dev_score"])
        for run, cfg in cfgs.items():
            setting = cfg["options"]["budget"] or f"r={cfg['options']['rank']}"
            setting += "".join(f", {k}={v}" for k, v in sorted(cfg["options"]["options"].items()))
            rows.append([f"`{method}`" + (" ★" if run == picked[method] else ""), f"`{run_label(run)}`", setting,
                         f"{cfg['options']['lr']:g}", f"{cfg['trainable_params']:,}",
                         f"{cfg['best_dev_score']:.4f}", f"{metric(run, 'broader', PRIMARY_METRIC):.4f}",
                         f"{float(np.mean([metric(run, t, PRIMARY_METRIC) for t in TASKS])):.4f}"])
    header = ["method", "run", "setting", "lr", "trainable params", "dev score", "test broader nDCG@10",
              "test macro nDCG@10"]
    return table(rows, header), picked


def tuned_comparison(picked: dict[str, Path]) -> str:
    """The dev-picked OrthoGeoLoRA against the dev-picked LoRA on each test task, one seed, Fisher test."""
    if not {"lora", "orthogeolora"} <= set(picked):
        return ""
    cells = []
    for task in TASKS:
        qids, c = seed_averaged([picked["lora"]], task)
        q2, t = seed_averaged([picked["orthogeolora"]], task)
        assert q2 == qids, f"{task}: the two picks have different queries"
        cells.append(f"`{task}` {t.mean() - c.mean():+.4f} (p={fmt_p(fisher(c, t))})")
    lrs = {m: read_config(picked[m])["options"]["lr"] for m in ("lora", "orthogeolora")}
    return (f"Dev-picked OrthoGeoLoRA (lr {lrs['orthogeolora']:g}) minus dev-picked LoRA (lr {lrs['lora']:g}), "
            "seed 0, paired Fisher test on the test queries (uncorrected, one seed): " + "; ".join(cells) + ".")


def _save(plt, fig, axes, name: str) -> str:
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(PLOTS / name, dpi=110, metadata={"Software": None})  # no version stamp: reruns give the same file
    plt.close(fig)
    return f"results/plots/{name}"


def plots(grid: dict[str, list[Path]], sweep: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    written = []
    colors = {"lora": "#1f77b4", "orthogeolora": "#d62728"}
    logs = {m: spectra_log(RUNS / f"{m}-s0") for m in colors}
    if all(logs.values()):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for m, rows in logs.items():
            steps = [r["step"] for r in rows]
            axes[0].plot(steps, [r["mean_effective_rank"] for r in rows], label=m, color=colors[m])
            layer = np.array([[v["effective_rank"] for v in r["layers"].values()] for r in rows])
            axes[0].fill_between(steps, layer.min(axis=1), layer.max(axis=1), color=colors[m], alpha=0.15)
            last = rows[-1]["layers"]
            sv = np.array([np.asarray(v["singular_values"][:8]) / max(v["singular_values"][0], 1e-30)
                           for v in last.values()])
            axes[1].plot(range(1, 9), sv.mean(axis=0), marker="o", label=m, color=colors[m])
        axes[0].set(xlabel="training step", ylabel="effective rank of ΔW (mean; band: min–max over layers)",
                    title="ΔW effective rank during training (r = 8, seed 0)")
        axes[1].set(xlabel="i", ylabel="σ_i / σ_1 (mean over layers)", title="ΔW spectrum at the last step")
        written.append(_save(plt, fig, axes, "effective_rank.png"))
    if sweep:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for m in colors:
            rs = [r for r in RANKS if (m, r) in sweep]
            axes[0].plot(rs, [sweep[(m, r)]["broader"] for r in rs], marker="o", label=m, color=colors[m])
            axes[1].plot(rs, [sweep[(m, r)]["eff"] for r in rs], marker="o", label=m, color=colors[m])
        axes[1].plot(RANKS, RANKS, ls=":", color="grey", label="r (no collapse)")
        axes[0].set(xscale="log", xticks=RANKS, xticklabels=RANKS, xlabel="rank r", ylabel="broader nDCG@10 (test)",
                    title="Rank sweep (seed 0)")
        axes[1].set(xscale="log", xticks=RANKS, xticklabels=RANKS, xlabel="rank r",
                    ylabel="mean effective rank of ΔW", title="Effective rank of the kept adapter")
        written.append(_save(plt, fig, axes, "rank_sweep.png"))
    return written


def grid_time(grid: dict[str, list[Path]]) -> dict[str, tuple[float, float, int]]:
    """(train seconds, wall seconds incl. evaluation, runs) for the published grid and for every complete run."""
    def total(configs: list[dict]) -> tuple[float, float, int]:
        done = [c for c in configs if c.get("status") == "complete"]
        return (sum(c.get("train_seconds") or 0.0 for c in done), sum(c.get("wall_seconds") or 0.0 for c in done),
                len(done))

    return {"grid": total([read_config(r) for runs in grid.values() for r in runs]),
            "all": total([read_config(c.parent) for c in sorted(RUNS.rglob(CONFIG))])}


def missing_line(grid: dict[str, list[Path]]) -> list[str]:
    """A line naming the planned seeds that have no complete run yet (empty when the grid is complete)."""
    missing = [f"`{m}` ({3 - len(runs)} of 3)" for m, runs in grid.items() if trains(m) and len(runs) < 3]
    if not missing:
        return []
    return [f"**Not yet run** (the sweep resumes them): seeds of {', '.join(missing)}.", ""]


def render() -> str:
    grid = grid_runs()
    main, _ = main_table(grid)
    sig, _ = significance_table(grid)
    sweep_table, sweep = rank_sweep()
    ranks_table, _ = seed0_ranks(grid)
    tuning, picked = tuning_table(grid)
    written = plots(grid, sweep)
    times = grid_time(grid)
    versions = read_config(RUNS / "lora-s0")["versions"] if is_complete(RUNS / "lora-s0") else {}
    claims = CLAIMS.read_text(encoding="utf-8").strip() if CLAIMS.exists() else "(claims not written yet)"
    lines = [
        "# Results: every adapter at LoRA r=8's budget on ELSST-Bench v1 (English)",
        "",
        "Generated by `python results/report.py` from the runs in `results/runs/` (made by "
        "`elsst-bench sweep results/sweep.toml`) and their re-scored entries in `leaderboards/`; do not edit by "
        "hand. Every number below comes from a run in this repository.",
        "",
        "**Setup.** Base model all-MiniLM-L6-v2 (the offline default); training on the English train split of "
        "`broader` + `synonym` (4,232 pairs), MultipleNegativesRankingLoss, 3 epochs, batch 64, each method's "
        "default learning rate (README; not tuned per method, the learning-rate check below tries other rates for "
        "three methods), best dev epoch kept; test split, English: "
        "`broader` 651 queries, `synonym` 542, `definition` 168 (never trained on). Adapters at the parameter "
        "count of LoRA r=8 on the 36 linear layers (`--budget lora-r8`); seeds 0, 1, 2. "
        f"Software: {', '.join(f'{k} {v}' for k, v in versions.items())}. CPU: 2 cores.",
        "",
        "**Compute** (2 CPU cores, one run at a time): the published grid, "
        f"{times['grid'][2]} runs, took {times['grid'][0] / 60:.1f} min of training and {times['grid'][1] / 60:.1f} "
        "min wall time including evaluation; all "
        f"{times['all'][2]} complete runs in `results/runs/` (grid, EigenLoRAx sources, rank "
        f"sweep, learning-rate check): {times['all'][0] / 60:.1f} min of training, {times['all'][1] / 60:.1f} min wall.",
        "",
        *missing_line(grid),
        "## The table",
        "",
        "Graded nDCG@10 (the primary metric), mean ± standard deviation over seeds; MRR@10 and WuP@1 on `broader`; "
        "train time and peak memory (the training process's peak RSS) are medians over seeds, so that one run slowed "
        "by other jobs on the machine does not move them.",
        "",
        main,
        "",
        "## Each method against LoRA",
        "",
        f"Paired Fisher randomization test ({PERMUTATIONS:,} sign permutations, two-sided) on per-query graded "
        "nDCG@10, each query averaged over the seeds both methods have (`seeds paired`); Δ is the method's mean "
        "minus LoRA's. **✓**: significant after Holm's correction over the comparisons of the task "
        f"(family-wise α = {ALPHA}).",
        "",
        sig,
        "",
        "## Rank collapse: the effective rank of ΔW, LoRA against OrthoGeoLoRA",
        "",
        "Effective rank exp(H(σ/Σσ)) of each adapted layer's ΔW (1: one direction carries everything; r: r "
        "equal directions), and the σ² 90 % rank (how many singular values hold 90 % of ‖ΔW‖²_F). The "
        "trajectory is `spectra.jsonl` of the seed-0 runs (every 10 steps); the table is the kept adapter.",
        "",
        *(f"![{w}]({w})" for w in written[:1]),
        "",
        ranks_table,
        "",
        "## Rank sweep (seed 0)",
        "",
        sweep_table,
        "",
        *(f"![{w}]({w})" for w in written[1:]),
        "",
        "## Learning-rate check (seed 0)",
        "",
        "The grid trains every method at its default rate. These seed-0 runs (`results/runs/tuning/`, the last "
        "blocks of `results/sweep.toml`) try other rates for the two methods the benchmark is about and for "
        "EigenLoRAx, whose budget-matched run falls below the zero-shot model; EigenLoRAx is also run at its "
        "natural size (the K=8 principal components, no Gram-Schmidt extension). ★ marks the point with the best "
        "dev score, the choice a dev-tuned comparison makes; the test columns are reported, not used to choose.",
        "",
        tuning,
        "",
        tuned_comparison(picked),
        "",
        "## What this supports, and what it does not",
        "",
        claims,
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    text = render()
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
