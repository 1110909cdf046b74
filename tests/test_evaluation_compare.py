"""compare: paired Fisher randomization tests between evaluated runs, and its refusals."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import assert_one_line_error
from eval_fixtures import FakeEncoder, fake_identity

from elsst_bench.errors import DataError
from elsst_bench.evaluation import compare_runs, evaluate_model
from elsst_bench.evaluation.significance import report_dict
from elsst_bench.metric_names import PRIMARY_METRIC


@pytest.fixture(scope="module")
def two_runs(prepared_en, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    for seed, levels in ((0, 0), (1, 1)):
        evaluate_model(FakeEncoder(seed=seed, levels=levels), prepared_en, languages=["en"],
                       identity=fake_identity(seed, levels)).write(base / f"run{seed}")
    return base / "run0", base / "run1"


def test_compare_reports_both_runs_per_task_with_p_values(prepared_en, two_runs):
    entries = compare_runs(list(two_runs), prepared_en)
    assert [e["task"] for e in entries] == ["broader", "synonym", "definition"]
    metrics = json.loads((two_runs[0] / "metrics.json").read_text())
    for entry in entries:
        d = report_dict(entry)
        assert [r["name"] for r in d["runs"]] == ["run0", "run1"] and d["stat_test"] == "fisher"
        (pair,) = d["comparisons"]
        assert (pair["control"], pair["treatment"]) == ("run0", "run1") and 0.0 < pair["p"] <= 1.0
        assert pair["delta"] == pytest.approx(d["runs"][1]["mean"] - d["runs"][0]["mean"])
        # one language: the pooled mean is the per-language primary metric of metrics.json
        assert d["runs"][0]["mean"] == pytest.approx(metrics["scores"][entry["task"]]["en"][PRIMARY_METRIC],
                                                     abs=1e-4)
        assert entry["queries"] == metrics["scores"][entry["task"]]["en"]["queries"]


def test_compare_and_the_results_report_give_the_same_p_for_the_same_pair(prepared_en, two_runs):
    """One test, one home (evaluation.paired): compare's p is the report's fisher() on the same per-query scores,
    which the test recomputes here from the ranking files by the formula: graded nDCG@10 with linear gains, the
    ideal ranking from the query's grades sorted (a query without a ranking scores 0)."""
    import math

    from elsst_bench.evaluation.metrics import CUTOFF
    from elsst_bench.evaluation.paired import fisher
    from elsst_bench.evaluation.rankings import read_trec
    from elsst_bench.tasks import open_prepared

    (entry,) = compare_runs(list(two_runs), prepared_en, tasks=["synonym"])
    qrels = open_prepared(prepared_en).load("synonym", "en").qrels["test"]

    def ndcg(ranked: list[str], grades: dict[str, int]) -> float:
        dcg = sum(grades.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:CUTOFF]))
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(grades.values(), reverse=True)[:CUTOFF]))
        return dcg / ideal

    per_run = []
    for run in two_runs:
        ranked = read_trec(run / "rankings" / "synonym.en.test.tsv.gz")
        per_run.append([ndcg(ranked.get(q, []), dict(qrels[q])) for q in sorted(qrels)])
    assert entry["queries"] == len(qrels) and len(set(per_run[0])) > 1
    assert entry["comparisons"][0]["p"] == fisher(per_run[0], per_run[1])


def test_a_run_compared_with_itself_is_not_significant(prepared_en, two_runs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(two_runs[0], copy)
    entries = compare_runs([two_runs[0], copy / "metrics.json"], prepared_en, tasks=["definition"])
    d = report_dict(entries[0])
    assert d["comparisons"][0]["p"] == 1.0 and d["comparisons"][0]["significant"] is False


def test_runs_on_other_fingerprints_or_splits_are_refused(prepared_en, two_runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(two_runs[1], other)
    metrics = json.loads((other / "metrics.json").read_text())
    (other / "metrics.json").write_text(json.dumps({**metrics, "dataset_fingerprint": "f" * 64}))
    with pytest.raises(DataError, match="must share a dataset"):
        compare_runs([two_runs[0], other], prepared_en)
    (other / "metrics.json").write_text(json.dumps({**metrics, "split": "dev"}))
    with pytest.raises(DataError, match="must share a split"):
        compare_runs([two_runs[0], other / "metrics.json"], prepared_en)
    with pytest.raises(DataError, match="at least two runs"):
        compare_runs([two_runs[0]], prepared_en)


def test_compare_cli(prepared_en, two_runs, tmp_path, cli):
    ok = cli("compare", *two_runs, "--dataset", prepared_en, "--tasks", "broader")
    assert ok.returncode == 0, ok.stderr
    assert "broader [en]" in ok.stdout and "run0" in ok.stdout and "run1" in ok.stdout
    other = tmp_path / "other"
    shutil.copytree(two_runs[1], other)
    metrics = json.loads((other / "metrics.json").read_text())
    (other / "metrics.json").write_text(json.dumps({**metrics, "dataset_fingerprint": "f" * 64}))
    assert_one_line_error(cli("compare", two_runs[0], other, "--dataset", prepared_en), "must share a dataset")
