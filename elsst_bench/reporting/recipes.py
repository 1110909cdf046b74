"""The training-recipe comparison (``results/recipes``): each recipe against its plain twin, on dev and on test."""

from __future__ import annotations

import json
from pathlib import Path

from .common import (ALPHA, CONFIG, PRIMARY_METRIC, ROOT, RUNS, TASKS, fisher, fmt, fmt_p, holm, is_complete,
    mean_std, metric, read_config, seed_averaged, table)


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
