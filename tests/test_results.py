"""The published grid: RESULTS.md's numbers against an independent reading of the committed runs, the board's
re-scored entries against what the runs measured, the sweep complete, and the report's statistics."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from elsst_bench.metric_names import PRIMARY_METRIC

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "results" / "runs"
RESULTS = ROOT / "RESULTS.md"


def _report():
    spec = importlib.util.spec_from_file_location("results_report", ROOT / "results" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _report()


def test_fisher_randomization_agrees_with_ranx():
    from ranx.statistical_tests import fisher_randomization_test

    rng = np.random.default_rng(1)
    control = rng.uniform(size=400)
    for effect, seed in ((0.0, 2), (0.02, 3), (0.05, 4)):
        treatment = np.clip(control + effect + rng.normal(scale=0.2, size=400), 0, 1)
        ours = report.fisher(control, treatment, n=20_000, seed=seed)
        theirs, _ = fisher_randomization_test(control, treatment, n_permutations=20_000, max_p=0.05, random_seed=seed)
        assert abs(ours - theirs) < 0.015, (effect, ours, theirs)
    assert report.fisher(control, control.copy()) == 1.0  # no difference: every permutation is as extreme


def test_holm_step_down():
    assert report.holm({"a": 0.01, "b": 0.04, "c": 0.03}) == {"a": True, "c": False, "b": False}
    assert report.holm({"a": 0.01, "b": 0.02}) == {"a": True, "b": True}  # 0.01 <= .025, 0.02 <= .05
    assert report.holm({"a": 0.2, "b": 0.001}) == {"b": True, "a": False}


grid_done = pytest.mark.skipif(not (RUNS / "lora-s0" / "config.json").exists(), reason="no published grid yet")


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["scores"]


@grid_done
def test_results_table_equals_the_committed_runs():
    """Each cell of RESULTS.md's table, recomputed here with the statistics module from metrics.json."""
    rows = {}
    for line in RESULTS.read_text(encoding="utf-8").split("## The table", 1)[1].split("\n## ", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    assert set(rows) == set(report.METHODS)
    checked = 0
    for method, cells in rows.items():
        seeds = (0,) if method == "none" else (0, 1, 2)
        runs = [RUNS / f"{method}-s{s}" for s in seeds if (RUNS / f"{method}-s{s}" / "metrics.json").exists()]
        if not runs:
            assert cells[2] == "not run"
            continue
        assert cells[-1] == str(len(runs))
        for column, task in zip((2, 3, 4), ("broader", "synonym", "definition")):
            values = [_metrics(r)[task]["en"][PRIMARY_METRIC] for r in runs]
            expected = f"{statistics.mean(values):.4f}"
            if len(values) > 1:
                expected += f" ± {statistics.stdev(values):.4f}"
            assert cells[column] == expected, (method, task)
            checked += 1
        params = json.loads((runs[0] / "config.json").read_text())["trainable_params"]
        assert cells[1] == f"{params:,}"
    assert checked >= 3 * 3


@grid_done
def test_board_entries_hold_what_the_runs_measured():
    """The leaderboard re-scored each submitted run from its rankings; the scores equal the run's own metrics."""
    submitted = sorted(RUNS.glob("*/submitted.json"))
    assert submitted
    for path in submitted:
        record = json.loads(path.read_text())
        entry = json.loads((ROOT / record["leaderboard"] / record["entry"]).read_text())
        assert entry["id"] == record["id"]
        ours = _metrics(path.parent)
        for task, per_lang in entry["scores"].items():
            for metric in (PRIMARY_METRIC, "mrr@10", "recall@10", "wup@1"):
                assert abs(per_lang["en"][metric] - ours[task]["en"][metric]) <= 1e-9, (path.parent.name, task)


@grid_done
def test_committed_runs_are_complete_on_the_board_and_trained_with_their_declared_options(prepared_full,
                                                                                          monkeypatch):
    from elsst_bench.sweep import _Options, check_complete, load_plan, state, submitted_entry

    monkeypatch.chdir(ROOT)  # the sweep's paths are relative to the repository root
    plan = load_plan(ROOT / "results" / "sweep.toml")
    options = _Options()
    committed = 0
    for run in plan.runs:
        run = dataclasses.replace(run, config=dataclasses.replace(run.config, out=str(ROOT / run.config.out),
                                                                  dataset=str(prepared_full[0])))
        if state(run) == "todo":  # planned, not run yet (RESULTS.md lists them)
            continue
        assert state(run) == "complete", run.id  # no half-finished run is committed
        check_complete(run, options)  # raises if the run was trained with other options than declared
        if run.submit:
            assert submitted_entry(run, plan.leaderboard) is not None, run.id
        committed += 1
    planned = {r.run_dir.name for r in plan.runs}
    assert {p.parent.name for p in RUNS.glob("*/config.json")} <= planned  # nothing outside the plan
    assert committed >= 6 and all((RUNS / f"{m}-s{s}").exists() for m in ("lora", "orthogeolora") for s in (0, 1, 2))


TUNING = sorted((RUNS / "tuning").glob("*/metrics.json"))


@pytest.mark.skipif(not TUNING, reason="no learning-rate check runs")
def test_tuning_table_marks_the_best_dev_point_of_each_method():
    """Each row of RESULTS.md's learning-rate table against the run's config.json and metrics.json, and ★ on the
    row with the highest dev score of its method."""
    section = RESULTS.read_text(encoding="utf-8").split("## Learning-rate check", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]
    assert len(rows) == len(TUNING) + len({json.loads((m.parent / "config.json").read_text())["adapter"]
                                           for m in TUNING})  # every tuning run, plus each method's grid run
    best: dict[str, tuple[float, str]] = {}
    for method, run, _setting, lr, params, dev, broader, _macro in rows:
        method = method.split("`")[1]
        config = json.loads((RUNS / run.strip("`") / "config.json").read_text())
        assert config["adapter"] == method and float(lr) == pytest.approx(config["options"]["lr"])
        assert params == f"{config['trainable_params']:,}" and dev == f"{config['best_dev_score']:.4f}"
        assert broader == f"{_metrics(RUNS / run.strip('`'))['broader']['en'][PRIMARY_METRIC]:.4f}"
        if config["best_dev_score"] > best.get(method, (-1.0, ""))[0]:
            best[method] = (config["best_dev_score"], run)
    stars = [(r[0].split("`")[1], r[1]) for r in rows if r[0].endswith("★")]
    assert sorted(stars) == sorted((m, run) for m, (_, run) in best.items())  # one star per method, on its best
