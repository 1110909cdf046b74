"""Leaderboard: N (8) ``elsst-bench submit`` processes at once on N distinct runs — all N entries, every file valid."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from conftest import ENV, EXE
from leaderboard_fixtures import evaluated_run, make_run, new_board

from elsst_bench.leaderboard import store, verify

#: Submitting processes at once. Each spends about 4 s of CPU, most of it importing ranx (numba, scipy), so on CI's
#: two cores 20 of them took 150 s of the suite; 8 contend for the lock just as well.
N = 8


pytestmark = pytest.mark.slow  # N submitting processes


def test_concurrent_submissions_are_all_stored(small_dataset, tmp_path):
    base = evaluated_run(str(small_dataset.path))
    board = new_board(tmp_path, small_dataset)
    # Distinct runs: each a different seed and a different perturbation of the same valid rankings. Two tasks and
    # an adapter that trains nothing keep the N processes light (re-counting a trained adapter's parameters would
    # import torch and transformers in each, seconds of CPU); what is under test is the lock and the atomic writes.
    runs = [make_run(base, tmp_path / "runs" / f"run{k:02d}", seed=k, adapter="none", trainable_params=0,
                     tasks=("broader", "definition")) for k in range(N)]
    env = {**os.environ, **ENV, "NUMBA_NUM_THREADS": "1"}  # N processes on a small machine: no thread pools
    procs = [subprocess.Popen([str(EXE), "submit", str(run), "--leaderboard", str(board), "--dataset",
                               str(small_dataset.path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for run in runs]
    results = [(p.wait(timeout=240), *p.communicate()) for p in procs]
    assert [rc for rc, _, _ in results] == [0] * N, [err for rc, _, err in results if rc]

    paths = store.entry_paths(board)
    assert len(paths) == N
    entries = [store.read_entry(path) for path in paths]  # every file parses and has the entry's shape
    assert sorted(e["seed"] for e in entries) == list(range(N))
    assert len({e["id"] for e in entries}) == N
    for path in paths:
        assert path.read_text().endswith("}\n")
    assert not [p.name for p in board.rglob("*") if p.name.endswith(".tmp")]  # no temporary file left behind

    # The last writer rendered from all N entries; both pages are complete and current.
    assert f"{N} entries;" in (board / "README.md").read_text()
    html = (board / "index.html").read_text()
    assert html.rstrip().endswith("</html>")
    shown = {i for ids in re.findall(r'<tbody data-entries="([^"]*)"', html) for i in ids.split()}
    assert shown == {e["id"] for e in entries}
    assert json.loads((board / "benchmark.json").read_text())["fingerprint"] == small_dataset.fingerprint
    assert verify(board, small_dataset.path).startswith(f"{board}: {N} entries re-scored")


def test_concurrent_duplicates_store_one_entry(small_dataset, tmp_path):
    """The duplicate check is repeated under the lock: of two simultaneous submissions of one run, one wins."""
    base = evaluated_run(str(small_dataset.path))
    board = new_board(tmp_path, small_dataset)
    run = make_run(base, tmp_path / "run", seed=3, adapter="none", trainable_params=0, tasks=("definition",))
    env = {**os.environ, **ENV, "NUMBA_NUM_THREADS": "1"}
    procs = [subprocess.Popen([str(EXE), "submit", str(run), "--leaderboard", str(board), "--dataset",
                               str(small_dataset.path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    results = [(p.wait(timeout=240), *p.communicate()) for p in procs]
    assert sorted(rc for rc, _, _ in results) == [0, 2], results
    for rc, _, err in results:
        if rc == 2:
            assert "exact duplicate" in err and "Traceback" not in err
    assert len(store.entry_paths(board)) == 1
