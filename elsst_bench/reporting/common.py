"""What every section of the report shares: where the repository's runs are, reading them, per-query scores
from the leaderboard entries, ΔW spectra, and the table and number formats. The paired test and Holm's correction
are the package's own (:mod:`elsst_bench.evaluation.paired`), so ``compare`` and RESULTS.md agree.

The repository is the working directory, or ``$ELSST_BENCH_ROOT`` (``elsst-bench report`` runs from the checkout).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from ..evaluation.paired import ALPHA, PERMUTATIONS, fisher, fisher_batch, fisher_many, holm  # noqa: F401
from ..metric_names import PRIMARY_METRIC
from ..runs import CONFIG, METRICS_FILE, SPECTRA_LOG, is_adapter, is_complete, read_config, trains  # noqa: F401
from ..sweep import SUBMITTED  # noqa: F401 (the file a submitted run of a sweep keeps)

#: The repository the report reads (and writes RESULTS.md into): ``$ELSST_BENCH_ROOT`` or the working directory.
ROOT = Path(os.environ.get("ELSST_BENCH_ROOT") or Path.cwd()).resolve()
RUNS = ROOT / "results" / "runs"
BOARD = ROOT / "leaderboards"
PLOTS = ROOT / "results" / "plots"
CLAIMS = ROOT / "results" / "claims.md"
OUT = ROOT / "RESULTS.md"
EN_PLAN = ROOT / "results" / "sweep.toml"  # the English grid's plan: its rows, seeds, rank sweep and checks
TASKS = ("broader", "synonym", "definition")
LANG = "en"


# ----------------------------------------------------------------------------------------------------- reading
def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def published_plan(path: Path):
    """A published sweep plan, its run directories made absolute (the file's paths are relative to the repository
    root), so that :func:`elsst_bench.sweep.state` and ``tuned_lr`` work from any directory."""
    import dataclasses

    from elsst_bench.sweep import load_plan

    plan = load_plan(path)
    runs = tuple(dataclasses.replace(r, config=dataclasses.replace(r.config, out=str(ROOT / r.config.out)))
                 for r in plan.runs)
    return dataclasses.replace(plan, out=ROOT / plan.out, runs=runs)


def seed_of(run: Path) -> int:
    """The seed a run recorded (never read back from its id)."""
    return read_config(run)["seed"]


def _is_grid_run(run) -> bool:
    """A row of the English grid: submitted, at the method's default rate and options."""
    return run.submit and run.config.lr is None and run.lr_from is None and not run.config.options


def grid_plan(plan=None) -> dict[str, list]:
    """The English grid as its plan defines it: ``{method: [planned runs, seed order]}``, methods in the order the
    plan first trains them (the learning-rate check and EigenLoRAx's natural size are other sections)."""
    plan = plan if plan is not None else published_plan(EN_PLAN)
    out: dict[str, list] = {}
    for run in plan.runs:
        if _is_grid_run(run):
            out.setdefault(run.config.adapter, []).append(run)
    return {method: sorted(planned, key=lambda r: r.config.seed) for method, planned in out.items()}


def grid_runs(plan=None) -> dict[str, list[Path]]:
    """``{method: [complete run directories, seed order]}`` of the English grid (``none`` has one run: a seed
    changes nothing)."""
    return {method: [r.run_dir for r in planned if is_complete(r.run_dir)]
            for method, planned in grid_plan(plan).items()}


def side_runs(plan=None) -> tuple[list, list]:
    """The English plan's other sections: (the rank sweep: runs not submitted that train on the grid's own tasks;
    the learning-rate check: submitted runs at another rate or with options), in plan order."""
    plan = plan if plan is not None else published_plan(EN_PLAN)
    ranks = [r for r in plan.runs if not r.submit and r.config.tasks is None and r.config.lr is None]
    checks = [r for r in plan.runs if r.submit and not _is_grid_run(r)]
    return ranks, checks


def metric(run: Path, task: str, name: str) -> float:
    return read_json(run / "metrics.json")["scores"][task][LANG][name]


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


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


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
