"""Leaderboard: a run that cannot be trusted is refused with one clear line, and the board stays byte-identical.

Every case starts from a real evaluated run (zero-shot, small dataset) and breaks one thing. The cases named
in the issue go through the console script (exit status 2, one line on stderr, no traceback); the others
call the same code in-process (the message and the untouched board are what is checked).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from leaderboard_fixtures import (assert_refused, cli, evaluated_run, make_run, new_board, read_run, snapshot,
                                  write_run)

from elsst_bench.errors import DataError
from elsst_bench.leaderboard import submit

FILE = "rankings/broader.en.test.tsv.gz"


@pytest.fixture(scope="module")
def env(small_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("lb-refusals")
    base = evaluated_run(str(small_dataset.path))
    board = new_board(root, small_dataset)
    submit(make_run(base, root / "accepted", seed=7), board, dataset=small_dataset.path)  # a non-empty board
    return {"root": root, "base": base, "board": board, "ds": small_dataset, "n": 0}


def fresh_run(env) -> Path:
    env["n"] += 1
    return make_run(env["base"], env["root"] / f"case{env['n']}", seed=100 + env["n"], perturb_seed=-1)


def edit_rankings(run: Path, edit, name: str = FILE) -> list[list[str]]:
    rows = read_run(run / name)
    rows = edit(rows)
    write_run(run / name, rows)
    return rows


def edit_config(run: Path, edit) -> None:
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))


def first_query(rows):
    return rows[0][0]


def refused_by_cli(env, run: Path, *fragments: str) -> str:
    before = snapshot(env["board"])
    result = cli("submit", run, "--leaderboard", env["board"], "--dataset", env["ds"].path)
    line = assert_refused(result, *fragments)
    assert snapshot(env["board"]) == before
    return line


def refused(env, run: Path, *fragments: str, dataset=None) -> str:
    before = snapshot(env["board"])
    with pytest.raises(DataError) as err:
        submit(run, env["board"], dataset=dataset or env["ds"].path)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert snapshot(env["board"]) == before
    return message


# ----- the cases the issue names, through the console script --------------------------------------------------
def test_truncated_gzip_file(env):
    run = fresh_run(env)
    data = (run / FILE).read_bytes()
    (run / FILE).write_bytes(data[: len(data) // 2])
    refused_by_cli(env, run, FILE, "not a readable gzip TREC run file")


def test_query_truncated_to_seven_concepts(env):
    run = fresh_run(env)
    rows = read_run(run / FILE)
    qid = first_query(rows)
    edit_rankings(run, lambda rs: [r for r in rs if r[0] != qid or int(r[3]) <= 7])
    refused_by_cli(env, run, f"{FILE}: query {qid} ranks 7 concepts (at least 10 required)")


def test_altered_ranking_with_unknown_concept(env):
    run = fresh_run(env)
    bogus = "00000000-0000-4000-8000-000000000000"

    def edit(rs):
        rs[2][2] = bogus
        return rs
    rows = edit_rankings(run, edit)
    refused_by_cli(env, run, f"query {rows[2][0]} ranks unknown concept id {bogus} (rank 3)")


def test_other_dataset_fingerprint(env):
    run = fresh_run(env)
    edit_config(run, lambda c: c.update(dataset_fingerprint="1234567890ab" + "0" * 52))
    line = refused_by_cli(env, run, "was prepared on dataset fingerprint 1234567890ab… but the benchmark is",
                          env["ds"].fingerprint[:12])
    assert "elsst-bench prepare" in line


def test_config_missing_trainable_params(env):
    run = fresh_run(env)
    edit_config(run, lambda c: c.pop("trainable_params"))
    refused_by_cli(env, run, "config.json lacks trainable_params")


def test_missing_queries(env):
    run = fresh_run(env)
    rows = read_run(run / FILE)
    drop = sorted({r[0] for r in rows})[:3]
    n = len({r[0] for r in rows})
    edit_rankings(run, lambda rs: [r for r in rs if r[0] not in drop])
    refused_by_cli(env, run, f"{FILE} is missing 3 of {n} test queries (first: {drop[0]})")


# ----- the other checks, in-process ---------------------------------------------------------------------------
def test_concept_ranked_twice(env):
    run = fresh_run(env)

    def edit(rs):
        rs[4][2] = rs[1][2]
        return rs
    rows = edit_rankings(run, edit)
    refused(env, run, f"query {rows[1][0]} ranks concept {rows[1][2]} twice")


def test_more_than_100_concepts(env):
    run = fresh_run(env)
    pool = sorted(env["ds"].load("broader", "en").corpus)
    rows = read_run(run / FILE)
    qid = first_query(rows)
    ranked = {r[2] for r in rows if r[0] == qid}
    extra = next(c for c in pool if c not in ranked and c != qid)
    last = [r for r in rows if r[0] == qid][-1]
    edit_rankings(run, lambda rs: rs + [[qid, "Q0", extra, "101", last[4], "run"]])
    refused(env, run, f"query {qid} ranks 101 concepts (at most 100 allowed)")


def test_own_concept_in_broader(env):
    run = fresh_run(env)

    def edit(rs):
        rs[0][2] = rs[0][0]  # broader: the query id is its concept's id
        return rs
    rows = edit_rankings(run, edit)
    refused(env, run, f"query {rows[0][0]} ranks its own concept", "which the broader task never retrieves")


def test_query_outside_the_test_split(env):
    run = fresh_run(env)
    train_qid = sorted(env["ds"].load("broader", "en").qrels["train"])[0]

    def edit(rs):
        qid = rs[0][0]
        return [[train_qid, *r[1:]] if r[0] == qid else r for r in rs]
    edit_rankings(run, edit)
    refused(env, run, f"query {train_qid} is not a test query of broader/en")


def test_ranks_not_consecutive(env):
    run = fresh_run(env)

    def edit(rs):
        rs[3][3] = "40"
        return rs
    rows = edit_rankings(run, edit)
    refused(env, run, f"query {rows[0][0]} skips rank 4")


def test_scores_increasing_with_rank(env):
    run = fresh_run(env)

    def edit(rs):
        rs[2][4] = "99.0"
        return rs
    rows = edit_rankings(run, edit)
    refused(env, run, f"query {rows[0][0]} scores rank 3 higher than rank 2")


def test_malformed_line(env):
    run = fresh_run(env)

    def edit(rs):
        rs[5] = rs[5][:4]
        return rs
    edit_rankings(run, edit)
    refused(env, run, FILE, "line 6 has 4 fields, expected 6")


@pytest.mark.parametrize("key", ["seed", "versions", "model", "adapter", "dataset_fingerprint"])
def test_config_missing_fields(env, key):
    run = fresh_run(env)
    edit_config(run, lambda c: c.pop(key))
    refused(env, run, f"config.json lacks {key}")


def test_config_problems(env):
    run = fresh_run(env)
    edit_config(run, lambda c: c.update(status="running"))
    refused(env, run, "the run is not complete (status: running)")
    edit_config(run, lambda c: c.update(status="complete", trainable_params=-5))
    refused(env, run, "trainable_params must be a non-negative integer, got -5")
    edit_config(run, lambda c: c.update(trainable_params=10, model={"sha256": "x"}))
    refused(env, run, "config.json lacks model.name")
    (run / "config.json").unlink()
    refused(env, run, "has no config.json")
    refused(env, env["root"] / "no-such-run", "does not exist")


def test_rankings_files(env):
    run = fresh_run(env)
    shutil.copyfile(run / FILE, run / "rankings/broader.fr.test.tsv.gz")
    refused(env, run, "broader.fr.test.tsv.gz: not a task and language of the benchmark")
    shutil.rmtree(run / "rankings")
    refused(env, run, "has no rankings/*.test.tsv.gz")


def test_dataset_with_edited_qrels_is_not_the_benchmark(env, tmp_path):
    """A dataset whose manifest claims the benchmark's fingerprint but whose qrels were edited is refused."""
    copy = tmp_path / "edited"
    shutil.copytree(env["ds"].path, copy)
    qrels = copy / "broader/en/qrels/test.tsv"
    lines = qrels.read_text().splitlines(keepends=True)
    head, grade = lines[1].rstrip("\n").rsplit("\t", 1)
    lines[1] = f"{head}\t{'3' if grade != '3' else '2'}\n"
    qrels.write_text("".join(lines))
    refused(env, fresh_run(env), "has fingerprint", "but the leaderboard's benchmark is", dataset=copy)


def test_accepted_run_is_the_control(env):
    """The untouched copy of the same run is accepted (so the refusals above are about the one change)."""
    run = fresh_run(env)
    result = submit(run, env["board"], dataset=env["ds"].path)
    assert result.path.exists()
    assert gzip.decompress((run / FILE).read_bytes())  # the run itself is left as it was
