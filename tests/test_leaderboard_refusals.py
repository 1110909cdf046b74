"""Leaderboard: a run that cannot be trusted is refused with one clear line, and the board stays byte-identical.

Every case starts from a real evaluated run (zero-shot, small dataset) and breaks one thing. The cases named
in the issue go through the console script (``CLI``: exit status 2, one line on stderr, no traceback); the others
call the same code in-process (``IN_PROCESS``: the message and the untouched board are what is checked).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_one_line_error
from leaderboard_fixtures import evaluated_run, make_run, new_board, read_run, snapshot, write_run

from elsst_bench.errors import DataError
from elsst_bench.leaderboard import submit

FILE = "rankings/broader.en.test.tsv.gz"
BOGUS = "00000000-0000-4000-8000-000000000000"
CLI, IN_PROCESS = True, False


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


def edit_config(run: Path, edit) -> None:
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))


def refused(env, run: Path, *fragments: str, cli=None, dataset=None) -> str:
    """The submission is refused with one line holding every fragment (through the console script when ``cli``
    is given), and the board is byte-identical afterwards."""
    before = snapshot(env["board"])
    dataset = dataset or env["ds"].path
    if cli is not None:
        message = assert_one_line_error(cli("submit", run, "--leaderboard", env["board"], "--dataset", dataset),
                                        *fragments)
    else:
        with pytest.raises(DataError) as err:
            submit(run, env["board"], dataset=dataset)
        message = str(err.value)
        assert "\n" not in message
        for fragment in fragments:
            assert fragment in message, message
    assert snapshot(env["board"]) == before
    return message


# ----- one edit of a ranking file: (edit(rows, ds) -> rows, expected(rows, ds) -> fragments, via) ---------------
# ``rows`` are the lines of the untouched file (query, Q0, concept, rank, score, run), best first per query; row 0
# is the first query's top concept. The expected fragments are computed from the untouched rows.
def set_cell(row: int, field: int, value):
    """rows[row][field] = value (``value(rows)`` when it is callable)."""
    def edit(rows, ds):
        rows[row][field] = value(rows) if callable(value) else value
        return rows
    return edit


def first_query(rows):
    return rows[0][0]


def keep_seven_of_the_first_query(rows, ds):
    return [r for r in rows if r[0] != first_query(rows) or int(r[3]) <= 7]


def drop_three_queries(rows, ds):
    drop = sorted({r[0] for r in rows})[:3]
    return [r for r in rows if r[0] not in drop]


def missing_three(rows, ds):
    queries = sorted({r[0] for r in rows})
    return (f"{FILE} is missing 3 of {len(queries)} test queries (first: {queries[0]})",)


def drop_fields_of_line_6(rows, ds):
    rows[5] = rows[5][:4]
    return rows


def add_a_101st_concept(rows, ds):
    qid = first_query(rows)
    pool = sorted(ds.load("broader", "en").corpus)
    ranked = {r[2] for r in rows if r[0] == qid}
    extra = next(c for c in pool if c not in ranked and c != qid)
    last = [r for r in rows if r[0] == qid][-1]
    return rows + [[qid, "Q0", extra, "101", last[4], "run"]]


def train_query(ds) -> str:
    return sorted(ds.load("broader", "en").qrels["train"])[0]


def first_query_renamed_to_a_train_query(rows, ds):
    qid = first_query(rows)
    return [[train_query(ds), *r[1:]] if r[0] == qid else r for r in rows]


RANKING_EDITS = {
    # the cases the issue names, through the console script
    "query truncated to seven concepts": (
        keep_seven_of_the_first_query,
        lambda rs, ds: (f"{FILE}: query {first_query(rs)} ranks 7 concepts (at least 10 required)",), CLI),
    "unknown concept id": (
        set_cell(2, 2, BOGUS), lambda rs, ds: (f"query {rs[2][0]} ranks unknown concept id {BOGUS} (rank 3)",), CLI),
    "missing queries": (drop_three_queries, missing_three, CLI),
    # the other checks, in-process
    "concept ranked twice": (
        set_cell(4, 2, lambda rs: rs[1][2]), lambda rs, ds: (f"query {rs[1][0]} ranks concept {rs[1][2]} twice",),
        IN_PROCESS),
    "more than 100 concepts": (
        add_a_101st_concept, lambda rs, ds: (f"query {first_query(rs)} ranks 101 concepts (at most 100 allowed)",),
        IN_PROCESS),
    "own concept in broader": (  # broader: the query id is its concept's id
        set_cell(0, 2, lambda rs: rs[0][0]),
        lambda rs, ds: (f"query {first_query(rs)} ranks its own concept {first_query(rs)}, which the broader task "
                        "never retrieves",), IN_PROCESS),
    "query outside the test split": (
        first_query_renamed_to_a_train_query,
        lambda rs, ds: (f"query {train_query(ds)} is not a test query of broader/en",), IN_PROCESS),
    "ranks not consecutive": (
        set_cell(3, 3, "40"), lambda rs, ds: (f"query {first_query(rs)} skips rank 4",), IN_PROCESS),
    "scores increasing with rank": (
        set_cell(2, 4, "99.0"), lambda rs, ds: (f"query {first_query(rs)} scores rank 3 higher than rank 2",),
        IN_PROCESS),
    "malformed line": (drop_fields_of_line_6, lambda rs, ds: (FILE, "line 6 has 4 fields, expected 6"), IN_PROCESS),
}


@pytest.mark.parametrize("edit, expected, via_cli", list(RANKING_EDITS.values()), ids=list(RANKING_EDITS))
def test_an_edited_ranking_file_is_refused(env, cli, edit, expected, via_cli):
    run = fresh_run(env)
    rows = read_run(run / FILE)
    fragments = expected([list(r) for r in rows], env["ds"])
    write_run(run / FILE, edit(rows, env["ds"]))
    refused(env, run, *fragments, cli=cli if via_cli else None)


def test_truncated_gzip_file(env, cli):
    run = fresh_run(env)
    data = (run / FILE).read_bytes()
    (run / FILE).write_bytes(data[: len(data) // 2])
    refused(env, run, FILE, "not a readable gzip TREC run file", cli=cli)


# ----- one edit of config.json: (edit(config), fragments, via) --------------------------------------------------
OTHER_FINGERPRINT = "1234567890ab" + "0" * 52
LORA_R8 = "lora at rank 8 on sentence-transformers/all-MiniLM-L6-v2"


def pop(key):
    return lambda config: config.pop(key)


def update(**values):
    return lambda config: config.update(values)


CONFIG_EDITS = {
    # the cases the issue names, through the console script
    "other dataset fingerprint": (
        update(dataset_fingerprint=OTHER_FINGERPRINT),
        ("was prepared on dataset fingerprint 1234567890ab… but the benchmark is", "{fingerprint}",
         "elsst-bench prepare"), CLI),
    "missing trainable_params": (pop("trainable_params"), ("config.json lacks trainable_params",), CLI),
    # the other checks, in-process
    **{f"missing {key}": (pop(key), (f"config.json lacks {key}",), IN_PROCESS)
       for key in ("seed", "versions", "model", "adapter", "dataset_fingerprint")},
    "run not complete": (update(status="running"), ("the run is not complete (status: running)",), IN_PROCESS),
    "negative trainable_params": (
        update(trainable_params=-5), ("trainable_params must be a non-negative integer, got -5",), IN_PROCESS),
    "model without a name": (update(model={"sha256": "x"}), ("config.json lacks model.name",), IN_PROCESS),
    "dev-only run": (lambda config: config.setdefault("options", {}).update(test=False),
                     ("is a dev-only run (trained with --no-test): it has no test rankings to submit",), CLI),
    # what --verify would refuse in the stored entry is never written (the same checks: entry.check_shape, and
    # params.check_trainable_params, which re-counts LoRA r=8 on all-MiniLM-L6-v2 from the config's setup)
    "option of the wrong type": (lambda config: config["options"].update(rank="8"),
                                 ("config.json: options.rank must be an integer, got '8'",), IN_PROCESS),
    "no trainable params for a trained adapter": (
        update(trainable_params=0), (f"config.json: trainable_params is 0, but {LORA_R8} trains 331776",),
        IN_PROCESS),
    "trainable params the setup does not train": (
        update(trainable_params=99_999), (f"config.json: trainable_params is 99999, but {LORA_R8} trains 331776",),
        CLI),
    "a rank the method refuses": (
        lambda config: config.update(adapter="hra", trainable_params=1) or config["options"].update(rank=7),
        ("config.json: cannot re-count trainable_params of hra at rank 7 on sentence-transformers/all-MiniLM-L6-v2: "
         "hra needs an even rank",), IN_PROCESS),
    "a base model that is not on this machine": (
        update(model={"name": "/nowhere/encoder", "sha256": None}),
        ("config.json: cannot re-count trainable_params: base model /nowhere/encoder is not on this machine",),
        IN_PROCESS),
}


@pytest.mark.parametrize("edit, fragments, via_cli", list(CONFIG_EDITS.values()), ids=list(CONFIG_EDITS))
def test_an_edited_config_is_refused(env, cli, edit, fragments, via_cli):
    run = fresh_run(env)
    edit_config(run, edit)
    fragments = [f.format(fingerprint=env["ds"].fingerprint[:12]) for f in fragments]
    refused(env, run, *fragments, cli=cli if via_cli else None)


def test_no_config_or_no_run_directory(env):
    run = fresh_run(env)
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
