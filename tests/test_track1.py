"""`elsst-bench track1`: a synthetic Track 1 release made here in exactly the published schema (concepts taken from
the small prepared ELSST subset, some by id, some by URI, some by term, some not ELSST's), every rule of the files
and of a submission, the four metrics against a computation by hand, and the commands end to end on the tests'
tiny encoder."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from conftest import assert_one_line_error

from elsst_bench import runs
from elsst_bench.errors import DataError
from elsst_bench.track1 import check_submission, read_release, score
from elsst_bench.track1.submission import read_submission

URI = "https://elsst.cessda.eu/id/5/"


def _jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def release(small_dataset, tmp_path_factory) -> Path:
    """40 concepts: 20 by ELSST id, 8 by ELSST URI, 6 under ids of their own but an ELSST term, 6 not ELSST's; 60
    train, 20 val and 20 test passages, one or two positives and two hard negatives each."""
    th = small_dataset.thesaurus()
    live = sorted(c for c in th.live_ids if th[c].labels.get("en"))
    labels = {}
    for cid in live:
        labels.setdefault(th[cid].labels["en"].strip().casefold(), []).append(cid)
    unique = [c for c in live if len(labels[th[c].labels["en"].strip().casefold()]) == 1]
    chosen = unique[:34]
    pool = []
    for i, cid in enumerate(chosen):
        concept_id = cid if i < 20 else URI + cid if i < 28 else f"t1-{i}"
        pool.append({"concept_id": concept_id, "term": th[cid].labels["en"],
                     "definition": th[cid].definitions.get("en", "") if i % 3 else ""})
    pool += [{"concept_id": f"own-{i}", "term": f"made-up concept {i}", "definition": "not in ELSST"} for i in range(6)]
    ids = [c["concept_id"] for c in pool]
    rng = random.Random(0)

    def passages(n, prefix, labelled=True):
        out = []
        for i in range(n):
            positives = rng.sample(ids, rng.choice((1, 2)))
            negatives = rng.sample([c for c in ids if c not in positives], 2)
            terms = {c["concept_id"]: c["term"] for c in pool}
            row = {"id": f"{prefix}-{i}", "text": f"A study of {terms[positives[0]].lower()} among households, "
                   f"wave {i}.", "document_type": rng.choice(("abstract", "question"))}
            if labelled:
                row["retrieval_labels"] = {"positive_ids": positives, "hard_negative_ids": negatives}
            out.append(row)
        return out

    root = tmp_path_factory.mktemp("track1") / "release"
    root.mkdir()
    _jsonl(root / "concept_pool.jsonl", pool)
    _jsonl(root / "train.jsonl", passages(60, "tr"))
    _jsonl(root / "val.jsonl", passages(20, "va"))
    _jsonl(root / "test_input.jsonl", passages(20, "te", labelled=False))
    return root


def test_check_reads_counts_and_maps_the_release(release, small_dataset, cli):
    result = cli("track1", "check", release, "--dataset", small_dataset.path, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["concepts"] == 40 and summary["train passages"] == 60 and summary["test passages"] == 20
    assert (summary["ELSST concepts by id"], summary["by URI"], summary["by English term"], summary["not ELSST's"]) \
        == (20, 8, 6, 6)
    assert summary["hard negatives per labelled passage"] == 2.0


def _copy(release: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(release, target)
    return target


def _edit(file: str, change):
    def edit(root: Path):
        rows = [json.loads(line) for line in (root / file).read_text().splitlines()]
        result = change(rows)
        if isinstance(result, str):
            (root / file).write_text(result)
        else:
            _jsonl(root / file, rows if result is None else result)
    return edit


def _label(i, key, value):
    return lambda rows: rows[i]["retrieval_labels"].__setitem__(key, value)


BAD = {
    "missing file": (lambda root: (root / "val.jsonl").unlink(), "val.jsonl is missing"),
    "not JSON": (_edit("train.jsonl", lambda rows: "{\"id\": 1,\n"), "train.jsonl line 1: not JSON"),
    "nested too deeply": (_edit("train.jsonl", lambda rows: "[" * 100_000 + "\n"), "nested too deeply"),
    "a list, not an object": (_edit("train.jsonl", lambda rows: "[1, 2]\n"), "line 1: not a JSON object"),
    "no text": (_edit("val.jsonl", lambda rows: rows[3].pop("text") and None), "val.jsonl line 4: no 'text'"),
    "an unknown field": (_edit("train.jsonl", lambda rows: rows[0].update(lang="en")), "'lang' is not a field"),
    "empty text": (_edit("train.jsonl", lambda rows: rows[1].update(text="  ")), "text must be a non-empty string"),
    "a duplicate id": (_edit("train.jsonl", lambda rows: rows[2].update(id=rows[0]["id"])), "appears twice"),
    "an unknown positive": (_edit("train.jsonl", _label(0, "positive_ids", ["nope"])),
                            "positive_ids names 'nope', which is not in concept_pool.jsonl"),
    "no positive": (_edit("train.jsonl", _label(0, "positive_ids", [])), "must be a non-empty list"),
    "a positive twice": (_edit("train.jsonl", lambda rows: rows[0]["retrieval_labels"].update(
        positive_ids=rows[0]["retrieval_labels"]["positive_ids"][:1] * 2)), "names a concept twice"),
    "positive and negative": (_edit("val.jsonl", lambda rows: rows[0]["retrieval_labels"].update(
        hard_negative_ids=rows[0]["retrieval_labels"]["positive_ids"][:1])), "both a positive and a hard negative"),
    "labels not an object": (_edit("val.jsonl", lambda rows: rows[0].update(retrieval_labels=[])),
                             "retrieval_labels must be an object"),
    "labelled test input": (_edit("test_input.jsonl", lambda rows: rows[0].update(
        retrieval_labels={"positive_ids": [], "hard_negative_ids": []})), "test_input.jsonl is unlabelled"),
    "a duplicate concept": (_edit("concept_pool.jsonl", lambda rows: rows + rows[:1]), "appears twice"),
    "a concept without a term": (_edit("concept_pool.jsonl", lambda rows: rows[5].update(term="")),
                                 "term must be a non-empty string"),
    "a pool of 9": (_edit("concept_pool.jsonl", lambda rows: rows[:9]), "holds 9 concepts; a submission ranks"),
    "a passage in train and val": (_edit("val.jsonl", lambda rows: rows[0].update(id="tr-0")),
                                   "'tr-0' is in both train.jsonl and val.jsonl"),
    "not UTF-8": (lambda root: (root / "train.jsonl").write_bytes(b"\xff\xfe{}\n"), "is not UTF-8"),
}


@pytest.mark.parametrize("edit, fragment", list(BAD.values()), ids=list(BAD))
def test_a_release_that_breaks_the_schema_is_one_line(release, tmp_path, small_dataset, cli, edit, fragment):
    root = _copy(release, tmp_path)
    edit(root)
    if fragment == "holds 9 concepts; a submission ranks":  # the other files name concepts the cut pool lost
        for name in ("train.jsonl", "val.jsonl"):
            _edit(name, lambda rows: [r for r in rows if set(r["retrieval_labels"]["positive_ids"]
                                                          + r["retrieval_labels"]["hard_negative_ids"])
                                      <= {c["concept_id"] for c in map(json.loads, (root / "concept_pool.jsonl")
                                                                       .read_text().splitlines())}])(root)
    assert_one_line_error(cli("track1", "check", root, "--dataset", small_dataset.path), fragment)


def test_the_four_metrics_against_a_computation_by_hand():
    positives = {"a": ["c1", "c9"], "b": ["c4"], "c": ["c100"], "d": ["c2", "c3", "c5"]}
    ranked = {"a": ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10"],
              "b": ["c4", "c0"],
              "c": [f"c{i}" for i in range(100)],  # c100 is not there
              "d": ["c5", "c0", "c2", "c1", "c1x", "c3"]}

    def ndcg(rank_list, pos):
        dcg = sum(1 / math.log2(i + 2) for i, c in enumerate(rank_list[:10]) if c in pos)
        return dcg / sum(1 / math.log2(i + 2) for i in range(min(len(pos), 10)))

    def mrr(rank_list, pos):
        return next((1 / (i + 1) for i, c in enumerate(rank_list) if c in pos), 0.0)

    def recall(rank_list, pos, k):
        return len(set(rank_list[:k]) & set(pos)) / len(pos)

    expected = {"ndcg@10": sum(ndcg(ranked[q], p) for q, p in positives.items()) / 4,
                "mrr": sum(mrr(ranked[q], p) for q, p in positives.items()) / 4,
                "recall@5": sum(recall(ranked[q], p, 5) for q, p in positives.items()) / 4,
                "recall@10": sum(recall(ranked[q], p, 10) for q, p in positives.items()) / 4}
    got = score(ranked, positives)
    assert got == pytest.approx(expected, abs=1e-9)
    assert expected["mrr"] == pytest.approx((1 / 2 + 1 + 0 + 1) / 4)
    assert score({}, {"a": ["c1"]}) == {"ndcg@10": 0.0, "mrr": 0.0, "recall@5": 0.0, "recall@10": 0.0}


@pytest.fixture(scope="module")
def loaded(release):
    return read_release(release)


def _valid(found):
    ids = list(found.pool)
    return [{"id": p.id, "ranked_ids": ids[:12]} for p in found.test]


SUBMISSION_RULES = {
    "a missing passage": (lambda rows: rows[:-1], "has no ranking for 1 test passages"),
    "a passage twice": (lambda rows: rows + rows[:1], "appears twice"),
    "an unknown passage": (lambda rows: [*rows[:-1], {**rows[-1], "id": "tr-0"}], "is not a passage of test_input"),
    "an extra field": (lambda rows: [{**rows[0], "score": 1}, *rows[1:]], "exactly id and ranked_ids"),
    "nine concepts": (lambda rows: [{**rows[0], "ranked_ids": rows[0]["ranked_ids"][:9]}, *rows[1:]],
                      "holds 9 concepts; at least 10 are required"),
    "101 concepts": (lambda rows: [{**rows[0], "ranked_ids": [f"x{i}" for i in range(101)]}, *rows[1:]],
                     "holds 101 concepts; at most 100 are used"),
    "a concept twice": (lambda rows: [{**rows[0], "ranked_ids": rows[0]["ranked_ids"][:11] * 2}, *rows[1:]],
                        "names a concept twice"),
    "an unknown concept": (lambda rows: [{**rows[0], "ranked_ids": ["nope", *rows[0]["ranked_ids"]]}, *rows[1:]],
                           "'nope', which is not in concept_pool.jsonl"),
    "ranked_ids a string": (lambda rows: [{**rows[0], "ranked_ids": "c1 c2"}, *rows[1:]], "must be a list"),
}


@pytest.mark.parametrize("change, fragment", list(SUBMISSION_RULES.values()), ids=list(SUBMISSION_RULES))
def test_every_rule_of_a_submission_is_enforced(loaded, change, fragment):
    check_submission(_valid(loaded), loaded)  # the control passes
    with pytest.raises(DataError, match=fragment.replace("(", r"\(")):
        check_submission(change(_valid(loaded)), loaded)


def test_end_to_end_on_the_synthetic_release(release, small_dataset, tmp_path, cli):
    import os

    model = os.environ["ELSST_BENCH_MODEL"]
    zero = cli("track1", "evaluate", release, "--model", model, "--json")
    assert zero.returncode == 0, zero.stderr
    before = json.loads(zero.stdout)
    assert before["passages"] == 20 and 0 <= before["ndcg@10"] <= 1

    trained = cli("track1", "train", release, "--adapter", "lora", "--model", model, "--epochs", "2",
                  "--batch-size", "8", "--runs-dir", tmp_path / "runs", "-q")
    assert trained.returncode == 0, trained.stderr
    run = tmp_path / "runs" / "track1-lora-s0"
    record = runs.read_config(run)
    assert record["status"] == "complete" and record["kind"] == "track1" and record["train_pairs"] >= 60
    assert record["trainable_params"] > 0 and (run / "adapter" / "adapter.safetensors").is_file()
    again = cli("track1", "evaluate", release, run, "--json")
    assert again.returncode == 0, again.stderr
    assert {k: json.loads(again.stdout)[k] for k in record["val_metrics"]} == pytest.approx(record["val_metrics"],
                                                                                           abs=1e-9)
    out = tmp_path / "submission.jsonl"
    written = cli("track1", "submit", release, run, "--out", out)
    assert written.returncode == 0, written.stderr
    rows = read_submission(out, read_release(release))  # what the hosted evaluator would accept
    assert len(rows) == 20 and all(len(r["ranked_ids"]) == 40 for r in rows)  # the whole pool of 40, ranked
    assert_one_line_error(cli("track1", "submit", release, run, "--out", out), "exists; pass --overwrite")
    assert cli("track1", "submit", release, "--model", model, "--out", out, "--overwrite").returncode == 0
    assert_one_line_error(cli("track1", "evaluate", release, "--model", model, "--split", "test"),
                          "test_input.jsonl has no labels")
    assert_one_line_error(cli("track1", "train", release, "--adapter", "none", "--model", model, "--runs-dir", tmp_path),
                          "none trains nothing")
    assert_one_line_error(cli("track1", "train", release, "--adapter", "lora", "--model", model, "--runs-dir", tmp_path,
                              "--hard-negatives", "50"), "--hard-negatives 50 is more than the pool has")
