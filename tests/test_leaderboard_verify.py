"""Leaderboard: ``--verify`` refuses an entry edited by hand, with one line naming the entry file and what is wrong.

A board of two real entries (the zero-shot run and a perturbed LoRA copy, small dataset) is copied per test and
one entry is edited. Forged rankings are written the way a careful forger would: content hash, id, file name and
pages recomputed, so only the per-query checks can catch them. Malformed fields go through the same reader that
``--render``, the plain listing and ``submit`` use. The cases the issue names go through the console script
(``CLI``: exit status 2, one line, no traceback); the others call :func:`verify` in-process (``IN_PROCESS``).
Either way the board is byte-identical afterwards.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import assert_one_line_error
from leaderboard_fixtures import evaluated_run, make_run, new_board, snapshot

from elsst_bench import atomic
from elsst_bench.errors import DataError
from elsst_bench.leaderboard import read_benchmark, store, submit, verify
from elsst_bench.leaderboard.benchmark import reference
from elsst_bench.leaderboard.codec import content_sha256, decode_rows, encode_rows
from elsst_bench.leaderboard.entry import entry_id, filename

CLI, IN_PROCESS = True, False


@pytest.fixture(scope="module")
def board(small_dataset, tmp_path_factory):
    """Zero-shot all-MiniLM-L6-v2 and one LoRA seed (all tasks, en + de)."""
    root = tmp_path_factory.mktemp("lb-verify")
    base = evaluated_run(str(small_dataset.path))
    board = new_board(root, small_dataset)
    for run in (base, make_run(base, root / "lora-s0", seed=0)):
        submit(run, board, dataset=small_dataset.path)
    return board


def copy_of(board: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(board, tmp_path / "board", ignore=shutil.ignore_patterns(".lock")))


def files(board: Path) -> dict[str, bytes]:
    """The board's files but the lock (which ``--render`` takes before it reads the entries)."""
    return {k: v for k, v in snapshot(board).items() if k != store.LOCK}


def lora_entry(board: Path) -> tuple[Path, dict]:
    return next((p, e) for p, e in store.load_entries(board) if e["adapter"] == "lora")


def refused(board: Path, ds, cli, *fragments: str, via_cli: bool = True) -> str:
    """``--verify`` refuses with one line holding every fragment; the board is byte-identical afterwards."""
    before = snapshot(board)
    if via_cli:
        line = assert_one_line_error(cli("leaderboard", "--verify", "--leaderboard", board, "--dataset", ds.path),
                                     *fragments)
    else:
        with pytest.raises(DataError) as err:
            verify(board, ds.path)
        line = str(err.value)
        assert "\n" not in line
        for fragment in fragments:
            assert fragment in line, line
    assert snapshot(board) == before
    return line


# ----- forged rankings: (change(rows, ref) -> rows, expected(ref) -> fragment) on broader/en -------------------
def first_with_a_relevant_concept(ref) -> tuple[int, str, str]:
    return next((i, q, min(c for c, g in ref.qrels[q].items() if g >= 3 and c in ref.row))
                for i, q in enumerate(ref.qids) if any(g >= 3 and c in ref.row for c, g in ref.qrels[q].items()))


def repeat_a_relevant_concept(rows, ref):
    """The issue's forgery: every query's top 10 is one of its relevant concepts, ten times (nDCG@10 above 1)."""
    for i, q in enumerate(ref.qids):
        relevant = sorted(c for c, g in ref.qrels[q].items() if g >= 3 and c in ref.row)
        if relevant:
            rows[i] = ref.row[relevant[0]]
    return rows


def own_concept_first(rows, ref):
    rows[0, 0] = ref.row[ref.own[ref.qids[0]]]
    return rows


def past_the_pool(rows, ref):
    rows[0, 3] = len(ref.pool) + 5
    return rows


FORGERIES = {
    "a relevant concept ten times": (
        repeat_a_relevant_concept,
        lambda ref: "broader/en: query {1} ranks concept {2} twice".format(*first_with_a_relevant_concept(ref))),
    "the query's own concept": (
        own_concept_first,
        lambda ref: f"broader/en: query {ref.qids[0]} ranks its own concept {ref.own[ref.qids[0]]}, which the "
                    "broader task never retrieves"),
    "a concept outside the pool": (
        past_the_pool,
        lambda ref: f"broader/en: query {ref.qids[0]} ranks pool row {len(ref.pool) + 5} (rank 4), outside the "
                    f"{len(ref.pool)} concepts of the broader/en pool"),
    "a missing query": (
        lambda rows, ref: rows[:-1],
        lambda ref: f"broader/en stores {len(ref.qids) - 1} queries, the benchmark has {len(ref.qids)}"),
}


def forge(board: Path, ds, change) -> tuple[Path, object]:
    """Change the LoRA entry's broader/en top 10 and recompute its hash (where the rows allow), id, file name and
    pages. Returns the new entry file and the broader/en reference."""
    path, entry = lora_entry(board)
    runs = entry["rankings"]["runs"]
    refs = {(t, lang): reference(ds, t, lang, "test") for t, per in runs.items() for lang in per}
    rows = {tl: decode_rows(runs[tl[0]][tl[1]], "x") for tl in refs}
    rows[("broader", "en")] = change(rows[("broader", "en")].copy(), refs[("broader", "en")])
    runs["broader"]["en"] = encode_rows(rows[("broader", "en")], 1 << 16)
    try:
        entry["rankings"]["sha256"] = content_sha256({tl: (refs[tl].qids, refs[tl].pool, rows[tl]) for tl in refs})
    except IndexError:  # a row past the pool has no concept id to hash
        pass
    entry["id"] = entry_id(entry["model"], entry["adapter"], entry["seed"], entry["rankings"]["sha256"])
    path.unlink()
    forged = path.parent / filename(entry)
    forged.write_text(atomic.dumps_json(entry), encoding="utf-8")
    store.rerender(board, read_benchmark(board))
    return forged, refs[("broader", "en")]


@pytest.mark.parametrize("change, expected", list(FORGERIES.values()), ids=list(FORGERIES))
def test_forged_rankings_are_refused(board, small_dataset, tmp_path, cli, change, expected):
    """Hash and id recomputed, pages re-rendered: the per-query checks of submit still refuse the entry."""
    copy = copy_of(board, tmp_path)
    forged, ref = forge(copy, small_dataset, change)
    refused(copy, small_dataset, cli, forged.name, expected(ref))


# ----- malformed or inconsistent fields: (edit(entry), fragment, via) ----------------------------------------
def put(dotted: str, value):
    def edit(entry):
        *parents, last = dotted.split(".")
        for key in parents:
            entry = entry[key]
        entry[last] = value
    return edit


def drop(dotted: str):
    def edit(entry):
        *parents, last = dotted.split(".")
        for key in parents:
            entry = entry[key]
        del entry[last]
    return edit


FIELD_EDITS = {
    # the cases the issue names, through the console script
    "rankings not an object": (put("rankings", ["broader"]), "rankings must be an object, got a list", CLI),
    "model a string": (put("model", "all-MiniLM-L6-v2"), "model must be an object, got 'all-MiniLM-L6-v2'", CLI),
    "trainable_params a string": (
        put("trainable_params", "73728"), "trainable_params must be a non-negative integer, got '73728'", CLI),
    "no runs": (drop("rankings.runs"), "lacks rankings.runs", CLI),
    "an option of the wrong type": (put("options.rank", "8"), "options.rank must be an integer, got '8'", CLI),
    "a date that is not a day": (put("submitted", "2026-13-01"), "submitted '2026-13-01' is not a date", CLI),
    "a date after today": (put("submitted", "2999-01-01"), "submitted 2999-01-01 is after today", CLI),
    "no trainable params for a trained adapter": (
        put("trainable_params", 0), "trainable_params is 0, but adapter lora trains parameters", CLI),
    # the other checks, in-process
    "a ranking blob not an object": (
        put("rankings.runs.broader.en", "AAAA"), "rankings.runs.broader.en must be an object, got 'AAAA'", IN_PROCESS),
    "scores not an object": (put("scores", 0.9), "scores must be a non-empty object, got 0.9", IN_PROCESS),
    "a score not a number": (put("scores.broader.en.mrr@10", "high"),
                             "scores.broader.en.mrr@10 must be a finite number or null, got 'high'", IN_PROCESS),
    "options not an object": (put("options", ["rank", 8]), "options must be an object, got a list", IN_PROCESS),
    "an unknown option": (put("options.rnak", 8), "options.rnak is not a field of an entry's options", IN_PROCESS),
    "a run field of the wrong type": (
        put("run.train_seconds", "fast"), "run.train_seconds must be a finite number, got 'fast'", IN_PROCESS),
    "versions not an object": (put("versions", "1.0"), "versions must be an object, got '1.0'", IN_PROCESS),
    "seed a string": (put("seed", "0"), "seed must be an integer or null, got '0'", IN_PROCESS),
    "a name on two lines": (put("name", "lora\nbest"), "name must be one line of 1 to 120 characters", IN_PROCESS),
    "a date in another format": (
        put("submitted", "2 Dec 2026"), "submitted must be a date YYYY-MM-DD, got '2 Dec 2026'", IN_PROCESS),
    "a field of no entry": (put("note", "x"), "note is not a field of an entry (schema 1)", IN_PROCESS),
    "a missing field": (drop("submitted"), "lacks submitted", IN_PROCESS),
}


@pytest.mark.parametrize("edit, fragment, via_cli", list(FIELD_EDITS.values()), ids=list(FIELD_EDITS))
def test_a_malformed_entry_is_refused(board, small_dataset, tmp_path, cli, edit, fragment, via_cli):
    copy = copy_of(board, tmp_path)
    path, entry = lora_entry(copy)
    edit(entry)
    path.write_text(atomic.dumps_json(entry), encoding="utf-8")
    refused(copy, small_dataset, cli, path.name, fragment, via_cli=via_cli)


def test_a_shown_field_edited_without_rendering_is_refused(board, small_dataset, tmp_path, cli):
    """A well-typed edit of a field the id does not cover (the learning rate, shown in the setup) changes the
    row: the committed pages no longer match the entries."""
    copy = copy_of(board, tmp_path)
    path, entry = lora_entry(copy)
    entry["options"]["lr"] = 0.5
    path.write_text(atomic.dumps_json(entry), encoding="utf-8")
    refused(copy, small_dataset, cli, "README.md is out of date with", "run `elsst-bench leaderboard --render")


def test_a_malformed_entry_stops_render_and_listing_too(board, small_dataset, tmp_path, cli):
    """The same reader serves --render and the plain listing: one line, nothing rewritten."""
    copy = copy_of(board, tmp_path)
    path, entry = lora_entry(copy)
    entry["rankings"] = "none"
    path.write_text(atomic.dumps_json(entry), encoding="utf-8")
    (copy / "README.md").write_text("stale\n")
    before = files(copy)
    for args in (["--render"], []):
        assert_one_line_error(cli("leaderboard", *args, "--leaderboard", copy), path.name,
                              "rankings must be an object, got 'none'")
    path.write_text("[]\n")
    assert_one_line_error(cli("leaderboard", "--render", "--leaderboard", copy), path.name, "is not a JSON object")
    assert files(copy) == {**before, str(path.relative_to(copy)): b"[]\n"}


def test_the_untouched_copy_verifies(board, small_dataset, tmp_path):
    """The control: the copied board passes, so each refusal above is about its one edit."""
    assert verify(copy_of(board, tmp_path), small_dataset.path).startswith(f"{tmp_path / 'board'}: 2 entries")


# ----- trainable_params: re-counted from the base model, adapter and options the entry states -------------------
def rewrite(board: Path, path: Path, entry: dict) -> Path:
    """Store an edited entry as a careful forger would: id and file name recomputed, pages re-rendered. Returns
    the new entry file."""
    entry["id"] = entry_id(entry["model"], entry["adapter"], entry["seed"], entry["rankings"]["sha256"])
    path.unlink()
    edited = path.parent / filename(entry)
    edited.write_text(atomic.dumps_json(entry), encoding="utf-8")
    store.rerender(board, read_benchmark(board))
    return edited


def test_a_hand_edited_trainable_params_is_refused(board, small_dataset, tmp_path, cli):
    """Every other check passes (the count is covered by neither the id nor the rankings, and the pages show the
    edited number): the count the entry's setup trains does not."""
    copy = copy_of(board, tmp_path)
    path, entry = lora_entry(copy)
    entry["trainable_params"] = 99_999
    edited = rewrite(copy, path, entry)
    refused(copy, small_dataset, cli, edited.name,
            "trainable_params is 99999, but lora at rank 8 on sentence-transformers/all-MiniLM-L6-v2 trains 331776")


def test_a_base_model_that_is_not_here_is_refused(board, small_dataset, tmp_path, cli):
    """Without its base model the count cannot be made: one line, not a silent pass."""
    copy = copy_of(board, tmp_path)
    path, entry = lora_entry(copy)
    entry["model"] = {"name": "/nowhere/encoder", "sha256": None}
    edited = rewrite(copy, path, entry)
    refused(copy, small_dataset, cli, edited.name,
            "cannot re-count trainable_params: base model /nowhere/encoder is not on this machine")


def test_a_method_of_its_own_is_taken_as_stated_and_said_so(board, small_dataset, tmp_path):
    """A submitter's own method cannot be re-counted; the summary line says how many entries that is."""
    copy = copy_of(board, tmp_path)
    path, entry = lora_entry(copy)
    entry["adapter"], entry["trainable_params"] = "team-x-adapter", 12_345
    rewrite(copy, path, entry)
    summary = verify(copy, small_dataset.path)
    assert "trainable_params re-counted but for 1 entry of methods elsst-bench does not implement" in summary
    assert "trainable_params re-counted;" in verify(board, small_dataset.path)  # the untouched board: all counted


#: Setups beyond each method's default (rank 8, its default options) — a new method is covered by its default
#: setup without editing this table. ``exact``: the entry determines the count; otherwise data it does not hold
#: (EigenLoRAx's sources without ``k``, GeLoRA's texts in mode=bound) and the built count must be one of those
#: re-counted.
SETUPS = {
    "lora": [({"budget": "lora-r4"}, True), ({"rank": 4, "options": {"target_modules": ["query", "value"]}}, True)],
    "orthogeolora": [({"budget": "lora-r8", "options": {"init": "spectral"}}, True)],
    "gelora": [({"budget": "lora-r8"}, True), ({"options": {"mode": "bound"}}, False)],
    "smoa": [({"options": {"k": 4}}, True), ({"budget": "lora-r4", "options": {"k": 3}}, True)],
    "eigenlorax": [({"options": {"k": 4, "k_gs": 2}}, True), ({"budget": "lora-r8"}, True)],
    "pica": [({"options": {"shared": False}}, True), ({"budget": "lora-r8"}, True)],
    "dora": [({"budget": "lora-r8"}, True)],  # the solver sets a rank_pattern
    "pissa": [({"budget": "lora-r4", "options": {"alpha": 4}}, True)],
    "vera": [({"budget": "lora-r8"}, True)],
    "hra": [({"rank": 4}, True), ({"budget": "lora-r8"}, True)],
}


def recount_cases():
    from elsst_bench.adapters import available_methods

    cases = []
    for name in available_methods():  # every method of the registry
        default = ({}, name != "eigenlorax")  # EigenLoRAx's k comes from its sources unless named
        for k, (setup, exact) in enumerate([default, *SETUPS.get(name, [])]):
            cases.append(pytest.param(name, setup, exact, id=f"{name}-{k}"))
    return cases


@pytest.fixture(scope="module")
def tiny_lora_sources(tmp_path_factory):
    """Two LoRA r=8 runs' adapters on the tests' tiny base (random B): EigenLoRAx's sources."""
    from adapter_fixtures import random_lora_sources

    from elsst_bench.models import load_sentence_transformer

    return random_lora_sources(tmp_path_factory.mktemp("tiny-sources"), lambda: load_sentence_transformer(None))


@pytest.mark.parametrize("name, setup, exact", recount_cases())
def test_the_recount_is_what_training_builds(name, setup, exact, tiny_lora_sources):
    """For every method of the registry: the count re-made from an entry's setup equals the count ``train``
    records after building the method (``_make_trainable``) on the tests' tiny base; one more is refused."""
    from types import SimpleNamespace

    from adapter_fixtures import PAIRS, TEXTS

    from elsst_bench.adapters import method_info
    from elsst_bench.leaderboard.params import check_trainable_params, expected_trainable_params
    from elsst_bench.models import load_sentence_transformer, model_identity, portable_identity
    from elsst_bench.training.run import _make_trainable

    identity = portable_identity(model_identity(None))  # the tiny base ($ELSST_BENCH_MODEL)
    options = {"rank": setup.get("rank", 8), "budget": setup.get("budget"), "options": setup.get("options", {})}
    info = method_info(name)
    built = 0
    if info.trains:
        anchors = TEXTS + [t for pair in PAIRS for t in pair]
        pairs = SimpleNamespace(anchors=anchors, positives=anchors[1:] + anchors[:1])
        built = _make_trainable(load_sentence_transformer(None), info, {"adapter": name, "model": identity, **options},
                                pairs, tiny_lora_sources)
    entry = {"model": {"name": identity["name"], "sha256": identity["sha256"]}, "adapter": name,
             "options": {k: v for k, v in options.items() if v is not None}, "trainable_params": built}
    expected = expected_trainable_params(entry)
    assert built in expected.counts and (len(expected.counts) == 1) == exact, (built, expected)
    check_trainable_params(entry, "entry.json")
    with pytest.raises(DataError, match=rf"^entry.json: trainable_params is {built + 1}, but {name}"):
        check_trainable_params({**entry, "trainable_params": built + 1}, "entry.json")


def test_check_rows_refuses_exactly_what_check_ranked_refuses_and_with_its_words():
    """The array check of stored rankings against the per-query rules' own home, on random rankings of a
    hand-made pool with faults put in at random (a row outside the pool, a concept twice, the query's own)."""
    import numpy as np

    from elsst_bench.leaderboard.benchmark import Reference
    from elsst_bench.leaderboard.validate import check_ranked, check_rows

    rng = np.random.default_rng(0)
    pool = tuple(f"c{i:03d}" for i in range(40))
    qids = tuple(f"q{i:02d}" for i in range(12))
    for own in (None, {q: pool[i] for i, q in enumerate(qids)}):
        ref = Reference("broader", "en", pool, {c: i for i, c in enumerate(pool)}, qids, {}, own)
        outcomes = set()
        for trial in range(300):
            rows = np.stack([rng.choice([r for r in range(40) if own is None or r != i], 10, replace=False)
                             for i in range(len(qids))])
            for _ in range(trial % 3):  # 0, 1 or 2 faults
                q, k = rng.integers(len(qids)), rng.integers(10)
                rows[q, k] = [-1, 40 + int(rng.integers(5)), rows[q, (k + 1) % 10], q][rng.integers(4)]
            expected = None
            try:
                for qid, ranked in zip(qids, rows.tolist()):
                    check_ranked("here", qid, ranked, ref)
            except DataError as err:
                expected = str(err)
            try:
                check_rows("here", qids, rows, ref)
                got = None
            except DataError as err:
                got = str(err)
            assert got == expected, rows
            outcomes.add(expected.split(" ranks ")[1].split()[0] if expected else None)
        assert None in outcomes and "pool" in outcomes and "concept" in outcomes  # clean arrays and each fault met
        assert ("its" in outcomes) == (own is not None)
