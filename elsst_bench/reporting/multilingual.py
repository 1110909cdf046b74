"""The multilingual grid's section (``results/multilingual``): multilingual-e5-small in 15 languages, its rows
built from the sweep plan; tests against LoRA (pooled queries, and over seeds) and against zero-shot, the prompt
convention, the recipe rows and the heatmap; and :func:`ml_section`, which assembles them with the tables of
:mod:`.ml_grid`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..tasks import TASKS as ML_TASKS  # every task; the multilingual grid scores them all
from .common import (ALPHA, PERMUTATIONS, PLOTS, PRIMARY_METRIC, fisher_batch, fmt, fmt_p, holm, mean_std,
    per_query_by_language, read_config, read_json, seed_permutation, table, trains)
from .ml_grid import (CLAIMS_ML, HEATMAP, Method, language_main, ml_conventions, ml_grid, ml_language_tables,
    ml_languages, ml_macro_table, ml_missing, ml_plan, ml_scores, ml_setup, ml_tuning_table, pooled)
from .recipes import recipe_of, twin_key


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
        if recipe_of(config[g.key]) == "plain":  # two plain rows may share their options (HRA: dev picked its default)
            continue
        twin = plain.get(twin_key(config[g.key]))
        if twin is None:
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


def ml_heatmap(grid: list[Method], langs: dict[str, list[str]], out: Path = PLOTS) -> str | None:
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
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / HEATMAP, dpi=110, metadata={"Software": None})  # no version stamp: reruns give the same file
    plt.close(fig)
    return f"results/plots/{HEATMAP}"


def ml_section(plots_dir: Path = PLOTS) -> list[str]:
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
    heatmap = ml_heatmap(grid, langs, plots_dir)
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
