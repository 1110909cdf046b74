"""Bad input that once lost data or crashed (the reliability issue, items 1, 2, 5-8, 11, 13, 16, 17): each test is
the failure it prevents. docs/reliability.md lists every bad input the suite tries, by command.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import threading
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli

from elsst_bench import atomic, outputs, runs
from elsst_bench.errors import BenchError
from elsst_bench.training import TrainConfig, train

TINY = dict(languages=["en"], epochs=1, batch_size=8, max_pairs=16, eval_tasks=["broader"])


@pytest.fixture(scope="module")
def trained(small_dataset, tmp_path_factory) -> Path:
    """A complete tiny LoRA run (tests copy it before changing anything)."""
    out = tmp_path_factory.mktemp("trained")
    return train(TrainConfig(adapter="lora", dataset=str(small_dataset.path), out=str(out), run_id="lora", **TINY),
                 progress=False)


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _train(cli, small_dataset, out: Path, *args: str):
    return cli("train", "--adapter", "lora", "--dataset", small_dataset.path, "--runs-dir", out, "-l", "en",
               "--max-pairs", "8", "--epochs", "1", "--batch-size", "8", "--eval-tasks", "broader", "--quiet", *args)


# ----- item 1: --run-id stays inside --runs-dir; --overwrite replaces only a run ---------------------------------
@pytest.mark.parametrize("run_id", ["{victim}", "../victim", "a/../../victim", ""])
def test_a_run_id_outside_out_is_refused_and_the_directory_survives(small_dataset, tmp_path, cli, run_id):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "n.txt").write_text("x")
    out = tmp_path / "runs"
    result = _train(cli, small_dataset, out, "--run-id", run_id.format(victim=victim), "--overwrite")
    assert_one_line_error(result, "--run-id", "inside --runs-dir")
    assert (victim / "n.txt").read_text() == "x" and not out.exists()


def test_overwrite_refuses_a_directory_that_is_not_a_run(small_dataset, tmp_path, cli):
    keep = tmp_path / "runs" / "notes"
    keep.mkdir(parents=True)
    (keep / "n.txt").write_text("mine")
    result = _train(cli, small_dataset, tmp_path / "runs", "--run-id", "notes", "--overwrite")
    assert_one_line_error(result, "not a run directory", "config.json")
    assert _tree(keep) == {"n.txt": b"mine"}


# ----- item 11 (and 1): validation happens before the run directory is touched -------------------------------
@pytest.mark.parametrize("bad, needle", [
    (["--rank", "0"], "rank"),
    (["-o", "no_such_option=1"], "no_such_option"),
    (["--budget", "lora-r0"], "budget"),
])
def test_a_refused_run_leaves_no_stub_and_an_overwritten_run_survives(small_dataset, tmp_path, cli, trained, bad,
                                                                     needle):
    out = tmp_path / "runs"
    result = _train(cli, small_dataset, out, "--run-id", "new", *bad)
    assert_one_line_error(result, needle)
    assert not (out / "new").exists()  # no stub config.json that would later ask for --resume
    again = _train(cli, small_dataset, out, "--run-id", "new")
    assert again.returncode == 0, again.stderr

    shutil.copytree(trained, out / "old")
    before = _tree(out / "old")
    result = _train(cli, small_dataset, out, "--run-id", "old", "--overwrite", *bad)
    assert_one_line_error(result, needle)
    assert _tree(out / "old") == before  # --overwrite removes nothing until the new run is known to be valid


# ----- item 2: export --merged never replaces what it did not write ----------------------------------------
def test_export_refuses_targets_that_are_not_an_earlier_export(tmp_path, cli, trained):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = _tree(run)
    assert_one_line_error(cli("export", run, "--merged", run), "not an exported model")
    assert _tree(run) == before
    file = tmp_path / "file.txt"
    file.write_text("keep")
    assert_one_line_error(cli("export", run, "--merged", file), "is a file")
    assert file.read_text() == "keep" and not list(tmp_path.glob(".file.txt*"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "n.txt").write_text("keep")
    assert_one_line_error(cli("export", run, "--merged", other), "not an exported model")
    assert _tree(other) == {"n.txt": b"keep"}

    merged = tmp_path / "merged"
    assert cli("export", run, "--merged", merged).returncode == 0
    assert_one_line_error(cli("export", run, "--merged", merged), "--overwrite")
    assert cli("export", run, "--merged", merged, "--overwrite").returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "merged", "other", "run"]  # no leftovers


# ----- item 17: what the tool writes is readable by the group ------------------------------------------------
def test_written_directories_and_weights_get_the_usual_modes(tmp_path, cli, trained):
    merged = tmp_path / "merged"
    assert cli("export", trained, "--merged", merged).returncode == 0
    mask = atomic.umask()
    for root in (trained, merged):
        for path in [root, *root.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            want = (0o777 if path.is_dir() else 0o666) & ~mask
            assert mode & 0o077 == want & 0o077, (path, oct(mode))  # group/other bits as the umask allows


# ----- item 6: an output that cannot be written is refused before the work ---------------------------------
def test_unwritable_outputs_are_refused_before_any_work(small_dataset, tmp_path, cli, trained):
    assert_one_line_error(_train(cli, small_dataset, Path("/proc/elsst-bench-runs"), "--run-id", "x"),
                          "cannot write", "not writable")
    blocker = tmp_path / "a-file"
    blocker.write_text("keep")
    assert_one_line_error(_train(cli, small_dataset, blocker / "runs", "--run-id", "x"), "is a file")
    result = cli("evaluate", trained, "--dataset", small_dataset.path, "--quiet",
                 env={"ELSST_BENCH_CACHE": str(blocker)})
    line = assert_one_line_error(result, "embedding cache", "is a file")
    assert "ELSST_BENCH_CACHE" in line and blocker.read_text() == "keep"
    assert_one_line_error(cli("evaluate", trained, "--dataset", small_dataset.path, "--out", tmp_path, "--quiet"),
                          "not a run or evaluation directory")


# ----- item 7: a config.json of the wrong shape is refused with the field's name ----------------------------
@pytest.mark.parametrize("field, value, needle", [
    ("model", None, "has no 'model' field"),
    ("model", "all-MiniLM-L6-v2", "'model' should be an object"),
    ("trainable_params", "many", "'trainable_params' should be an integer"),
    ("adapter", 3, "'adapter' should be a non-empty string"),
])
@pytest.mark.parametrize("command", ["evaluate", "inspect", "export"])
def test_a_config_of_the_wrong_shape_is_one_line(small_dataset, tmp_path, cli, trained, field, value, needle, command):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = json.loads((run / runs.CONFIG).read_text())
    if value is None:
        del config[field]
    else:
        config[field] = value
    (run / runs.CONFIG).write_text(json.dumps(config))
    args = {"evaluate": ["--dataset", small_dataset.path, "--quiet"], "inspect": ["--no-plots"],
            "export": ["--merged", tmp_path / "merged"]}[command]
    assert_one_line_error(cli(command, run, *args), needle)


# ----- item 5: a run names an offline base by identity, never by this machine's path -------------------------
def test_offline_bases_are_recorded_without_a_location():
    from elsst_bench.models import ENGLISH_MODEL, locate, model_identity, portable_identity

    here = model_identity(ENGLISH_MODEL)
    recorded = portable_identity(here)
    assert "location" not in recorded and recorded["sha256"] == here["sha256"]
    assert locate(recorded) == here["location"]
    own = {"name": "/data/my-encoder", "location": "/data/my-encoder", "sha256": None}
    assert portable_identity(own) == own  # another base is found by its location: it keeps it


def test_a_zero_shot_evaluation_records_no_machine_path(small_dataset, tmp_path, cli):
    out = tmp_path / "zs"
    result = cli("evaluate", "--model", "all-MiniLM-L6-v2", "--dataset", small_dataset.path, "--tasks", "broader",
                 "--languages", "en", "--out", out, "--no-cache", "--quiet")
    assert result.returncode == 0, result.stderr
    for name in (runs.CONFIG, runs.METRICS_FILE):
        assert "location" not in json.loads((out / name).read_text())["model"]
        assert "site-packages" not in (out / name).read_text()


# ----- item 16: usage errors are one line; --quiet is quiet ---------------------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["train", "--adapter", "lora", "--lr", "abc"], "'--lr'"),
    (["train"], "Missing option '--adapter'"),
    (["evaluate", "--bogus"], "No such option: --bogus"),
    (["trian"], "No such command 'trian'"),
])
def test_usage_errors_are_one_line(cli, args, needle):
    assert_one_line_error(cli(*args), needle)


def test_compare_refuses_a_significance_level_outside_0_1(tmp_path, cli, trained, small_dataset):
    assert_one_line_error(cli("compare", trained, trained, "--dataset", small_dataset.path, "--max-p", "5"),
                          "--max-p", "between 0 and 1")


@pytest.mark.slow  # a process per command
def test_quiet_commands_print_no_progress_bars(small_dataset, tmp_path, trained):
    """In processes of their own, as a user runs them: tqdm reads ``TQDM_DISABLE`` when it is imported."""
    result = run_cli("evaluate", trained, "--dataset", small_dataset.path, "--out", tmp_path / "ev", "--no-cache",
                     "--quiet")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    result = _train(run_cli, small_dataset, tmp_path / "runs", "--run-id", "q")
    assert result.returncode == 0 and "it/s" not in result.stderr and "Loading" not in result.stderr, result.stderr


def test_the_console_script_gives_one_line_for_a_usage_error(tmp_path):
    assert_one_line_error(run_cli("train", "--adapter", "lora", "--lr", "abc"), "'--lr'")
    assert_one_line_error(run_cli("no-such-command"), "No such command 'no-such-command'")


def test_no_arguments_prints_the_help_and_exits_2():
    result = run_cli()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("Usage: elsst-bench") and "train" in result.stderr and "serve" in result.stderr


# ----- item 13: a directory swap is one step, and an interrupt lands after it ----------------------------------
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_an_interrupt_during_a_directory_swap_leaves_the_new_directory_and_no_leftovers(tmp_path, monkeypatch,
                                                                                       exchange):
    final = tmp_path / "dataset"
    with atomic.directory(final, outputs.DATASET) as tmp:
        (tmp / "manifest.json").write_text("old")
    if not exchange:
        monkeypatch.setattr(atomic, "_renameat2", lambda a, b, flags: False)
    real_rmtree = shutil.rmtree

    def interrupted_rmtree(path, *args, **kwargs):  # Ctrl-C while the old content is being removed
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # to this thread: no late delivery
        assert (final / "manifest.json").read_text() == "new"
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(atomic.shutil, "rmtree", interrupted_rmtree)
    # Python's own SIGINT handler, whatever an earlier in-process command or the test runner installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _swap_with_interrupt(final)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (final / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def _swap_with_interrupt(final):
    with pytest.raises(KeyboardInterrupt):
        with atomic.directory(final, outputs.DATASET) as tmp:
            (tmp / "manifest.json").write_text("new")


def test_the_swap_exchanges_in_one_step_where_the_file_system_can(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not atomic._exchange(a, b):
        pytest.skip("this file system cannot exchange two directories; the two-rename path is tested above")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_check_run_id_accepts_plain_relative_names():
    for ok in ("lora-s0", "tuning/lora-lr0.001", "a.b_c"):
        assert outputs.check_run_id(ok) == ok
    for bad in ("", "/abs", "~/x", "..", "a/../b", "a//b", "a/", "./a", "a\\b"):
        with pytest.raises(BenchError, match="--run-id"):
            outputs.check_run_id(bad)


# ----- item 2: prepare --out never replaces what is not a prepared dataset ------------------------------------
def test_prepare_refuses_targets_that_are_not_a_dataset_and_keeps_them(tmp_path, cli, mini_path):
    file = tmp_path / "file"
    file.write_text("keep")
    other = tmp_path / "other"
    other.mkdir()
    (other / "n.txt").write_text("keep")
    for target, needle in ((file, "is a file"), (other, "not a prepared dataset"), (Path("."), "not a prepared")):
        assert_one_line_error(cli("prepare", "--source", mini_path, "--out", target, cwd=tmp_path), needle)
    assert file.read_text() == "keep" and _tree(other) == {"n.txt": b"keep"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "other"]  # no temporary directory left
    assert_one_line_error(cli("prepare", "--source", mini_path, "--out", "/proc/elsst-bench"), "not writable")


def test_prepare_twice_is_harmless_and_another_dataset_needs_overwrite(tmp_path, cli, mini_path):
    out = tmp_path / "ds"
    assert cli("prepare", "--source", mini_path, "--out", out).returncode == 0
    first = _tree(out)
    assert cli("prepare", "--source", mini_path, "--out", out).returncode == 0  # the same dataset: rewritten as is
    assert _tree(out) == first
    assert_one_line_error(cli("prepare", "--source", mini_path, "--out", out, "--seed", "1"),
                          "holds another prepared dataset", "--overwrite")
    assert _tree(out) == first
    assert cli("prepare", "--source", mini_path, "--out", out, "--seed", "1", "--overwrite").returncode == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1


@pytest.mark.slow  # the real multilingual-e5-small
def test_a_committed_run_evaluates_from_this_checkout_to_its_own_metrics(prepared_full, tmp_path, cli):
    """A run trained on another machine names its base by identity only, so it loads here (the packaged
    all-MiniLM-L6-v2 wherever this machine installed it) and reproduces the metrics it was committed with."""
    run = Path(__file__).resolve().parent.parent / "results" / "runs" / "lora-s0"
    assert "site-packages" not in (run / runs.CONFIG).read_text()
    path, _ = prepared_full
    result = cli("evaluate", run, "--dataset", path, "--tasks", "definition", "--out", tmp_path / "again",
                 "--no-cache", "--json")
    assert result.returncode == 0, result.stderr
    committed = json.loads((run / runs.METRICS_FILE).read_text())["scores"]["definition"]["en"]
    again = json.loads(result.stdout)["scores"]["definition"]["en"]
    assert again.keys() == committed.keys()
    for metric, value in committed.items():
        assert again[metric] == pytest.approx(value, abs=1e-4), metric


@pytest.mark.slow  # the real all-MiniLM-L6-v2 trains
def test_a_run_started_when_offline_bases_recorded_a_location_still_resumes(small_dataset, tmp_path):
    """Runs started by an earlier version name the packaged base with this machine's path; --resume compares
    the options as this version records them."""
    from elsst_bench.models import ENGLISH_MODEL, model_identity
    from elsst_bench.training.config import resolved_options

    config = TrainConfig(adapter="lora", model=ENGLISH_MODEL, dataset=str(small_dataset.path), out=str(tmp_path),
                         run_id="old", **TINY)
    options = resolved_options(config, small_dataset, model_identity(ENGLISH_MODEL))  # with "location"
    assert "location" in options["model"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / runs.CONFIG).write_text(json.dumps({"run_id": "old", "status": "running", "options": options}))
    run = train(TrainConfig(**{**config.__dict__, "resume": True}), progress=False)
    record = runs.read_config(run)
    assert record["status"] == "complete" and "location" not in record["options"]["model"]


# ----- round two (issue 31): items 6, 14, 21, 22 -------------------------------------------------------------
@pytest.mark.parametrize("lr", ["inf", "-inf", "nan", "0", "-1e-3"])
def test_a_learning_rate_that_is_not_positive_and_finite_is_refused_before_training(small_dataset, tmp_path, cli, lr):
    """Item 6: `--lr inf` trained to NaN and was marked complete."""
    out = tmp_path / "runs"
    result = _train(cli, small_dataset, out, "--run-id", "r", "--lr", lr)
    assert_one_line_error(result, "--lr must be a positive finite number")
    assert not (out / "r").exists()


def test_a_directory_given_as_the_sweep_file_is_refused_in_one_line(tmp_path, cli):
    """Item 14: `sweep /tmp --dry-run` raised IsADirectoryError."""
    assert_one_line_error(cli("sweep", tmp_path, "--dry-run"), "is a directory; pass a .toml file")


@pytest.mark.parametrize("args, option", [
    (["prepare", "-l", ""], "--languages"), (["prepare", "-t", ","], "--tasks"),
    (["evaluate", "-l", " "], "--languages"), (["serve", "-l", ""], "--languages"),
    (["train", "--adapter", "lora", "--eval-tasks", ""], "--eval-tasks"),
])
def test_an_empty_selection_is_refused_not_taken_as_all(cli, tmp_path, args, option):
    """Item 21: `prepare -l ""` prepared every language."""
    result = cli(*args, cwd=tmp_path)
    assert_one_line_error(result, f"{option} is empty")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("run_id", ["a\nb", "lora\u202eevil", "with space", "tab\there", "caf\u00e9"])
def test_a_run_id_outside_the_stated_alphabet_is_refused(small_dataset, tmp_path, cli, run_id):
    """Item 22: run ids with a newline or a right-to-left override passed, against the alphabet the message
    states."""
    out = tmp_path / "runs"
    line = assert_one_line_error(_train(cli, small_dataset, out, "--run-id", run_id), "--run-id", "ASCII letters")
    assert "\u202e" not in line and not out.exists()
