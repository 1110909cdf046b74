"""The English grid's sections: every adapter at LoRA r=8's budget on all-MiniLM-L6-v2 (``results/runs``): the
main table, the tests against LoRA, the effective rank of ΔW, the rank sweep, the learning-rate check, the plots.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import (CONFIG, PLOTS, PRIMARY_METRIC, RUNS, TASKS, energy_rank, final_spectra, fisher, fmt, fmt_p,
    grid_plan, holm, is_adapter, is_complete, mean_effective_rank, mean_std, metric, read_config, seed_averaged,
    seed_of, side_runs, spectra_log, table, trains)


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
    lora = {seed_of(r): r for r in grid["lora"]}
    for method, runs in grid.items():
        if method == "lora" or not runs:
            continue
        # Pair on the seeds both have (the zero-shot model has one run: it is compared with every LoRA seed).
        mine = {seed_of(r): r for r in runs}
        seeds = sorted(set(mine) & set(lora)) if trains(method) else sorted(lora)
        if not seeds:
            continue
        paired[method] = ",".join(map(str, seeds))
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


def seed0(runs: list[Path]) -> Path | None:
    return next((r for r in runs if seed_of(r) == 0), None)


def rank_points(grid: dict[str, list[Path]], plan=None) -> dict[tuple[str, int], Path | None]:
    """``{(method, rank): run}`` of the rank sweep: the plan's sweep runs and, at the grid's own rank, the grid's
    seed-0 run; ``None`` where the run is not complete yet."""
    sweep, _ = side_runs(plan)
    points: dict[tuple[str, int], Path | None] = {}
    for run in sweep:
        points[(run.config.adapter, run.config.rank)] = run.run_dir if is_complete(run.run_dir) else None
    for method in {m for m, _ in points}:
        run = seed0(grid.get(method, []))
        if run is not None:
            points[(method, read_config(run)["options"]["rank"])] = run
    methods = list(dict.fromkeys(m for m, _ in points))
    return {key: points[key] for key in sorted(points, key=lambda k: (methods.index(k[0]), k[1]))}


def rank_sweep(grid: dict[str, list[Path]], plan=None) -> tuple[str, dict]:
    rows, numbers = [], {}
    for (method, r), run in rank_points(grid, plan).items():
        if run is None:
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
        run = seed0(runs)
        if not is_adapter(method) or run is None:
            continue
        spectra = final_spectra(run)
        numbers[method] = (mean_effective_rank(spectra), energy_rank(spectra))
        rows.append([f"`{method}`", f"{numbers[method][0]:.2f}", f"{numbers[method][1]:.2f}",
                     str(len(spectra))])
    return table(rows, ["method (seed 0)", "mean effective rank of ΔW", "σ² 90 % rank", "layers"]), numbers


def tuning_points(grid: dict[str, list[Path]], plan=None) -> dict[str, list[Path]]:
    """``{method: [seed-0 runs]}`` of the learning-rate check: the grid's seed-0 run (the default rate) and the
    plan's complete check runs of the same method, methods in the grid's order."""
    _, checks = side_runs(plan)
    found: dict[str, list[tuple[Path, dict]]] = {}
    for run in checks:
        if is_complete(run.run_dir):
            found.setdefault(run.config.adapter, []).append((run.run_dir, read_config(run.run_dir)))
    out = {}
    for method in (m for m in grid if m in found):
        default = [r for r in [seed0(grid[method])] if r is not None]
        points = sorted(found[method], key=lambda rc: (str(rc[1]["options"]["options"]), rc[1]["options"]["lr"]))
        out[method] = default + [run for run, _ in points]
    return out


def run_label(run: Path) -> str:
    return f"tuning/{run.name}" if run.parent.name == "tuning" else run.name


def tuning_table(grid: dict[str, list[Path]], plan=None) -> tuple[str, dict[str, Path]]:
    """Every seed-0 point of the check; ★ per method the one with the best dev score (macro graded nDCG@10 of
    the dev split, the score that picked the epoch): the point a dev-tuned comparison uses."""
    rows, picked = [], {}
    for method, runs in tuning_points(grid, plan).items():
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


def _save(plt, fig, axes, name: str, out: Path) -> str:
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / name, dpi=110, metadata={"Software": None})  # no version stamp: reruns give the same file
    plt.close(fig)
    return f"results/plots/{name}"


def plots(grid: dict[str, list[Path]], sweep: dict, out: Path = PLOTS) -> list[str]:
    """The English grid's plots, written into ``out`` (the tests render into a temporary folder)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    from elsst_bench.adapters import method_info

    colors = {m: method_info(m).color for m in ("lora", "orthogeolora")}  # the board's colours (the registry's)
    logs = {m: spectra_log(seed0(grid.get(m, [])) or RUNS / "missing") for m in colors}
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
        written.append(_save(plt, fig, axes, "effective_rank.png", out))
    if sweep:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ranks = sorted({r for _, r in sweep})
        for m in colors:
            rs = [r for r in ranks if (m, r) in sweep]
            axes[0].plot(rs, [sweep[(m, r)]["broader"] for r in rs], marker="o", label=m, color=colors[m])
            axes[1].plot(rs, [sweep[(m, r)]["eff"] for r in rs], marker="o", label=m, color=colors[m])
        axes[1].plot(ranks, ranks, ls=":", color="grey", label="r (no collapse)")
        axes[0].set(xscale="log", xticks=ranks, xticklabels=ranks, xlabel="rank r", ylabel="broader nDCG@10 (test)",
                    title="Rank sweep (seed 0)")
        axes[1].set(xscale="log", xticks=ranks, xticklabels=ranks, xlabel="rank r",
                    ylabel="mean effective rank of ΔW", title="Effective rank of the kept adapter")
        written.append(_save(plt, fig, axes, "rank_sweep.png", out))
    return written


def grid_time(grid: dict[str, list[Path]]) -> dict[str, tuple[float, float, int]]:
    """(train seconds, wall seconds incl. evaluation, runs) for the published grid and for every complete run."""
    def total(configs: list[dict]) -> tuple[float, float, int]:
        done = [c for c in configs if c.get("status") == "complete"]
        return (sum(c.get("train_seconds") or 0.0 for c in done), sum(c.get("wall_seconds") or 0.0 for c in done),
                len(done))

    return {"grid": total([read_config(r) for runs in grid.values() for r in runs]),
            "all": total([read_config(c.parent) for c in sorted(RUNS.rglob(CONFIG))])}


def missing_line(grid: dict[str, list[Path]], plan=None) -> list[str]:
    """A line naming the planned seeds that have no complete run yet (empty when the grid is complete)."""
    planned = {m: len(runs) for m, runs in grid_plan(plan).items()}
    missing = [f"`{m}` ({planned[m] - len(runs)} of {planned[m]})" for m, runs in grid.items()
               if len(runs) < planned[m]]
    if not missing:
        return []
    return [f"**Not yet run** (the sweep resumes them): seeds of {', '.join(missing)}.", ""]
