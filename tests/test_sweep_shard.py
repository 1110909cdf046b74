"""`elsst-bench sweep --shard K/N`: a deterministic partition that keeps dependent runs together, SLURM's array
variables, and two shards running one tiny grid at once onto one board."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import ENV, EXE, assert_one_line_error
from leaderboard_fixtures import new_board
from test_sweep import BOARD_GRID, sweep_file, write

from elsst_bench import runs
from elsst_bench.errors import BenchError
from elsst_bench.leaderboard import verify
from elsst_bench.shard import Shard, components, parse_shard, partition, select, shard_from_environment
from elsst_bench.sweep import load_plan

GRID = """
[[runs]]
id = "none-s0"
adapter = "none"
[[runs]]
id = "tuning/{adapter}-lr{lr}"
test = false
matrix = { adapter = ["lora", "vera"], lr = [1e-3, 1e-2] }
[[runs]]
id = "{adapter}-s{seed}"
lr_from = "tuning/{adapter}-lr*"
matrix = { adapter = ["lora", "vera"], seed = [0, 1] }
[[runs]]
id = "src/{tasks}"
adapter = "lora"
matrix = { tasks = [["synonym"], ["crosslingual"]] }
[[runs]]
id = "eigenlorax-s0"
adapter = "eigenlorax"
sources = ["RUNS/src/synonym", "RUNS/src/crosslingual"]
[[runs]]
id = "dora-s0"
adapter = "dora"
"""


pytestmark = pytest.mark.slow  # two sweeps at once


def grid(tmp_path: Path):
    text = 'out = "RUNS"\n[defaults]\nlanguages = ["en"]\n' + GRID
    return load_plan(write(tmp_path / "s.toml", text.replace("RUNS", str(tmp_path / "runs"))))


def test_dependent_runs_form_one_component(tmp_path):
    plan = grid(tmp_path)
    ids = [[plan.runs[i].id for i in group] for group in components(plan)]
    assert ids == [["none-s0"],
                   ["tuning/lora-lr0.001", "tuning/lora-lr0.01", "lora-s0", "lora-s1"],
                   ["tuning/vera-lr0.001", "tuning/vera-lr0.01", "vera-s0", "vera-s1"],
                   ["src/synonym", "src/crosslingual", "eigenlorax-s0"],
                   ["dora-s0"]]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_shards_cover_every_run_once_keep_components_whole_and_file_order(tmp_path, count):
    plan = grid(tmp_path)
    shards = partition(plan, count)
    assert sorted(i for s in shards for i in s) == list(range(len(plan.runs)))
    for group in components(plan):
        assert sum(set(group) <= set(s) for s in shards) == 1  # never split
    for k, indices in enumerate(shards, 1):
        assert [r.id for r in select(plan, Shard(k, count)).runs] == [plan.runs[i].id for i in sorted(indices)]
    assert partition(grid(tmp_path), count) == shards  # the same plan, the same partition
    sizes = sorted(len(s) for s in shards)
    assert sizes[-1] - sizes[0] <= 4  # dealt largest first: no shard is more than one component ahead


def test_shard_arguments_and_slurm_variables():
    assert parse_shard("2/4") == Shard(2, 4) and str(Shard(2, 4)) == "2/4"
    for bad in ("0/4", "5/4", "2", "a/b", "1/0"):
        with pytest.raises(BenchError, match="--shard"):
            parse_shard(bad)
    assert shard_from_environment({}) is None
    assert shard_from_environment({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4"}) == Shard(1, 4)
    assert shard_from_environment({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1",
                                   "SLURM_ARRAY_TASK_COUNT": "4"}) == Shard(4, 4)
    with pytest.raises(BenchError, match="outside an array"):
        shard_from_environment({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "4"})


def test_a_bad_shard_on_the_command_line_is_one_line(tmp_path, cli):
    path = write(tmp_path / "s.toml", 'out = "x"\n[[runs]]\nid = "a"\nadapter = "lora"\n')
    assert_one_line_error(cli("sweep", path, "--dry-run", "--shard", "3/2"), "--shard 3/2")


def test_two_shards_at_once_train_every_run_once_and_make_the_unsharded_board(small_dataset, tmp_path, cli):
    board = new_board(tmp_path, small_dataset)
    path = sweep_file(tmp_path, small_dataset.path, board, BOARD_GRID)
    plan = load_plan(path)
    owners = {plan.runs[i].id: k for k, s in enumerate(partition(plan, 2), 1) for i in s}
    env = {**os.environ, **ENV}
    procs = [subprocess.Popen([str(EXE), "sweep", str(path), "--quiet", "--shard", f"{k}/2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (1, 2)]
    outputs = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    assert [rc for rc, _, _ in outputs] == [0, 0], [err for _, _, err in outputs]
    for k, (_, out, _) in enumerate(outputs, 1):
        mine = sum(1 for owner in owners.values() if owner == k)
        assert f"(shard {k}/2: {mine} of 3 runs)" in out and f"trained {mine}, resumed 0" in out, out
    assert all(runs.is_complete(run.run_dir) for run in plan.runs)
    sharded = sorted(json.loads(p.read_text())["id"] for p in (board / "entries").glob("*.json"))
    assert len(sharded) == 3 and "3 entries" in verify(board, small_dataset.path)

    # The same complete runs submitted by one unsharded sweep to a fresh board: the same entries and pages.
    fresh = new_board(tmp_path / "fresh", small_dataset)
    for run in plan.runs:
        (run.run_dir / "submitted.json").unlink()
    one = write(tmp_path / "one.toml", path.read_text().replace(str(board), str(fresh)))
    result = cli("sweep", one, "--quiet")
    assert result.returncode == 0 and "trained 0, resumed 0, already complete 3, submitted 3" in result.stdout
    assert sorted(json.loads(p.read_text())["id"] for p in (fresh / "entries").glob("*.json")) == sharded
    for page in ("README.md", "index.html"):
        assert (fresh / page).read_text() == (board / page).read_text()
