"""DDP: one run over two CPU processes (gloo) under ``torchrun``, as the README shows it.

- the losses see the global batch: two processes on halves give the loss and the averaged gradient of one process
  on the whole batch (plain MNRL and the graded loss, built as ``train`` builds them);
- a 2-process run writes one complete run directory (rank 0's), records its world, and scores close to one process
  with the same global batch (the batches are composed differently: see elsst_bench/training/distributed.py);
- a DDP run killed after a checkpoint resumes under ``torchrun`` to the uninterrupted DDP run's metrics.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from elsst_bench import runs
from elsst_bench.errors import BenchError
from elsst_bench.metric_names import dev_key
from elsst_bench.training import TrainConfig, train
from elsst_bench.training.distributed import World

BIN = Path(sys.executable).parent
ARGS = ["--adapter", "lora", "-l", "en,de", "--epochs", "3", "--batch-size", "16", "--max-pairs", "48",
        "--eval-tasks", "broader", "--quiet", "--run-id", "r"]
ROWS = 16


pytestmark = pytest.mark.slow  # torchrun processes


def _loss_on_share(rank: int, world: int, init_file: str, dataset_path: str, recipe_name: str, out: str) -> None:
    """Rank ``rank`` of ``world``: the recipe's loss on its share of 16 rows, then the loss and the gradient of one
    weight averaged over the world (what DDP steps with), saved to ``out/<rank>.pt``."""
    import torch.distributed as dist

    from elsst_bench.models import load_sentence_transformer
    from elsst_bench.pairs import training_pairs
    from elsst_bench.tasks import open_prepared
    from elsst_bench.training.recipes import Recipe, build_objective

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = load_sentence_transformer(None, device="cpu")  # the tests' tiny base ($ELSST_BENCH_MODEL)
    model.eval()  # no dropout: the two settings must see the same function
    dataset = open_prepared(dataset_path)
    recipe = Recipe.resolve(recipe_name, 1, 1)
    pairs = training_pairs(dataset, ["broader"], ["en"], limit=ROWS, min_grade=recipe.pair_min_grade)
    rows, make_loss = build_objective(recipe, model, pairs, dataset, None, gather=world > 1)
    share = rows.select(range(rank * ROWS // world, (rank + 1) * ROWS // world))
    features = [model.tokenize(share[column]) for column in ("anchor", "positive")]
    labels = torch.tensor(share["label"]) if "label" in share.column_names else None
    loss = make_loss(model)(features, labels)
    loss.backward()
    grad = model[0].auto_model.encoder.layer[0].attention.self.query.weight.grad.clone()
    value = loss.detach().clone()
    if world > 1:
        for tensor in (grad, value):
            dist.all_reduce(tensor)
            tensor /= world
        dist.destroy_process_group()
    torch.save({"loss": value, "grad": grad}, Path(out) / f"{rank}.pt")


@pytest.mark.parametrize("recipe", ["plain", "graded"])
def test_two_processes_on_halves_give_the_loss_and_gradient_of_the_whole_batch(recipe, small_dataset, tmp_path):
    import torch.multiprocessing as mp

    whole, split = tmp_path / "whole", tmp_path / "split"
    whole.mkdir()
    split.mkdir()
    _loss_on_share(0, 1, "", str(small_dataset.path), recipe, str(whole))
    mp.spawn(_loss_on_share, args=(2, str(tmp_path / "init"), str(small_dataset.path), recipe, str(split)), nprocs=2)
    one, two = torch.load(whole / "0.pt"), torch.load(split / "0.pt")
    assert torch.load(split / "1.pt")["loss"] == two["loss"]  # every process steps with the same average
    assert abs(float(one["loss"] - two["loss"])) <= 1e-5
    assert float((one["grad"] - two["grad"]).abs().max()) <= 1e-5 * max(1.0, float(one["grad"].abs().max()))
    # and the gather matters: without it each process would contrast 8 rows, a different (smaller) loss
    assert float(one["loss"]) > 0.1


def test_the_global_batch_must_divide_among_the_processes():
    assert World(size=2).per_process_batch(16) == 8
    with pytest.raises(BenchError, match="must divide evenly among 2 processes"):
        World(size=2).per_process_batch(15)
    with pytest.raises(BenchError, match="fewer than two rows per process"):
        World(size=4).per_process_batch(4)


def _torchrun(*args: str, out: Path, **popen) -> subprocess.Popen:
    command = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "--no-python",
               str(BIN / "elsst-bench"), "train", *args, "--runs-dir", str(out)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.fixture(scope="module")
def ddp_run(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    proc = _torchrun("--dataset", str(small_dataset.path), *ARGS, out=out)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return out / "r", stdout


def _scores(run_dir: Path) -> dict[str, float]:
    metrics = json.loads((run_dir / runs.METRICS_FILE).read_text())
    return {f"{t}/{l}/{m}": v for t, per in metrics["scores"].items() for l, s in per.items() for m, v in s.items()
            if isinstance(v, (int, float))}


def test_a_ddp_run_writes_one_complete_run_close_to_one_process(ddp_run, small_dataset, tmp_path):
    run_dir, stdout = ddp_run
    record = runs.read_config(run_dir)
    assert record["status"] == "complete"
    assert record["distributed"] == {"world_size": 2, "backend": "gloo", "per_process_batch_size": 8}
    assert record["options"]["batch_size"] == 16  # the option is the global batch, as in one process
    assert sorted(p.name for p in run_dir.iterdir()) == ["adapter", "config.json", "delta_spectrum.json",
                                                         "metrics.json", "rankings", "train_log.jsonl"]
    assert stdout.count(f"run {run_dir}") == 1  # rank 0 reports; rank 1 prints nothing
    log = [json.loads(line) for line in (run_dir / runs.TRAIN_LOG).read_text().splitlines()]
    assert sum(dev_key() in row for row in log) == 3  # one dev evaluation per epoch, logged once

    single = train(TrainConfig(adapter="lora", dataset=str(small_dataset.path), out=str(tmp_path), run_id="r",
                               languages=["en", "de"], epochs=3, batch_size=16, max_pairs=48, eval_tasks=["broader"]),
                   progress=False)
    assert runs.read_config(single)["distributed"]["world_size"] == 1
    assert runs.read_config(single)["steps"] == record["steps"]  # one step per global batch in both
    ours, theirs = _scores(run_dir), _scores(single)
    assert ours.keys() == theirs.keys()
    differences = {k: abs(ours[k] - theirs[k]) for k in ours}
    assert max(differences.values()) <= 0.05, differences  # same global batch, differently composed
    assert ours != theirs  # (and not the same run: the comparison above is between two trainings)


def test_a_killed_ddp_run_resumes_to_the_uninterrupted_runs_metrics(ddp_run, small_dataset, tmp_path):
    reference, _ = ddp_run
    out = tmp_path / "killed"
    proc = _torchrun("--dataset", str(small_dataset.path), *ARGS, out=out)
    launcher = psutil.Process(proc.pid)
    run_dir, deadline, killed = out / "r", time.time() + 300, False
    while time.time() < deadline and proc.poll() is None:
        done = list((run_dir / runs.CHECKPOINTS).glob("checkpoint-*/trainer_state.json"))
        log = run_dir / runs.TRAIN_LOG
        if done and log.exists():
            steps = [json.loads(line).get("step", 0) for line in log.read_text().splitlines() if line.strip()]
            if steps and max(steps) > min(int(p.parent.name.split("-")[1]) for p in done):
                # the launcher and both workers (torchrun starts each in a session of its own), mid-epoch 2
                for victim in [launcher, *launcher.children(recursive=True)]:
                    victim.kill()
                killed = True
                break
        time.sleep(0.02)
    proc.communicate()
    assert killed, "the run finished before it could be killed"
    assert runs.read_config(run_dir)["status"] == "running" and not (run_dir / runs.METRICS_FILE).exists()

    resumed = _torchrun("--dataset", str(small_dataset.path), *ARGS, "--resume", out=out)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-3000:]
    record = runs.read_config(run_dir)
    assert record["status"] == "complete" and record["resumed_from"].startswith("checkpoint-")
    ours, theirs = _scores(run_dir), _scores(reference)
    assert ours.keys() == theirs.keys()
    assert all(abs(ours[k] - theirs[k]) <= 1e-6 for k in ours), {k: (ours[k], theirs[k]) for k in ours}
    a, b = load_file(run_dir / "adapter" / "adapter.safetensors"), load_file(reference / "adapter" / "adapter.safetensors")
    assert all(float((a[k] - b[k]).abs().max()) <= 1e-6 for k in a)
