"""`elsst-bench sweep`: the plan a TOML file expands to, bad files, and a real (tiny) sweep end to end:
trained, evaluated, submitted, re-rendered; a second pass does nothing; an interrupted run is resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_one_line_error
from leaderboard_fixtures import new_board, snapshot

from elsst_bench import runs
from elsst_bench.errors import BenchError
from elsst_bench.leaderboard import verify
from elsst_bench.sweep import SUBMITTED, load_plan, run_sweep, tuned_lr, with_tuned_lr
from elsst_bench.training import NonFiniteLoss, TrainConfig, train

TINY = 'epochs = 1\nbatch_size = 8\nmax_pairs = 16\nlanguages = ["en"]\neval_tasks = ["broader"]\n'


#: Three tiny runs for the board: zero-shot and two LoRA seeds.
BOARD_GRID = """
[[runs]]
id = "none-s0"
adapter = "none"
submit = true
[[runs]]
id = "{adapter}-s{seed}"
matrix = { adapter = ["lora"], seed = [0, 1] }
submit = true
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def sweep_file(tmp_path: Path, dataset: Path, board: Path | None, blocks: str) -> Path:
    head = f'out = "{tmp_path / "runs"}"\n' + (f'leaderboard = "{board}"\n' if board else "")
    return write(tmp_path / "sweep.toml", f'{head}\n[defaults]\ndataset = "{dataset}"\n{TINY}\n{blocks}')


def test_plan_expands_the_matrix_in_order(tmp_path):
    path = write(tmp_path / "s.toml", """
out = "grid"
[defaults]
languages = ["en"]
[[runs]]
id = "none"
adapter = "none"
submit = true
[[runs]]
id = "{adapter}-{budget}-s{seed}"
budget = "lora-r8"
matrix = { seed = [0, 1], adapter = ["lora", "pica"] }
[[runs]]
id = "src/{adapter}-{tasks}-{languages}"
adapter = "lora"
tasks = ["synonym", "definition"]
languages = ["en", "de"]
""")
    plan = load_plan(path)
    assert [r.id for r in plan.runs] == ["none", "lora-lora-r8-s0", "pica-lora-r8-s0", "lora-lora-r8-s1",
                                         "pica-lora-r8-s1", "src/lora-synonym+definition-en+de"]
    assert [r.submit for r in plan.runs] == [True, False, False, False, False, False]
    second = plan.runs[2].config
    assert (second.adapter, second.seed, second.budget, second.languages, second.out, second.run_id) == (
        "pica", 0, "lora-r8", ["en"], "grid", "pica-lora-r8-s0")
    assert plan.runs[-1].run_dir == Path("grid/src/lora-synonym+definition-en+de")
    assert plan.leaderboard is None


@pytest.mark.parametrize("text, fragment", [
    ('out = "x"\n[[runs]]\nid = "a"\nadapter = "lora"\nlearning_rate = 1\n', "unknown key 'learning_rate'"),
    ('out = "x"\n[[runs]]\nid = "a"\nadapter = "lora"\nmatrix = { seed = 3 }\n', "matrix.seed must be a non-empty"),
    ('out = "x"\n[[runs]]\nid = "a"\nmatrix = { seed = [0, 1], adapter = ["lora"] }\n', "also produced by"),
    ('out = "x"\n[[runs]]\nid = "{adapter}-{rnak}"\nadapter = "lora"\n', "names {rnak}"),
    ('out = "x"\n[[runs]]\nid = "../{adapter}"\nadapter = "lora"\n', "without '..'"),
    ('out = "x"\n[[runs]]\nid = "a"\n', "no adapter"),
    ('[[runs]]\nid = "a"\nadapter = "lora"\n', "set out ="),
    ('out = "x"\n', "no [[runs]] blocks"),
    ('out = "x"\n[[runs]\n', "not valid TOML"),
    ('out = "x"\n[[runs]]\nid = "a"\nadapter = "lora"\ntest = false\nsubmit = true\n', "has no test rankings"),
    ('out = "x"\n[[runs]]\nid = "a"\nadapter = "lora"\nlr_from = "t/*"\n', "matches no earlier run"),
    ('out = "x"\n[[runs]]\nid = "t/a"\nadapter = "lora"\n[[runs]]\nid = "b"\nadapter = "lora"\nlr = 0.1\n'
     'lr_from = "t/*"\n', "do not also set lr"),
    ('out = "x"\n[[runs]]\nid = "t/a"\nadapter = "lora"\n[[runs]]\nid = "b{lr}"\nadapter = "lora"\n'
     'lr_from = "t/*"\n', "names {lr}"),
    # value types are checked when the file is read, not by a child process in the middle of the sweep
    ('out = "x"\n[[runs]]\nid = "a"\nadapter = "lora"\nepochs = "three"\n', 'epochs = "three" should be an integer'),
    ('out = "x"\n[[defaults]]\n', "[defaults] must be a table"),
    ('out = "x"\n[defaults]\nlr = "fast"\n[[runs]]\nid = "a"\nadapter = "lora"\n', 'lr = "fast" should be a number'),
    ('out = "x"\n[[runs]]\nid = "a"\nadapter = "lora"\nlr = nan\n', 'lr = NaN should be a number'),  # finite
    ('out = "x"\n[[runs]]\nid = "a{seed}"\nadapter = "lora"\nmatrix = { seed = [0, "1"] }\n',
     'seed = "1" should be an integer'),
    ('out = "x"\n[[runs]]\nid = "a"\nadapter = "lora"\nlanguages = "en"\n', "should be a list of strings"),
    ('out = "x"\n[[runs]]\nid = "a"\nadapter = "lora"\ntest = 0\n', "test = 0 should be true or false"),
    # an id names plain fields only
    ('out = "x"\n[[runs]]\nid = "{adapter.__class__.__mro__}"\nadapter = "lora"\n', "plain fields only"),
    ('out = "x"\n[[runs]]\nid = "{adapter!r}"\nadapter = "lora"\n', "plain fields only"),
    ('out = "x"\n[[runs]]\nid = "{seed:>10}"\nadapter = "lora"\n', "plain fields only"),
    ('out = "x"\n[[runs]]\nid = "/abs/{adapter}"\nadapter = "lora"\n', "without '..'"),
])
def test_bad_sweep_files_are_refused_with_one_line(tmp_path, text, fragment):
    with pytest.raises(BenchError) as info:
        load_plan(write(tmp_path / "s.toml", text))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_bad_sweep_file_on_the_command_line(tmp_path, cli):
    path = write(tmp_path / "s.toml", 'out = "x"\n[[runs]]\nid = "a"\nadapter = "lora"\nlr = 1\nfoo = 2\n')
    assert_one_line_error(cli("sweep", path), "unknown key 'foo'")
    assert not (tmp_path / "x").exists()
    assert_one_line_error(cli("sweep", tmp_path / "nope.toml"), "does not exist")


@pytest.mark.slow  # sweep processes that train, submit and render
def test_sweep_trains_submits_renders_and_a_second_pass_does_nothing(small_dataset, tmp_path, cli):
    board = new_board(tmp_path, small_dataset)
    before = snapshot(board)
    path = sweep_file(tmp_path, small_dataset.path, board, BOARD_GRID + """
[[runs]]
id = "src/lora"
adapter = "lora"
tasks = ["synonym"]
""")
    first = cli("sweep", str(path), "--quiet")
    assert first.returncode == 0, first.stderr
    assert "trained 4, resumed 0, already complete 0, submitted 3" in first.stdout
    run_dirs = [tmp_path / "runs" / rid for rid in ("none-s0", "lora-s0", "lora-s1", "src/lora")]
    assert all(runs.is_complete(d) for d in run_dirs)
    assert not (tmp_path / "runs" / "src" / "lora" / SUBMITTED).exists()  # submit = false
    entries = sorted((board / "entries").glob("*.json"))
    assert len(entries) == 3
    assert sorted((e["adapter"], e["seed"]) for e in map(json.loads, (p.read_text() for p in entries))) == [
        ("lora", 0), ("lora", 1), ("none", 0)]
    for d in run_dirs[:3]:
        record = json.loads((d / SUBMITTED).read_text())
        assert (board / record["entry"]).is_file()
    board_files = snapshot(board)
    assert board_files != before and b"lora" in board_files["README.md"]
    assert "3 entries" in verify(board, small_dataset.path)

    configs = {d: (d / runs.CONFIG).stat().st_mtime_ns for d in run_dirs}
    second = cli("sweep", str(path), "--quiet")
    assert second.returncode == 0, second.stderr
    assert "trained 0, resumed 0, already complete 4, submitted 0" in second.stdout
    assert {d: (d / runs.CONFIG).stat().st_mtime_ns for d in run_dirs} == configs
    assert snapshot(board) == board_files

    dry = cli("sweep", str(path), "--dry-run")
    assert dry.returncode == 0 and "0 to train, 4 complete" in dry.stdout

    # The same ids with another learning rate: refused, nothing retrained, board untouched.
    write(path, path.read_text().replace('id = "{adapter}-s{seed}"', 'id = "{adapter}-s{seed}"\nlr = 0.01'))
    changed = cli("sweep", str(path), "--quiet")
    assert changed.returncode == 2 and "trained with other options (lr)" in changed.stderr
    assert snapshot(board) == board_files


@pytest.mark.slow  # a sweep process killed and rerun
def test_sweep_resumes_an_interrupted_run(small_dataset, tmp_path):
    path = sweep_file(tmp_path, small_dataset.path, None, """
[[runs]]
id = "lora-s0"
adapter = "lora"
epochs = 2
""")
    planned = load_plan(path).runs[0]
    probe = train(TrainConfig(**{**planned.config.__dict__, "run_id": "probe", "epochs": 1}), progress=False)
    steps_per_epoch = runs.read_config(probe)["steps"]
    with pytest.raises(NonFiniteLoss):  # stops in epoch 2, after epoch 1's checkpoint was written
        train(TrainConfig(**{**planned.config.__dict__, "fail_at_step": steps_per_epoch + 1}), progress=False)
    assert runs.read_config(planned.run_dir)["status"] == "running"

    lines: list[str] = []
    summary = run_sweep(load_plan(path), progress=False, echo=lines.append)
    assert summary.resumed == ["lora-s0"] and summary.trained == [] and summary.submitted == []
    record = runs.read_config(planned.run_dir)
    assert record["status"] == "complete" and record["resumed_from"] == f"checkpoint-{steps_per_epoch}"
    assert any("resuming lora" in line for line in lines)


@pytest.mark.slow  # sweep processes
def test_a_failing_run_stops_the_sweep_with_its_own_message(small_dataset, tmp_path, cli):
    path = sweep_file(tmp_path, small_dataset.path, None, '[[runs]]\nid = "e"\nadapter = "eigenlorax"\n')
    assert_one_line_error(cli("sweep", path, "--quiet"), "eigenlorax needs --sources")


TUNED = """
out = "{out}"
[defaults]
languages = ["en"]
lr = 0.5
[[runs]]
id = "tuning/{{adapter}}-lr{{lr}}"
test = false
seed = 0
matrix = {{ adapter = ["lora", "pica"], lr = [0.001, 0.003, 0.01] }}
[[runs]]
id = "{{adapter}}-s{{seed}}"
lr_from = "tuning/{{adapter}}-lr*"
matrix = {{ adapter = ["lora", "pica"], seed = [0, 1] }}
submit = true
"""


def fake_tuning_run(run_dir: Path, lr: float, dev: float) -> None:
    """A complete dev-only run as `train --no-test` records it (only what the rate choice reads)."""
    run_dir.mkdir(parents=True)
    (run_dir / runs.CONFIG).write_text(json.dumps({"status": "complete", "best_dev_score": dev,
                                                   "options": {"lr": lr, "test": False}}))


def test_lr_from_picks_the_rate_with_the_best_dev_score_when_the_run_is_reached(tmp_path, cli):
    path = write(tmp_path / "s.toml", TUNED.format(out=tmp_path / "grid"))
    plan = load_plan(path)
    tuning, grid = plan.runs[:6], plan.runs[6:]
    assert [r.config.test for r in tuning] == [False] * 6 and all(r.config.test for r in grid)
    assert [r.id for r in grid] == ["lora-s0", "lora-s1", "pica-s0", "pica-s1"]  # outer matrix key first
    assert [r.lr_from for r in grid] == ["tuning/lora-lr*"] * 2 + ["tuning/pica-lr*"] * 2
    assert all(r.config.lr is None for r in grid)  # the default lr = 0.5 does not apply to a tuned block
    lora0 = grid[0]
    assert tuned_lr(plan, lora0) is None  # nothing trained yet
    with pytest.raises(BenchError, match="tuning/lora-lr0.001 is not complete") as err:
        with_tuned_lr(plan, lora0)
    assert "\n" not in str(err.value)
    dry = cli("sweep", path, "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("tuned (pending)") == 4 and dry.stdout.count("dev only") == 6

    # lora: 3e-3 has the best dev score; pica: a tie between 1e-3 and 1e-2 goes to the first in file order.
    for lr, dev in ((0.001, 0.41), (0.003, 0.47), (0.01, 0.44)):
        fake_tuning_run(tmp_path / "grid" / f"tuning/lora-lr{lr}", lr, dev)
    for lr, dev in ((0.001, 0.52), (0.003, 0.50), (0.01, 0.52)):
        fake_tuning_run(tmp_path / "grid" / f"tuning/pica-lr{lr}", lr, dev)
    assert tuned_lr(plan, lora0) == (0.003, "tuning/lora-lr0.003")
    assert tuned_lr(plan, grid[2]) == (0.001, "tuning/pica-lr0.001")
    picked = [with_tuned_lr(plan, r) for r in grid]
    assert [r.config.lr for r in picked] == [0.003, 0.003, 0.001, 0.001]
    assert [r.id for r in picked] == [r.id for r in grid] and picked[0].run_dir == lora0.run_dir
    dry = cli("sweep", path, "--dry-run")
    assert dry.stdout.count("0.003 (dev)") == 2 and dry.stdout.count("0.001 (dev)") == 2

    broken = tmp_path / "grid" / "tuning/pica-lr0.003" / runs.CONFIG
    broken.write_text(json.dumps({"status": "complete", "options": {"lr": 0.003}}))
    with pytest.raises(BenchError, match="records no best_dev_score"):
        tuned_lr(plan, grid[2])
