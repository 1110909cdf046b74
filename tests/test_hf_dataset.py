"""`elsst-bench export-dataset OUT`: the prepared tasks as Hugging Face datasets (MTEB's corpus / queries / qrels
layout) that `datasets.load_dataset` reads offline, with counts equal to the manifest's."""

from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error

from elsst_bench.tasks import SPLITS


@pytest.fixture(scope="module")
def exported(small_dataset, tmp_path_factory):
    from conftest import run_cli_in_process

    out = tmp_path_factory.mktemp("hf") / "elsst"
    result = run_cli_in_process("export-dataset", out, "--dataset", small_dataset.path)
    assert result.returncode == 0, result.stderr
    return out


def test_load_dataset_reads_every_subset_with_the_manifests_counts(small_dataset, exported):
    from datasets import load_dataset

    manifest = small_dataset.manifest
    assert sorted(p.name for p in exported.iterdir() if p.is_dir()) == sorted(manifest["queries"])
    for task, per_lang in manifest["queries"].items():
        for lang, counts in per_lang.items():
            data = small_dataset.load(task, lang)
            corpus = load_dataset(str(exported / task), f"{lang}-corpus", split="corpus")
            queries = load_dataset(str(exported / task), f"{lang}-queries", split="queries")
            assert len(corpus) == len(data.corpus) and set(corpus.column_names) == {"_id", "title", "text"}
            assert len(queries) == len(data.queries)
            assert dict(zip(queries["_id"], queries["text"])) == data.queries
            for split in SPLITS:
                qrels = load_dataset(str(exported / task), f"{lang}-qrels", split=split)
                assert len(set(qrels["query-id"])) == counts[split]  # the manifest's query count
                assert len(qrels) == sum(len(d) for d in data.qrels[split].values())
                assert set(qrels["score"]) <= {1, 2, 3}


def test_the_card_and_marker_name_the_source_and_its_licence(small_dataset, exported):
    marker = json.loads((exported / "elsst_bench_export.json").read_text())
    assert marker["fingerprint"] == small_dataset.fingerprint and marker["dataset_id"] == small_dataset.dataset_id
    card = (exported / "broader" / "README.md").read_text()
    assert "license: cc-by-sa-4.0" in card and "CESSDA ERIC" in card and small_dataset.fingerprint in card


def test_an_existing_target_is_refused_without_overwrite(small_dataset, exported, tmp_path, cli):
    before = (exported / "broader" / "README.md").read_text()
    assert_one_line_error(cli("export-dataset", exported, "--dataset", small_dataset.path), "--overwrite")
    assert (exported / "broader" / "README.md").read_text() == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "n.txt").write_text("keep")
    assert_one_line_error(cli("export-dataset", other, "--dataset", small_dataset.path), "not an exported")
    assert (other / "n.txt").read_text() == "keep"
    assert_one_line_error(cli("export-dataset", tmp_path / "x", "--dataset", small_dataset.path, "-t", "nope"),
                          "unknown task 'nope'")
