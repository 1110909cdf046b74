"""The prompt convention (issue 29): asymmetric (the model's query and document prompts), symmetric (the query prompt
on both sides) or none, the same in training and evaluation, recorded by a run only when it is not the default."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error
from test_e5 import write_tiny_e5

from elsst_bench import e5, runs
from elsst_bench.errors import BenchError
from elsst_bench.evaluation.loading import LazySentenceTransformer
from elsst_bench.models import (PROMPT_CONVENTIONS, load_sentence_transformer, prompt_convention, prompts_under,
                                role_prompt)
from elsst_bench.training import TrainConfig, train

E5 = {"query": "query: ", "passage": "passage: "}


def test_the_three_conventions_of_a_prompt_table():
    assert prompts_under(E5, None, "asymmetric") == (E5, None)
    symmetric, default = prompts_under(E5, None, "symmetric")
    assert default is None and symmetric["query"] == "query: "
    assert {symmetric[k] for k in ("passage", "document", "corpus")} == {"query: "}
    assert prompts_under(E5, "query", "none") == ({}, None)
    assert prompts_under({}, None, "symmetric") == ({}, None)  # a model without prompts: all three are the same
    with pytest.raises(BenchError, match="--prompts must be one of asymmetric, symmetric, none, got 'both'"):
        prompts_under(E5, None, "both")
    assert prompt_convention({}) == "asymmetric" and prompt_convention({"prompts": "none"}) == "none"


@pytest.fixture(scope="module")
def tiny_e5(tmp_path_factory):
    """A converted e5 (synthetic weights) with e5's prompts in its sentence-transformers config."""
    root = tmp_path_factory.mktemp("tiny-e5")
    return e5.build(cache_dir=root / "cache", source=write_tiny_e5(root / "e5-tiny-q4.bin"))


@pytest.mark.parametrize("convention", PROMPT_CONVENTIONS)
def test_each_convention_encodes_as_it_says(tiny_e5, convention):
    texts = ["social work", "the household"]
    model = load_sentence_transformer(str(tiny_e5), prompts=convention)
    plain = load_sentence_transformer(str(tiny_e5), prompts="none")
    query = model.encode_query(texts, convert_to_numpy=True)
    document = model.encode_document(texts, convert_to_numpy=True)
    bare = plain.encode(texts, convert_to_numpy=True)
    by_hand = {role: plain.encode([prefix + t for t in texts], convert_to_numpy=True)
               for role, prefix in (("query", "query: "), ("passage", "passage: "))}
    expected = {"asymmetric": (by_hand["query"], by_hand["passage"]),
                "symmetric": (by_hand["query"], by_hand["query"]),
                "none": (bare, bare)}[convention]
    assert np.abs(query - expected[0]).max() <= 1e-6 and np.abs(document - expected[1]).max() <= 1e-6
    assert role_prompt(model, "document") == {"asymmetric": "passage: ", "symmetric": "query: ", "none": ""}[convention]


def test_the_lazy_model_keys_its_cache_by_the_convention(tiny_e5):
    signatures = {c: {role: LazySentenceTransformer(None, str(tiny_e5), "cpu", c).role_signature(role)
                      for role in ("query", "document")} for c in PROMPT_CONVENTIONS}
    assert signatures["none"] == {"query": "", "document": ""}  # no prompt: the plain encoding
    assert len({signatures[c][r] for c in ("asymmetric", "symmetric") for r in ("query", "document")}) == 4


def test_a_run_records_a_convention_other_than_the_default_and_is_evaluated_with_it(small_dataset, tmp_path, cli):
    tiny = dict(dataset=str(small_dataset.path), out=str(tmp_path), languages=["en"], eval_tasks=["broader"])
    default = train(TrainConfig(adapter="none", run_id="asym", **tiny), progress=False)
    assert "prompts" not in runs.read_config(default)["options"]  # runs from before the option read the same
    symmetric = train(TrainConfig(adapter="none", run_id="sym", prompts="symmetric", **tiny), progress=False)
    assert runs.read_config(symmetric)["options"]["prompts"] == "symmetric"
    assert_one_line_error(cli("evaluate", symmetric, "--dataset", small_dataset.path, "--prompts", "none"),
                          "was trained and scored with --prompts symmetric")
    result = cli("evaluate", symmetric, "--dataset", small_dataset.path, "--prompts", "symmetric", "--json")
    assert result.returncode == 0, result.stderr


def test_a_bad_convention_is_one_line(small_dataset, tmp_path, cli):
    assert_one_line_error(cli("train", "--adapter", "none", "--dataset", small_dataset.path, "--runs-dir", tmp_path,
                              "--prompts", "both"), "--prompts must be one of asymmetric, symmetric, none")
    assert_one_line_error(cli("evaluate", "--dataset", small_dataset.path, "--prompts", "both"),
                          "--prompts must be one of")


def test_zero_shot_conventions_get_their_own_directories(small_dataset, tmp_path, cli):
    out = tmp_path / "zs"
    result = cli("evaluate", "--dataset", small_dataset.path, "-t", "broader", "-l", "en", "--prompts", "none",
                 "--out", out)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["options"]["prompts"] == "none"
    assert_one_line_error(cli("evaluate", "--dataset", small_dataset.path, "-t", "broader", "-l", "en", "--out", out),
                          "holds an evaluation with --prompts none")
