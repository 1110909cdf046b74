"""Reliability, round two (issue 31): each test is the failure it prevents, numbered as the issue numbers them.
docs/reliability.md lists every bad input the suite tries, by command. The races (1, 2) force their interleaving:
the competing write happens inside the window, not by chance.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import EXE, ENV, assert_one_line_error, run_cli
from leaderboard_fixtures import evaluated_run, make_run, new_board, snapshot

from elsst_bench import atomic, outputs, runs
from elsst_bench.errors import BenchError, DataError
from elsst_bench.training import TrainConfig, train

TINY = dict(languages=["en"], epochs=1, batch_size=8, max_pairs=16, eval_tasks=["broader"])


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def trained(small_dataset, tmp_path_factory) -> Path:
    """A complete tiny LoRA run (tests copy it before changing anything)."""
    out = tmp_path_factory.mktemp("trained2")
    return train(TrainConfig(adapter="lora", dataset=str(small_dataset.path), out=str(out), run_id="lora", **TINY),
                 progress=False)


# ----- 1: the directory swap never deletes what appeared after the check ------------------------------------
def test_a_directory_created_while_building_survives_and_the_swap_is_refused(tmp_path):
    final = tmp_path / "race"
    with pytest.raises(BenchError, match="race changed while elsst-bench was writing it"):
        with atomic.directory(final, outputs.DATASET) as tmp:
            (tmp / "manifest.json").write_text("{}")
            final.mkdir()  # another process, between the command's check and its swap
            (final / "notes.txt").write_text("mine")
    assert _tree(final) == {"notes.txt": b"mine"}
    assert _temporaries(tmp_path) == []


def test_a_file_that_appeared_at_the_target_is_swapped_back(tmp_path):
    final = tmp_path / "race"
    with pytest.raises(BenchError, match="changed while"):
        with atomic.directory(final, outputs.DATASET) as tmp:
            (tmp / "manifest.json").write_text("{}")
            final.write_text("a file, not ours")
    assert final.read_text() == "a file, not ours"


def test_the_swap_still_replaces_what_is_ours(tmp_path):
    final = tmp_path / "ds"
    for content in ("old", "new"):
        with atomic.directory(final, outputs.DATASET) as tmp:
            (tmp / "manifest.json").write_text(content)
    assert _tree(final) == {"manifest.json": b"new"}
    final2 = tmp_path / "empty"
    final2.mkdir()  # an empty directory is replaced even with no kind
    with atomic.directory(final2) as tmp:
        (tmp / "x").write_text("x")
    assert _tree(final2) == {"x": b"x"} and _temporaries(tmp_path) == []


def test_prepare_refuses_when_its_target_is_filled_while_it_builds(small_dataset, tmp_path, cli, monkeypatch,
                                                                   release_path):
    target = tmp_path / "race"
    real = atomic.normalize_modes

    def built_then_race(path):  # the new dataset is complete; the swap comes next
        real(path)
        target.mkdir()
        (target / "notes.txt").write_text("mine")

    monkeypatch.setattr(atomic, "normalize_modes", built_then_race)
    result = cli("prepare", "--source", release_path, "--out", target, "-l", "en", "-t", "broader")
    assert_one_line_error(result, "changed while elsst-bench was writing it")
    assert _tree(target) == {"notes.txt": b"mine"} and _temporaries(tmp_path) == []


# ----- 2: a run directory has one owner --------------------------------------------------------------------
def _hold(path: Path) -> subprocess.Popen:
    """Another process that owns ``path`` (a run directory) until it is killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from elsst_bench import runs
        with runs.owner({str(path)!r}):
            print("held", flush=True)
            time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, **ENV})
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_train_of_the_same_run_refuses_while_the_first_owns_it(small_dataset, tmp_path, cli):
    out = tmp_path / "runs"
    holder = _hold(out / "lora-s0")
    try:
        result = cli("train", "--adapter", "lora", "--dataset", small_dataset.path, "--runs-dir", out, "--run-id",
                     "lora-s0", "-l", "en", "--max-pairs", "8", "--epochs", "1", "--batch-size", "8",
                     "--eval-tasks", "broader", "--quiet")
        assert_one_line_error(result, f"run {out / 'lora-s0'} is being written by another elsst-bench process")
        assert not (out / "lora-s0").exists()
    finally:
        holder.kill()
        holder.wait()
    # the owner's death releases the lock (flock): the run now trains
    result = cli("train", "--adapter", "lora", "--dataset", small_dataset.path, "--runs-dir", out, "--run-id", "lora-s0",
                 "-l", "en", "--max-pairs", "8", "--epochs", "1", "--batch-size", "8", "--eval-tasks", "broader",
                 "--quiet")
    assert result.returncode == 0, result.stderr
    assert runs.is_complete(out / "lora-s0")


def test_evaluate_refuses_a_run_another_process_owns(trained, small_dataset, tmp_path, cli):
    run = tmp_path / "lora"
    shutil.copytree(trained, run)
    before = _tree(run)
    holder = _hold(run)
    try:
        assert_one_line_error(cli("evaluate", run, "--dataset", small_dataset.path, "-t", "broader", "-l", "en"),
                              "is being written by another")
    finally:
        holder.kill()
        holder.wait()
    assert _tree(run) == before


# ----- 3, 4: lookalike names, forged rows, terminal escapes, oversized names ----------------------------------
@pytest.fixture(scope="module")
def lb(small_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("lb-two")
    base = evaluated_run(str(small_dataset.path))
    return {"root": root, "base": base, "board": new_board(root, small_dataset), "ds": small_dataset, "n": 0}


def _run(lb, **kwargs) -> Path:
    lb["n"] += 1
    return make_run(lb["base"], lb["root"] / f"case{lb['n']}", seed=200 + lb["n"], **kwargs)


def _edit(run: Path, edit) -> Path:
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.mark.parametrize("adapter", ["lora ", "LoRA", "l\u043era", "lora\n| 1 | fake |"])
def test_a_lookalike_adapter_name_is_refused(lb, adapter):
    from elsst_bench.leaderboard import submit

    run = _run(lb, adapter=adapter, trainable_params=8)
    before = snapshot(lb["board"])
    with pytest.raises(DataError, match="adapter must be a canonical method name"):
        submit(run, lb["board"], dataset=lb["ds"].path)
    assert snapshot(lb["board"]) == before


def test_an_unknown_method_is_shown_as_unknown_never_as_a_registry_method(lb):
    from elsst_bench.leaderboard import submit

    from elsst_bench.leaderboard import store, tables
    from elsst_bench.leaderboard.render import METHOD_COLORS, colors

    run = _run(lb, adapter="mymethod", trainable_params=8)
    submit(run, lb["board"], dataset=lb["ds"].path)
    assert "| mymethod (not in the registry) (r8 · lr 0.003 · 3 ep" in (lb["board"] / "README.md").read_text()
    assert "mymethod (not in the registry)" in (lb["board"] / "index.html").read_text()
    shown = colors(tables([e for _, e in store.load_entries(lb["board"])]))
    assert shown["mymethod"] not in METHOD_COLORS.values()


@pytest.mark.parametrize("name, fragment", [
    ("e5\n| 1 | forged | lora | 8 |", "model.name must be one line"),
    ("\x1b[2J\x1b[Hcleared", "model.name must be one line"),
    ("x" * 1_000_000, "model.name must be one line of 1 to 200"),
    ("a\u202eevil", "model.name must be one line"),
])
def test_a_model_name_that_would_forge_the_board_is_refused(lb, cli, name, fragment):
    run = _edit(_run(lb), lambda c: c["model"].update(name=name))
    before = snapshot(lb["board"])
    result = cli("submit", run, "--leaderboard", lb["board"], "--dataset", lb["ds"].path)
    line = assert_one_line_error(result, fragment)
    assert "\x1b" not in line and len(line) < 1000
    assert snapshot(lb["board"]) == before


@pytest.mark.parametrize("name", ["\x1b[2J", "nul\x00", "two\nlines", "rtl\u202e"])
def test_a_display_name_with_control_characters_is_refused(lb, cli, name):
    result = cli("submit", _run(lb), "--leaderboard", lb["board"], "--dataset", lb["ds"].path, "--name", name)
    line = assert_one_line_error(result, "--name must be one line")
    assert "\x1b" not in line and "\x00" not in line


def test_a_control_character_anywhere_in_a_stored_entry_is_refused_on_reading(lb, cli):
    from elsst_bench.leaderboard import submit

    board = new_board(lb["root"] / "escaped", lb["ds"])
    path = submit(_run(lb), board, dataset=lb["ds"].path).path
    entry = json.loads(path.read_text())
    entry["versions"]["torch"] = "2.13\x1b[31m"
    path.write_text(json.dumps(entry))
    assert_one_line_error(cli("leaderboard", "--leaderboard", board), "versions.torch must be one line")


def test_a_long_but_valid_model_name_gives_a_file_name_the_file_system_takes(lb):
    from elsst_bench.leaderboard import submit

    run = _edit(_run(lb, adapter="mymethod", trainable_params=8), lambda c: c["model"].update(name="m" * 200))
    path = submit(run, lb["board"], dataset=lb["ds"].path).path
    assert path.is_file() and len(path.name.encode()) < 255


# ----- 5: benchmark.json is validated like every other file a user hands in -----------------------------------
@pytest.mark.parametrize("edit, fragment", [
    ({"dataset_id": "../../../../tmp/x"}, "dataset_id must be a plain name"),
    ({"split": None}, "split must be one of train, dev, test"),
    ({"fingerprint": 5}, "fingerprint must be 64 hex digits"),
    ({"primary_metric": ["x"]}, "primary_metric must be a metric"),
    ({"extra": 1}, "must be an object of exactly"),
])
def test_a_forged_benchmark_file_is_refused_and_nothing_is_written(lb, tmp_path, cli, edit, fragment):
    board = tmp_path / "lb"
    board.mkdir()
    bench = json.loads((lb["board"] / "benchmark.json").read_text())
    (board / "benchmark.json").write_text(json.dumps({**bench, **edit}))
    before = snapshot(tmp_path)
    assert_one_line_error(cli("leaderboard", "--verify", "--leaderboard", board), fragment)
    assert snapshot(tmp_path) == before


# ----- 6: non-finite weights are never complete, never exported ---------------------------------------------
def test_a_run_whose_weights_became_nan_is_not_marked_complete(small_dataset, tmp_path, monkeypatch):
    import torch

    from elsst_bench.training import run as run_module

    real = run_module._fit

    def fit_to_nan(*args, **kwargs):
        model, info = real(*args, **kwargs)
        with torch.no_grad():
            next(p for p in model.parameters() if p.requires_grad).fill_(float("nan"))
        return model, info

    monkeypatch.setattr(run_module, "_fit", fit_to_nan)
    with pytest.raises(BenchError, match="non-finite weights"):
        train(TrainConfig(adapter="lora", dataset=str(small_dataset.path), out=str(tmp_path), run_id="nan", **TINY),
              progress=False)
    assert runs.read_config(tmp_path / "nan")["status"] == "running"
    assert not (tmp_path / "nan" / runs.METRICS_FILE).exists()


def test_export_and_inspect_refuse_a_run_with_non_finite_weights(trained, tmp_path, cli):
    from safetensors.numpy import load_file, save_file

    run = tmp_path / "lora"
    shutil.copytree(trained, run)
    weights = run / "adapter" / "adapter.safetensors"
    tensors = load_file(str(weights))
    first = sorted(tensors)[0]
    tensors[first] = np.full_like(tensors[first], np.inf)
    save_file(tensors, str(weights))
    assert_one_line_error(cli("export", run, "--merged", tmp_path / "merged"), "non-finite weights")
    assert not (tmp_path / "merged").exists()
    assert_one_line_error(cli("inspect", run, "--no-plots"), "non-finite weights")


# ----- 7, 9: an evaluation's files change together or not at all ---------------------------------------------
@pytest.fixture(scope="module")
def evaluation(small_dataset, trained):
    from elsst_bench.evaluation import evaluate_model
    from elsst_bench.models import load_sentence_transformer

    model = load_sentence_transformer(os.environ["ELSST_BENCH_MODEL"])
    return evaluate_model(model, small_dataset, split="test", tasks=["broader", "synonym"], languages=["en", "de"],
                          identity={"name": "tiny"})


def _stale_run(trained: Path, evaluation, tmp_path: Path) -> Path:
    """A run whose rankings and metrics are an older evaluation's (every ranking file marked)."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    evaluation.write(run)
    for path in (run / runs.RANKINGS).iterdir():
        path.write_bytes(b"old " + path.name.encode())
    (run / "metrics.json").write_text('{"old": true}')
    return run


def test_an_interrupt_while_the_rankings_are_swapped_in_lands_after_all_of_them(trained, evaluation, tmp_path,
                                                                              monkeypatch):
    run = _stale_run(trained, evaluation, tmp_path)
    real_replace = os.replace
    calls = []

    def replace_then_ctrl_c(src, dst):
        if Path(dst).parent == run / runs.RANKINGS:  # a staged ranking file moved into place
            calls.append(dst)
            if len(calls) == 1:
                # Ctrl-C as the first one lands, to this (the main) thread: a process-directed kill may be taken by
                # another thread and reach Python only after the block, which made this test flaky under load
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_ctrl_c)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's, as in the console script (conftest restores)
    with pytest.raises(KeyboardInterrupt):
        evaluation.write(run)
    assert len(calls) == len(evaluation.rankings)
    assert not any(p.read_bytes().startswith(b"old ") for p in (run / runs.RANKINGS).iterdir())
    assert json.loads((run / "metrics.json").read_text()) == evaluation.metrics
    assert _temporaries(run) == []


def test_an_interrupt_while_the_rankings_are_staged_changes_nothing(trained, evaluation, tmp_path, monkeypatch):
    from elsst_bench.evaluation import result as result_module

    run = _stale_run(trained, evaluation, tmp_path)
    before = _tree(run)
    real_write = result_module.write_trec
    calls = []

    def write_then_ctrl_c(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_write(*args)

    monkeypatch.setattr(result_module, "write_trec", write_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        evaluation.write(run)
    assert _tree(run) == before and _temporaries(run) == []


def test_an_interrupted_evaluation_into_a_new_directory_leaves_nothing_and_reruns(evaluation, tmp_path,
                                                                                  monkeypatch):
    from elsst_bench.evaluation import result as result_module

    real_write = result_module.write_trec
    monkeypatch.setattr(result_module, "write_trec", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        evaluation.write(tmp_path / "new")
    assert sorted(os.listdir(tmp_path)) == []
    monkeypatch.setattr(result_module, "write_trec", real_write)
    evaluation.write(tmp_path / "new", records={"config.json": {"kind": "zero-shot"}})
    assert outputs.is_kind(tmp_path / "new", outputs.EVALUATION)
    assert len(list((tmp_path / "new" / runs.RANKINGS).iterdir())) == len(evaluation.rankings)


# ----- 8: an interrupted submit is finished by the next command ---------------------------------------------
def test_a_submission_that_died_between_entry_and_pages_is_finished_by_the_rerun(lb, tmp_path, monkeypatch):
    from elsst_bench.leaderboard import read_benchmark, store, submit

    board = new_board(tmp_path, lb["ds"])
    run = _run(lb)
    real = store.write_rendered
    monkeypatch.setattr(store, "write_rendered", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        submit(run, board, dataset=lb["ds"].path)
    monkeypatch.setattr(store, "write_rendered", real)
    (entry,) = store.entry_paths(board)
    entries = [json.loads(entry.read_text())]
    pages = store.rendered(read_benchmark(board), entries)
    assert (board / "README.md").read_bytes() != pages["README.md"]  # the interrupted state
    with pytest.raises(store.DuplicateEntry, match="README.md and index.html, left stale by an interrupted "
                                                   "submission, were re-rendered"):
        submit(run, board, dataset=lb["ds"].path)
    assert {name: (board / name).read_bytes() for name in pages} == pages
    with pytest.raises(store.DuplicateEntry, match="nothing was changed"):
        submit(run, board, dataset=lb["ds"].path)


# ----- 11: a full disk is one line ------------------------------------------------------------------------------
@contextlib.contextmanager
def file_size_limit(limit: int):
    """This process may write no file past ``limit`` bytes for the block (``RLIMIT_FSIZE``; the write fails with
    EFBIG rather than SIGXFSZ killing the process), then the limit and the signal's handler are as they were. The
    commands run in-process under it (the ``cli`` fixture), their libraries already imported, so that the limit
    meets the command's own writes rather than the caches written at import."""
    import elsst_bench.evaluation  # noqa: F401 - what the commands import lazily, imported before the limit
    import elsst_bench.hf_dataset  # noqa: F401
    import elsst_bench.skos  # noqa: F401
    import elsst_bench.tasks  # noqa: F401

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


#: ``train`` runs as the console script, in a process of its own under the limit set once the libraries are
#: imported: its progress bars are silenced by ``--quiet`` before tqdm is imported, which only a fresh process shows.
_LIMITED = textwrap.dedent("""
    import resource, signal, sys
    import elsst_bench.evaluation, elsst_bench.tasks, elsst_bench.skos, elsst_bench.hf_dataset
    from elsst_bench.cli import main
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.argv = ["elsst-bench", *sys.argv[2:]]
    main()
""")


@pytest.mark.parametrize("command", ["prepare", "export-dataset", "evaluate"])
def test_a_write_the_file_system_refuses_is_one_line_and_leaves_no_temporaries(small_dataset, release_path, tmp_path,
                                                                               command, cli):
    out = tmp_path / "out"
    args = {"prepare": ["prepare", "--source", release_path, "--out", out, "-l", "en", "-t", "broader"],
            "export-dataset": ["export-dataset", out, "--dataset", small_dataset.path, "-t", "broader"],
            "evaluate": ["evaluate", "--dataset", small_dataset.path, "--out", out, "-t", "broader", "-l", "en", "-q",
                         "--no-cache"]}[command]
    with file_size_limit(2048):
        result = cli(*args)
    assert_one_line_error(result, "cannot write", "File too large")
    assert not out.exists() and _temporaries(tmp_path) == []


@pytest.mark.parametrize("command", [pytest.param("train", marks=pytest.mark.slow),  # a process
                                     "export", "evaluate", "submit"])
def test_a_full_disk_in_train_export_evaluate_and_submit_is_one_line_and_loses_nothing(trained, small_dataset, lb,
                                                                                     tmp_path, command, cli):
    """The writers underneath (the Trainer's checkpoints, safetensors, faiss, the board's JSON) wrap the OSError in
    their own exceptions or raise it from deep inside: still one line, and what was there before is unchanged."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    board = new_board(tmp_path / "b", lb["ds"])
    out = tmp_path / "out"
    args = {"train": ["train", "--adapter", "lora", "--dataset", small_dataset.path, "--out", out, "--run-id", "r",
                      "-l", "en", "--epochs", "1", "--batch-size", "8", "--max-pairs", "16", "-q"],
            "export": ["export", run, "--merged", out],
            "evaluate": ["evaluate", run, "--dataset", small_dataset.path, "-q", "--no-cache"],
            "submit": ["submit", _run(lb), "--leaderboard", board, "--dataset", lb["ds"].path]}[command]
    run_before, board_before = snapshot(run), snapshot(board)
    if command == "train":
        result = subprocess.run([sys.executable, "-c", _LIMITED, "4096", *map(str, args)], capture_output=True,
                                text=True, env={**os.environ, **ENV}, timeout=300)
    else:
        with file_size_limit(4096):
            result = cli(*args)
    assert_one_line_error(result, "cannot write")
    assert snapshot(run) == run_before and snapshot(board) == board_before
    assert not (out / "adapter").exists() and not (out / "model.safetensors").exists()
    assert _temporaries(tmp_path) == []


def test_a_board_on_a_read_only_file_system_is_refused_before_scoring(lb, tmp_path):
    """A read-only bind mount (a user namespace: no root needed) rather than file modes, which root ignores."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("no user namespaces here")
    board = new_board(tmp_path, lb["ds"])
    before = snapshot(board)
    script = ('mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"')
    result = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(board), str(EXE), "submit",
                             str(_run(lb)), "--leaderboard", str(board), "--dataset", str(lb["ds"].path)],
                            capture_output=True, text=True, env={**os.environ, **ENV}, timeout=300)
    assert_one_line_error(result, "cannot write", "Read-only file system")
    assert snapshot(board) == before


# ----- 12: deeply nested JSON is one line ------------------------------------------------------------------------
def test_deeply_nested_json_is_refused_in_one_line(trained, small_dataset, lb, tmp_path, cli):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "config.json").write_text("[" * 200_000)
    assert_one_line_error(cli("evaluate", run, "--dataset", small_dataset.path), "nested too deeply")
    assert_one_line_error(cli("submit", run, "--leaderboard", lb["board"]), "nested too deeply")
    board = tmp_path / "lb"
    board.mkdir()
    (board / "benchmark.json").write_text("{\"a\":" * 100_000)
    assert_one_line_error(cli("leaderboard", "--leaderboard", board), "nested too deeply")
    board2 = new_board(tmp_path / "b2", lb["ds"])
    (board2 / "entries" / "x.json").write_text("[" * 200_000)
    assert_one_line_error(cli("leaderboard", "--leaderboard", board2), "nested too deeply")


# ----- 13: a board that cannot be written is refused before any scoring ---------------------------------------
@pytest.mark.parametrize("spoil, fragment", [
    (lambda b: (b / ".lock").unlink(missing_ok=True) or (b / ".lock").symlink_to(b.parent / "elsewhere"),
     ".lock must be a plain file of the leaderboard, not a symbolic link"),
    (lambda b: shutil.rmtree(b / "entries") or (b / "entries").write_text("x"),
     "entries must be a plain directory of the leaderboard, not a file"),
])
def test_an_unwritable_board_is_refused_before_scoring(lb, tmp_path, cli, spoil, fragment):
    board = new_board(tmp_path, lb["ds"])
    spoil(board)
    before = snapshot(tmp_path)
    assert_one_line_error(cli("submit", _run(lb), "--leaderboard", board, "--dataset", lb["ds"].path), fragment)
    assert snapshot(tmp_path) == before and not (tmp_path / "elsewhere").exists()


# ----- 15, 16, 17: a dangling link, a device, stale temporaries --------------------------------------------------
def test_an_output_under_a_dangling_symlink_is_one_line(tmp_path, cli, release_path):
    (tmp_path / "lp").symlink_to("/nowhere-elsst")
    assert_one_line_error(cli("prepare", "--source", release_path, "--out", tmp_path / "lp" / "ds"),
                          "is a symbolic link to a missing /nowhere-elsst")


def test_a_source_that_is_not_a_regular_file_is_refused(tmp_path, cli):
    assert_one_line_error(cli("prepare", "--source", "/dev/zero", "--out", tmp_path / "ds"),
                          "source /dev/zero is not a regular file")
    assert not (tmp_path / "ds").exists()


def test_the_next_run_removes_the_temporaries_a_killed_writer_left(tmp_path, cli, release_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no process has now
    stale = tmp_path / f".ds.{dead.pid}-abcdefgh.tmp"
    stale.mkdir()
    (stale / "half.tsv").write_bytes(b"x" * 1000)
    alive = tmp_path / f".ds.{os.getppid()}-abcdefgh.tmp"  # a live writer's: not ours to remove
    alive.mkdir()
    result = cli("prepare", "--source", release_path, "--out", tmp_path / "ds", "-l", "en", "-t", "broader")
    assert result.returncode == 0, result.stderr
    assert not stale.exists() and alive.exists()


# ----- 18: SIGTERM to a sweep stops its training child ------------------------------------------------------------
@pytest.mark.slow  # a sweep process and its training child
def test_sigterm_to_a_sweep_stops_its_training_child(small_dataset, tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f'out = "{tmp_path / "runs"}"\n[defaults]\ndataset = "{small_dataset.path}"\n'
                     'languages = ["en"]\neval_tasks = ["broader"]\nepochs = 200\nbatch_size = 8\nmax_pairs = 64\n'
                     '[[runs]]\nid = "long"\nadapter = "lora"\n')
    process = subprocess.Popen([str(EXE), "sweep", str(sweep), "-q"], env={**os.environ, **ENV},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "runs" / "long" / runs.CONFIG).exists():  # the child is training
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.2)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert children
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()
              for pid in children):
        assert time.monotonic() < deadline, "the training child outlived the sweep"
        time.sleep(0.2)


# ----- 19, 21, 23: sweep files -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, fragment", [
    ('out = "r"\n[[runs]]\nid = "a"\nadapter = "lora"\nname = "two\\nlines"\n', "name must be one line"),
    ('out = "r"\nleaderboard = ""\n[[runs]]\nid = "a"\nadapter = "lora"\n', "leaderboard must be a directory path"),
    ('out = "r"\n[[runs]]\nid = "{adapter}-{seed}-{lr}-{epochs}"\n'
     'matrix = { adapter = ["lora"], seed = [' + ", ".join(map(str, range(1000))) + '], lr = ['
     + ", ".join(f"{i}e-4" for i in range(1, 1001)) + '], epochs = [' + ", ".join(map(str, range(1, 101))) + '] }\n',
     "plans 100,000,000 runs, more than the 10,000"),
])
def test_a_bad_sweep_file_is_refused_by_dry_run(tmp_path, cli, text, fragment):
    path = tmp_path / "s.toml"
    path.write_text(text)
    started = time.monotonic()
    assert_one_line_error(cli("sweep", path, "--dry-run"), fragment)
    assert time.monotonic() - started < 30


# ----- 20, 21: messages ------------------------------------------------------------------------------------------
def test_a_newline_in_a_path_stays_on_one_line(small_dataset, tmp_path, cli):
    line = assert_one_line_error(cli("evaluate", tmp_path / "two\nlines", "--dataset", small_dataset.path),
                                 "two\\nlines")
    assert "\n" not in line


def test_a_recipe_that_joins_plain_blames_plain_for_what_it_is(small_dataset, cli, tmp_path):
    assert_one_line_error(cli("train", "--adapter", "lora", "--recipe", "plain+bogus", "--runs-dir", tmp_path,
                              "--dataset", small_dataset.path),
                          "joins 'plain' to other components")


def test_sweep_help_keeps_its_brackets():
    result = run_cli("sweep", "--help")
    assert "[defaults]" in result.stdout and "[[runs]]" in result.stdout


@pytest.mark.parametrize("tasks, fragment", [(b"broader", "tasks must be a name or a list of names"),
                                             (123, "tasks must be a name or a list of names"),
                                             ([], "tasks is an empty list")])
def test_mteb_tasks_refuses_what_is_not_a_selection(small_dataset, tasks, fragment):
    from elsst_bench import mteb

    with pytest.raises(DataError, match=fragment):
        mteb.tasks(tasks=tasks, dataset=small_dataset.path)
