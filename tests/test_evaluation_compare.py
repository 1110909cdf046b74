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
        assert d["model_names"] == ["run0", "run1"] and d["stat_test"] == "fisher"
        p = d["run0"]["comparisons"]["run1"]["ndcg@10"]
        assert 0.0 <= p <= 1.0
        # one language: the pooled mean is the per-language primary metric of metrics.json
        assert d["run0"]["scores"]["ndcg@10"] == pytest.approx(
            metrics["scores"][entry["task"]]["en"][PRIMARY_METRIC], abs=1e-4)
        assert entry["queries"] == metrics["scores"][entry["task"]]["en"]["queries"]


def test_a_run_compared_with_itself_is_not_significant(prepared_en, two_runs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(two_runs[0], copy)
    entries = compare_runs([two_runs[0], copy / "metrics.json"], prepared_en, tasks=["definition"])
    d = report_dict(entries[0])
    assert d["run0"]["comparisons"]["copy"]["ndcg@10"] == 1.0


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
