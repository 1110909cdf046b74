"""`elsst-bench train`, `export`, `inspect`: determinism, resume after SIGKILL, NaN stop, merged export, smoke."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from conftest import assert_one_line_error
from tiny_model import LINEAR_LAYERS, LORA_R8_PARAMS

from elsst_bench import runs
from elsst_bench.errors import BenchError
from elsst_bench.metric_names import dev_key
from elsst_bench.training import NonFiniteLoss, TrainConfig, train

SMALL = dict(languages=["en", "de"], epochs=2, batch_size=16, max_pairs=48, eval_tasks=["broader", "synonym"])


def config(small_dataset, tmp_path: Path, adapter: str = "lora", **overrides) -> TrainConfig:
    options = {**SMALL, **overrides}
    return TrainConfig(adapter=adapter, dataset=str(small_dataset.path), out=str(tmp_path), **options)


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / runs.METRICS_FILE).read_text())


def flat_scores(metrics: dict) -> dict[str, float]:
    return {f"{t}/{l}/{m}": v for t, per in metrics["scores"].items() for l, s in per.items()
            for m, v in s.items() if isinstance(v, (int, float))}


def test_run_directory_contents(small_dataset, tmp_path):
    run_dir = train(config(small_dataset, tmp_path), progress=False)
    record = runs.read_config(run_dir)
    assert record["status"] == "complete"
    assert record["dataset_fingerprint"] == small_dataset.fingerprint
    assert record["trainable_params"] == LORA_R8_PARAMS and record["adapter_config"]["method"] == "lora"
    assert record["options"]["lr"] == 3e-3 and record["options"]["languages"] == ["de", "en"]
    assert record["steps"] > 0 and record["train_seconds"] > 0 and record["peak_memory_mb"] > 0
    assert {"torch", "sentence-transformers", "elsst-bench"} <= set(record["versions"])
    assert sorted(p.name for p in (run_dir / "adapter").iterdir()) == ["adapter.safetensors", "adapter_config.json"]
    assert not (run_dir / runs.CHECKPOINTS).exists()
    log = [json.loads(line) for line in open(run_dir / runs.TRAIN_LOG)]
    assert any("loss" in row for row in log) and sum(dev_key() in row for row in log) == 2
    metrics = read_metrics(run_dir)
    assert metrics["split"] == "test" and metrics["dataset_fingerprint"] == small_dataset.fingerprint
    assert set(metrics["scores"]) == {"broader", "synonym"}
    assert sorted(p.name for p in (run_dir / "rankings").iterdir()) == [
        "broader.de.test.tsv.gz", "broader.en.test.tsv.gz", "synonym.de.test.tsv.gz", "synonym.en.test.tsv.gz"]


def test_same_seed_gives_bit_identical_adapter_tensors(small_dataset, tmp_path):
    first = train(config(small_dataset, tmp_path / "a", epochs=1), progress=False)
    second = train(config(small_dataset, tmp_path / "b", epochs=1), progress=False)
    a, b = load_file(first / "adapter" / "adapter.safetensors"), load_file(second / "adapter" / "adapter.safetensors")
    assert a.keys() == b.keys()
    assert all(bool((a[k] == b[k]).all()) for k in a)
    # the file itself too (its header's keys are sorted: safetensors writes them in hash-map order), so a run's
    # recorded adapter_sha256 is reproducible
    weights = "adapter/adapter.safetensors"
    assert (first / weights).read_bytes() == (second / weights).read_bytes()
    assert runs.read_config(first)["adapter_sha256"] == runs.read_config(second)["adapter_sha256"]
    assert any(bool((a[k] != 0).any()) for k in a if "lora_B" in k or k.endswith("B"))  # training moved B
    third = train(config(small_dataset, tmp_path / "c", epochs=1, seed=1), progress=False)
    c = load_file(third / "adapter" / "adapter.safetensors")
    assert any(not bool((a[k] == c[k]).all()) for k in a)


@pytest.mark.slow  # a training process SIGKILLed, then resumed
def test_sigkill_then_resume_reaches_the_same_metrics(small_dataset, tmp_path, cli):
    """The killed and the resumed run are processes of their own; the uninterrupted reference and the refusal to
    overwrite run in the test process (the same code, without the interpreter's start)."""
    exe = Path(sys.executable).parent / "elsst-bench"
    args = ["train", "--adapter", "lora", "--dataset", str(small_dataset.path), "-l", "en,de", "--epochs", "3",
            "--batch-size", "16", "--max-pairs", "48", "--eval-tasks", "broader", "--quiet", "--run-id", "r"]
    reference = cli(*args, "--out", str(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen([str(exe), *args, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "r" / runs.TRAIN_LOG
    deadline = time.time() + 300
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        checkpoints = list((out / "r" / runs.CHECKPOINTS).glob("checkpoint-*/trainer_state.json"))
        if checkpoints and log.exists():
            steps = [json.loads(line).get("step", 0) for line in log.read_text().splitlines() if line.strip()]
            first = min(int(p.parent.name.split("-")[1]) for p in checkpoints)
            if steps and max(steps) > first:  # past the first checkpoint, mid-way through epoch 2
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = max(steps)
                break
        time.sleep(0.02)
    proc.wait()
    assert killed_at is not None, "the run finished before it could be killed"
    assert runs.read_config(out / "r")["status"] == "running"
    assert not (out / "r" / runs.METRICS_FILE).exists()

    again = cli(*args, "--out", str(out))
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses to overwrite silently
    resumed = subprocess.run([str(exe), *args, "--out", str(out), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    record = runs.read_config(out / "r")
    assert record["status"] == "complete" and record["resumed_from"].startswith("checkpoint-")
    ours, theirs = flat_scores(read_metrics(out / "r")), flat_scores(read_metrics(tmp_path / "ref" / "r"))
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert abs(ours[key] - theirs[key]) <= 1e-6, key
    a = load_file(out / "r" / "adapter" / "adapter.safetensors")
    b = load_file(tmp_path / "ref" / "r" / "adapter" / "adapter.safetensors")
    assert all(float((a[k] - b[k]).abs().max()) <= 1e-6 for k in a)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(small_dataset, tmp_path):
    steps_per_epoch = None
    probe = train(config(small_dataset, tmp_path / "probe", epochs=1), progress=False)
    steps_per_epoch = runs.read_config(probe)["steps"]
    with pytest.raises(NonFiniteLoss) as info:
        train(config(small_dataset, tmp_path, epochs=3, run_id="nan", fail_at_step=steps_per_epoch + 2),
              progress=False)
    message = str(info.value)
    assert "nan" in message and f"step {steps_per_epoch + 2}" in message and "checkpoint-" in message
    checkpoint = tmp_path / "nan" / runs.CHECKPOINTS / f"checkpoint-{steps_per_epoch}"
    tensors = load_file(checkpoint / "adapter" / "adapter.safetensors")
    assert all(bool(t.isfinite().all()) for t in tensors.values())
    assert runs.read_config(tmp_path / "nan")["status"] == "running"


def test_export_merged_gives_the_same_embeddings_and_metrics(small_dataset, tmp_path, cli):
    from sentence_transformers import SentenceTransformer

    run_dir = train(config(small_dataset, tmp_path, adapter="orthogeolora"), progress=False)
    merged = tmp_path / "merged"
    result = cli("export", str(run_dir), "--merged", str(merged))
    assert result.returncode == 0, result.stderr
    plain = SentenceTransformer(str(merged), device="cpu")
    adapted, _ = runs.load_run(run_dir)
    texts = ["social groups", "families", "heads of household", "Arbeitslosigkeit"]
    a = adapted.encode(texts, convert_to_numpy=True)
    b = plain.encode(texts, convert_to_numpy=True)
    assert np.abs(a - b).max() <= 1e-5
    base = SentenceTransformer(runs.read_config(run_dir)["model"]["location"], device="cpu")
    assert np.abs(base.encode(texts, convert_to_numpy=True) - a).max() > 1e-4  # the adapter did something

    evaluated = cli("evaluate", "--model", str(merged), "--dataset", str(small_dataset.path), "-l", "en,de",
                    "--tasks", "broader,synonym", "--out", str(tmp_path / "merged-eval"), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    ours, theirs = flat_scores(read_metrics(run_dir)), flat_scores(read_metrics(tmp_path / "merged-eval"))
    for key in ours:
        assert abs(ours[key] - theirs[key]) <= 1e-6, key


def test_inspect_reports_spectra_and_writes_plots(small_dataset, tmp_path, cli):
    run_dir = train(config(small_dataset, tmp_path, epochs=1), progress=False)
    result = cli("inspect", str(run_dir), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["trainable_params"] == LORA_R8_PARAMS and len(info["layers"]) == LINEAR_LAYERS
    assert all(0 < layer["effective_rank"] <= 8 + 1e-9 for layer in info["layers"].values())
    for name in ("loss.png", "spectra.png"):
        assert (run_dir / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("bad, needle", [
    (["--adapter", "lorax"], "unknown adapter 'lorax'"),
    (["--adapter", "lora", "-l", "xx"], "unknown language 'xx'"),
    (["--adapter", "lora", "--rank", "0"], "rank"),
    (["--adapter", "eigenlorax"], "--sources"),
    (["--adapter", "lora", "--resume", "--run-id", "nothing-here"], "nothing to resume"),
    (["--adapter", "lora", "--max-pairs", "0"], "--max-pairs must be >= 1"),
    (["--adapter", "lora", "--dev-languages", "xx"], "unknown language 'xx'"),
])
def test_bad_train_options_exit_2_with_one_line(small_dataset, tmp_path, cli, bad, needle):
    result = cli("train", "--dataset", str(small_dataset.path), "--runs-dir", str(tmp_path), "--max-pairs", "8",
                 "--epochs", "1", "--quiet", *bad)
    assert_one_line_error(result, needle)


def test_a_dev_only_run_keeps_its_adapter_and_dev_score_and_never_touches_test(small_dataset, tmp_path, cli):
    result = cli("train", "--adapter", "lora", "--dataset", small_dataset.path, "--runs-dir", tmp_path, "--run-id", "dev",
                 "-l", "en,de", "--dev-languages", "de", "--no-test", "--max-pairs", "8", "--epochs", "1",
                 "--batch-size", "8", "--eval-tasks", "broader", "--quiet")
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "dev"
    record = runs.read_config(run_dir)
    assert record["status"] == "complete" and record["options"]["test"] is False
    assert record["options"]["dev_languages"] == ["de"] and record["options"]["eval_languages"] == ["de", "en"]
    assert f"best dev score (macro graded nDCG@10): {record['best_dev_score']:.4f}; not scored on test" in result.stdout
    assert not (run_dir / runs.METRICS_FILE).exists() and not (run_dir / "rankings").exists()
    assert (run_dir / "adapter" / "adapter.safetensors").exists() and "test_main_score" not in record
    dev_rows = [json.loads(line) for line in open(run_dir / runs.TRAIN_LOG) if dev_key() in line]
    assert len(dev_rows) == 1 and dev_rows[0][dev_key()] == record["best_dev_score"]  # de only: broader/de


def test_no_dataset_says_which_command_to_run(tmp_path, cli):
    result = cli("train", "--adapter", "lora", "--dataset", str(tmp_path / "none"), "--runs-dir", str(tmp_path))
    assert result.returncode == 2 and "elsst-bench prepare" in result.stderr


def test_spectra_log_records_the_trajectory_without_changing_training(small_dataset, tmp_path):
    plain = train(config(small_dataset, tmp_path / "plain", epochs=1), progress=False)
    tracked = train(config(small_dataset, tmp_path / "tracked", epochs=1, spectra_every=2), progress=False)
    a, b = load_file(plain / "adapter" / "adapter.safetensors"), load_file(tracked / "adapter" / "adapter.safetensors")
    assert all(bool((a[k] == b[k]).all()) for k in a)  # reading ΔW's spectrum does not perturb training
    rows = [json.loads(line) for line in open(tracked / "spectra.jsonl")]
    steps = runs.read_config(tracked)["steps"]
    assert [r["step"] for r in rows] == sorted({0, *range(2, steps + 1, 2), steps})
    assert rows[0]["mean_effective_rank"] == 0.0  # LoRA starts at ΔW = 0
    last = rows[-1]["layers"]
    assert len(last) == LINEAR_LAYERS and 1.0 < rows[-1]["mean_effective_rank"] <= 8.0
    # An independent computation of the last point: exp(entropy) of σ/Σσ from the saved adapter's ΔW.
    from elsst_bench.adapters import delta_weights

    model, _ = runs.load_run(tracked)
    name, delta = next(iter(delta_weights(model).items()))
    s = np.linalg.svd(delta.double().numpy(), compute_uv=False)
    p = s[s > 0] / s.sum()
    assert abs(float(np.exp(-(p * np.log(p)).sum())) - last[name]["effective_rank"]) < 1e-6
    assert np.allclose(s[:16], last[name]["singular_values"], atol=1e-9)
    with pytest.raises(BenchError, match="--spectra-every needs an adapter"):
        train(config(small_dataset, tmp_path / "full", adapter="full", spectra_every=2), progress=False)


def _methods_with_reload_hooks() -> list[str]:
    """Adapters whose Method overrides a checkpoint-reload hook (PiSSA moves its residual base there)."""
    from elsst_bench.adapters import available_adapters, get_method
    from elsst_bench.adapters.method import Method

    hooks = ("before_reload", "after_reload")
    return [name for name in available_adapters()
            if any(getattr(type(get_method(name)), h) is not getattr(Method, h) for h in hooks)]


@pytest.mark.matrix("adapter")
@pytest.mark.parametrize("adapter", _methods_with_reload_hooks())
def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(small_dataset, tmp_path, adapter):
    """The Trainer reloads adapter checkpoints through the public path (with the method's reload hooks)."""
    reference = train(config(small_dataset, tmp_path / "ref", adapter=adapter, epochs=2, run_id="r"), progress=False)
    steps_per_epoch = runs.read_config(reference)["steps"] // 2
    with pytest.raises(NonFiniteLoss):  # interrupted in epoch 2, after the epoch-1 checkpoint was written
        train(config(small_dataset, tmp_path / "cut", adapter=adapter, epochs=2, run_id="r",
                     fail_at_step=steps_per_epoch + 1), progress=False)
    resumed = train(config(small_dataset, tmp_path / "cut", adapter=adapter, epochs=2, run_id="r", resume=True),
                    progress=False)
    assert runs.read_config(resumed)["resumed_from"] == f"checkpoint-{steps_per_epoch}"
    a = load_file(resumed / "adapter" / "adapter.safetensors")
    b = load_file(reference / "adapter" / "adapter.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert float((a[key] - b[key]).abs().max()) <= 1e-6, key
    ours, theirs = flat_scores(read_metrics(resumed)), flat_scores(read_metrics(reference))
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert abs(ours[key] - theirs[key]) <= 1e-6, key


def test_adalora_prunes_its_ranks_during_training_and_pays_its_orthogonality_penalty(small_dataset, tmp_path,
                                                                                     monkeypatch):
    """The Trainer runs AdaLoRA's allocator after every optimiser step (the run's step count is its schedule): at
    the last step the singular values Λ are masked to an average of r per module, from r₀ = 1.5·r; and the
    penalty is added to the loss."""
    from elsst_bench.adapters.adalora import AdaLoRA

    penalties = []
    real = AdaLoRA.regularization

    def spy(self, state):
        term = real(self, state)
        penalties.append(float(term))
        return term

    monkeypatch.setattr(AdaLoRA, "regularization", spy)
    run = train(config(small_dataset, tmp_path, adapter="adalora", rank=4, lr=1e-2, epochs=1), progress=False)  # the
    # kept epoch is the last: the final mask is in it
    record = runs.read_config(run)
    options = record["adapter_config"]["options"]
    assert options["total_step"] == record["steps"] and options["init_r"] is None
    tensors = load_file(run / "adapter" / "adapter.safetensors")
    values = [t for name, t in tensors.items() if name.endswith("lora_E.default")]
    assert len(values) == LINEAR_LAYERS and all(t.numel() == 6 for t in values)  # r₀ = 6 each
    kept = sum(int((t != 0).sum()) for t in values)
    assert kept <= 4 * LINEAR_LAYERS < 6 * LINEAR_LAYERS  # pruned to the budget of r = 4 on average
    assert penalties and all(p > 0 for p in penalties)
