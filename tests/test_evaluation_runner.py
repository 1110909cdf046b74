"""evaluate_model: embedding cache, de-duplication, outputs on disk, selection errors (fake encoder: fast)."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest
from eval_fixtures import FakeEncoder, fake_identity

from elsst_bench.errors import DataError
from elsst_bench.evaluation import METRICS, PRIMARY_METRIC, EvaluationOptions, EvaluationResult, evaluate_model
from elsst_bench.evaluation.rankings import read_trec
from elsst_bench.tasks import open_prepared

EN_TASKS = ["broader", "synonym", "definition"]


def test_second_evaluation_reads_the_cache_and_encodes_nothing(prepared_en, tmp_path):
    ds = open_prepared(prepared_en)
    first_model, second_model = FakeEncoder(), FakeEncoder()
    cached = EvaluationOptions(cache_dir=tmp_path)
    first = evaluate_model(first_model, ds, languages=["en"], identity=fake_identity(), options=cached).metrics
    assert first["encoding"]["encoded"] == first["encoding"]["texts"] > 3000
    assert first["encoding"]["from_cache"] == 0
    second = evaluate_model(second_model, ds, languages=["en"], identity=fake_identity(), options=cached).metrics
    assert second_model.calls == 0
    assert second["encoding"] == {**second["encoding"], "encoded": 0, "from_cache": first["encoding"]["texts"]}
    assert second["scores"] == first["scores"]
    # another model, or the same one on another dataset, never reads those entries
    third = evaluate_model(FakeEncoder(seed=1), ds, languages=["en"], identity=fake_identity(seed=1),
                           options=cached).metrics
    assert third["encoding"]["from_cache"] == 0


def test_a_subset_after_a_full_evaluation_is_all_cache_hits(prepared_en, tmp_path):
    ds = open_prepared(prepared_en)
    cached = EvaluationOptions(cache_dir=tmp_path)
    evaluate_model(FakeEncoder(), ds, identity=fake_identity(), options=cached, split="test")
    model = FakeEncoder()
    result = evaluate_model(model, ds, tasks=["definition"], identity=fake_identity(), options=cached)
    assert model.calls == 0 and result.metrics["encoding"]["encoded"] == 0


def test_no_cache_for_an_identity_without_weights_hash(prepared_en, tmp_path):
    ds = open_prepared(prepared_en)
    evaluate_model(FakeEncoder(), ds, tasks=["definition"], identity={"name": "x", "sha256": None},
                   options=EvaluationOptions(cache_dir=tmp_path))
    assert not any(tmp_path.rglob("*.npz"))


def test_each_text_is_encoded_once_across_tasks(prepared_en):
    ds = open_prepared(prepared_en)
    model = FakeEncoder()
    result = evaluate_model(model, ds, tasks=EN_TASKS, languages=["en"])
    counts = Counter(model.encoded)
    assert max(counts.values()) == 1
    pool = set(ds.load("broader", "en").corpus.values())
    expected = set(pool)
    for task in EN_TASKS:
        data = ds.load(task, "en")
        expected |= {data.queries[q] for q in data.qrels["test"]}
    assert set(counts) == expected and result.metrics["encoding"]["texts"] == len(expected)
    assert len(expected) < 3 * len(pool)  # the pool was not encoded per task


def test_outputs_schema_and_rankings_on_disk(prepared_en, tmp_path):
    ds = open_prepared(prepared_en)
    result = evaluate_model(FakeEncoder(), ds, languages=["en"], identity=fake_identity(), adapter="lora",
                            trainable_params=1234)
    assert isinstance(result, EvaluationResult) and not any(tmp_path.iterdir())  # nothing written yet
    assert result.write(tmp_path) == tmp_path / "metrics.json"
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(result.metrics))
    assert (tmp_path / "metrics.json").read_text() == json.dumps(result.metrics, ensure_ascii=False, sort_keys=True,
                                                                  indent=2) + "\n"
    assert result.main_score == on_disk["main_score"] and result.scores == on_disk["scores"]
    assert set(result.rankings) == {(t, "en") for t in on_disk["scores"]}
    assert {"dataset_id", "dataset_fingerprint", "split", "model", "adapter", "trainable_params", "scores",
            "main_score", "evaluation_time", "versions"} <= set(on_disk)
    assert on_disk["dataset_fingerprint"] == ds.fingerprint and on_disk["split"] == "test"
    assert on_disk["adapter"] == "lora" and on_disk["trainable_params"] == 1234
    assert set(on_disk["versions"]) >= {"python", "torch", "sentence-transformers", "faiss", "ranx", "elsst-bench"}
    assert set(on_disk["scores"]) == {"broader", "synonym", "definition"}  # crosslingual has no English queries
    for task, per_lang in on_disk["scores"].items():
        assert set(per_lang) == {"en", "macro"}
        assert set(METRICS) <= set(per_lang["en"]) and per_lang["en"]["queries"] == ds.manifest["queries"][task]["en"]["test"]
    assert on_disk["primary_metric"] == PRIMARY_METRIC
    primaries = [on_disk["scores"][t]["macro"][PRIMARY_METRIC] for t in on_disk["scores"]]
    assert on_disk["main_score"] == pytest.approx(sum(primaries) / len(primaries))
    broader = ds.load("broader", "en")
    path = tmp_path / on_disk["rankings"]["broader"]["en"]
    assert path.name == "broader.en.test.tsv.gz"
    per_query = Counter()
    with gzip.open(path, "rt") as handle:
        for line in handle:
            qid, _, doc, _, _, run_name = line.rstrip("\n").split("\t")
            assert doc != broader.query_concept[qid]  # the query's own concept is never a candidate
            assert run_name == "elsst-bench:fake-trigram-0-0:lora"  # the default TREC run name
            per_query[qid] += 1
    assert set(per_query) == set(broader.qrels["test"]) and set(per_query.values()) == {100}
    in_memory = result.rankings[("broader", "en")]
    assert read_trec(path) == {q: in_memory.ids(i) for i, q in enumerate(in_memory.qids)}


def test_dev_split_writes_its_own_metrics_file(prepared_en, tmp_path):
    ds = open_prepared(prepared_en)
    result = evaluate_model(FakeEncoder(), ds, split="dev", tasks=["definition"])
    assert result.write(tmp_path, run_name="my-run") == tmp_path / "metrics.dev.json"
    assert (tmp_path / "metrics.dev.json").exists() and not (tmp_path / "metrics.json").exists()
    ranking = tmp_path / "rankings" / "definition.en.dev.tsv.gz"
    assert {line.rsplit("\t", 1)[1] for line in gzip.decompress(ranking.read_bytes()).decode().splitlines()} == {
        "my-run"}
    assert result.split == "dev"
    assert result.scores["definition"]["en"]["queries"] == ds.manifest["queries"]["definition"]["en"]["dev"]


def test_a_model_in_training_mode_is_put_back_in_training_mode(prepared_en):
    model = FakeEncoder()
    model.train()
    evaluate_model(model, prepared_en, split="dev", tasks=["definition"])
    assert model.training


@pytest.mark.parametrize("kwargs, fragment", [
    ({"tasks": ["nope"]}, "unknown task 'nope'"),
    ({"languages": ["xx"]}, "unknown language 'xx'"),
    ({"tasks": ["crosslingual"]}, "unknown task 'crosslingual'"),  # not prepared with English only
    ({"split": "validation"}, "unknown split 'validation'"),
])
def test_bad_selections_raise_one_line_data_errors(prepared_en, kwargs, fragment):
    with pytest.raises(DataError, match=fragment) as info:
        evaluate_model(FakeEncoder(), prepared_en, **kwargs)
    assert "\n" not in str(info.value)


def test_selection_skips_a_task_without_the_language_unless_strict(tmp_path):
    from elsst_bench.evaluation import select
    from elsst_bench.tasks import PreparedDataset

    counts = {"dev": 1, "test": 1, "train": 1}
    ds = PreparedDataset(tmp_path, {"queries": {"broader": {"en": counts, "de": counts},
                                                "crosslingual": {"de": counts}}})
    assert select(ds, None, ["en"]) == [("broader", ["en"])]
    assert select(ds, ["broader", "crosslingual"], ["en"]) == [("broader", ["en"])]  # the training loop's call
    assert select(ds, None, None) == [("broader", ["de", "en"]), ("crosslingual", ["de"])]
    with pytest.raises(DataError, match="task 'crosslingual' has no queries in en"):
        select(ds, ["broader", "crosslingual"], ["en"], strict=True)
    with pytest.raises(DataError, match="unknown language 'fr'"):
        select(ds, None, ["fr"])
