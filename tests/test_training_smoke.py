"""Every registered method trains, saves, evaluates and exports on a tiny subset (CI smoke test)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from elsst_bench import runs
from elsst_bench.adapters import available_methods, method_info
from elsst_bench.metric_names import PRIMARY_METRIC
from elsst_bench.training import TrainConfig, train

TINY = dict(languages=["en"], epochs=1, batch_size=16, max_pairs=32, eval_tasks=["broader"])


@pytest.fixture(scope="module")
def lora_sources(small_dataset, tmp_path_factory):
    """Two LoRA runs on other tasks: the sources EigenLoRAx recycles."""
    out = tmp_path_factory.mktemp("sources")
    return [str(train(TrainConfig(adapter="lora", dataset=str(small_dataset.path), out=str(out), tasks=[task],
                                  **{**TINY, "languages": ["en", "de"]}), progress=False))
            for task in ("synonym", "crosslingual")]


@pytest.mark.matrix("method")
@pytest.mark.parametrize("method", available_methods())  # every registry entry, baselines included
def test_method_trains_saves_evaluates_and_exports(method, small_dataset, tmp_path, cli, lora_sources):
    extra = {"sources": lora_sources} if method == "eigenlorax" else {}
    run_dir = train(TrainConfig(adapter=method, dataset=str(small_dataset.path), out=str(tmp_path), **TINY, **extra),
                    progress=False)
    record = runs.read_config(run_dir)
    assert record["status"] == "complete" and record["adapter"] == method
    metrics = json.loads((run_dir / runs.METRICS_FILE).read_text())
    assert 0.0 <= metrics["scores"]["broader"]["en"][PRIMARY_METRIC] <= 1.0
    if not method_info(method).trains:
        assert record["trainable_params"] == 0
    else:
        assert record["trainable_params"] > 0 and record["steps"] >= 1
    merged = tmp_path / "merged"
    result = cli("export", str(run_dir), "--merged", str(merged))
    assert result.returncode == 0, result.stderr
    from sentence_transformers import SentenceTransformer

    texts = ["labour market", "households"]
    adapted, _ = runs.load_run(run_dir)
    exported = SentenceTransformer(str(merged), device="cpu")
    assert np.abs(adapted.encode(texts) - exported.encode(texts)).max() <= 1e-5
