"""`elsst-bench evaluate` / `search` through the console script: bad input, and one real zero-shot run."""

from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error

from elsst_bench.metric_names import PRIMARY_METRIC


@pytest.fixture
def fake_run(tmp_path):
    """A run directory recorded against another dataset (only the fingerprint check is reached)."""
    run = tmp_path / "run-lora"
    (run / "adapter").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"adapter": "lora", "status": "complete",
                                                 "dataset_fingerprint": "0" * 64}))
    return run


def test_no_prepared_dataset_says_which_command_to_run(tmp_path, cli):
    assert_one_line_error(cli("evaluate", cwd=tmp_path), "no prepared dataset", "elsst-bench prepare")
    assert_one_line_error(cli("evaluate", "--dataset", tmp_path / "nope"), "elsst-bench prepare")
    assert_one_line_error(cli("search", "families", cwd=tmp_path), "elsst-bench prepare")
    assert_one_line_error(cli("compare", tmp_path / "a", tmp_path / "b"), "does not exist")


def test_run_prepared_on_another_dataset_is_refused(prepared_en, fake_run, cli):
    assert_one_line_error(cli("evaluate", fake_run, "--dataset", prepared_en), "trained on dataset fingerprint 0000")
    assert_one_line_error(cli("search", "families", "--model", fake_run, "--dataset", prepared_en),
                     "trained on dataset fingerprint")


@pytest.mark.parametrize("args, fragment", [
    (["--tasks", "nope"], "unknown task 'nope'"),
    (["--tasks", "broader,nope"], "unknown task 'nope'"),
    (["--languages", "xx"], "unknown language 'xx'"),
    (["--split", "validation"], "unknown split"),
    (["--index", "annoy"], "unknown index"),
    (["--device", "tpu"], "unknown device 'tpu'"),
])
def test_unknown_task_language_split_index_or_device(prepared_en, args, fragment, cli):
    assert_one_line_error(cli("evaluate", "--dataset", prepared_en, *args), fragment)


def test_model_path_that_is_not_a_sentence_transformers_model(prepared_en, tmp_path, fake_run, cli):
    (tmp_path / "notamodel").mkdir()
    (tmp_path / "notamodel" / "weights.bin").write_bytes(b"\0")
    assert_one_line_error(cli("evaluate", "--model", tmp_path / "notamodel", "--dataset", prepared_en),
                     "not a sentence-transformers model")
    assert_one_line_error(cli("evaluate", "--model", "./missing-model", "--dataset", prepared_en), "does not exist")
    assert_one_line_error(cli("search", "x", "--model", tmp_path / "notamodel", "--dataset", prepared_en),
                     "not a sentence-transformers model")
    assert_one_line_error(cli("evaluate", fake_run, "--model", "default", "--dataset", prepared_en), "not both")


def test_search_refuses_an_unknown_language(prepared_en, cli):
    assert_one_line_error(cli("search", "families", "--lang", "xx", "--dataset", prepared_en), "unknown language 'xx'")


@pytest.mark.slow  # the real all-MiniLM-L6-v2 encodes 3,000 texts
def test_zero_shot_evaluate_then_cached_re_evaluation_then_search(prepared_en, tmp_path, cli):
    """The real offline model, end to end (one task to stay quick)."""
    env = {"ELSST_BENCH_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "zs"
    first = cli("evaluate", "--model", "all-MiniLM-L6-v2", "--tasks", "definition", "--dataset", prepared_en,
                "--out", out, "--json", env=env)
    assert first.returncode == 0, first.stderr
    metrics = json.loads(first.stdout)
    assert metrics["model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2" and metrics["model"]["sha256"]
    assert metrics["encoding"]["encoded"] > 3000
    assert 0.3 < metrics["scores"]["definition"]["en"][PRIMARY_METRIC] < 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["adapter"] == "none" and config["dataset_fingerprint"] == metrics["dataset_fingerprint"]
    assert (out / "rankings" / "definition.en.test.tsv.gz").exists()

    # the zero-shot directory as RUN_DIR: same model identity, so every embedding comes from the cache
    second = cli("evaluate", out, "--tasks", "definition", "--dataset", prepared_en, env=env)
    assert second.returncode == 0, second.stderr
    assert "encoded 0 of" in second.stdout and "definition" in second.stdout
    assert json.loads((out / "metrics.json").read_text())["scores"] == metrics["scores"]

    hits = cli("search", "families with one parent", "--model", out, "--dataset", prepared_en, "-k", "3",
                   "--json", env=env)
    assert hits.returncode == 0, hits.stderr
    hits = json.loads(hits.stdout)
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert all(h["uri"].startswith("https://elsst.cessda.eu/id/") and h["label"] for h in hits)
    assert any("famil" in h["label"] for h in hits)
    # the service's suggestion objects: the broader path from a top concept down, each step with its URI
    assert all(isinstance(h["broader"], list) and all(set(b) == {"uri", "label"} for b in h["broader"]) for h in hits)
    assert all(0 <= h["score"] <= 1 and h["score"] == pytest.approx((1 + h["cosine"]) / 2, abs=1e-6) for h in hits)
