"""The one home of each shared fact: metric names, slugs, and modules that must stay light to import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from elsst_bench.metric_names import BINARY_METRICS, METRICS, PRIMARY_METRIC, dev_key
from elsst_bench.slugs import slug


def test_metric_names_are_the_published_ones():
    """The names in metrics.json, the entries and benchmark.json: changing one breaks every published file."""
    assert PRIMARY_METRIC == "ndcg@10_graded"
    assert BINARY_METRICS == ("mrr@10", "recall@1", "recall@3", "recall@5", "recall@10", "ndcg@3", "ndcg@10")
    assert METRICS == (*BINARY_METRICS, "ndcg@10_graded", "wup@1")
    assert dev_key() == "eval_dev_ndcg@10_graded"
    assert json.loads((ROOT / "leaderboards" / "benchmark.json").read_text())["primary_metric"] == PRIMARY_METRIC
    # one home: no other module of the package assigns these names (they import them from metric_names)
    import ast

    for path in (ROOT / "elsst_bench").rglob("*.py"):
        if path.name == "metric_names.py" or "track1" in path.parts:  # Track 1 is another benchmark's metrics
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            assert not names & {"PRIMARY_METRIC", "METRICS", "BINARY_METRICS"}, path


@pytest.mark.parametrize("text, default, expected", [
    ("sentence-transformers/all-MiniLM-L6-v2", "x", "all-minilm-l6-v2"),
    ("intfloat/multilingual-e5-small", "x", "multilingual-e5-small"),
    ("OrthoGeoLoRA", "x", "orthogeolora"),
    ("lora", "x", "lora"),
    ("--My  Model__v2.1--", "x", "my-model-v2-1"),
    ("/models/", "x", "x"),
    ("///", "model", "model"),
    (None, "x", "none"),
])
def test_slug(text, default, expected):
    assert slug(text, default=default) == expected


def test_committed_entries_keep_their_file_names():
    """Entry file names are made with :func:`slug`: every committed entry is still where the rule puts it."""
    from elsst_bench.leaderboard.entry import filename

    paths = sorted((ROOT / "leaderboards" / "entries").glob("*.json"))
    assert paths
    for path in paths:
        assert filename(json.loads(path.read_text(encoding="utf-8"))) == path.name


def test_light_modules_import_without_torch_or_ranx():
    """Names, devices, run configs, tasks and the leaderboard import neither torch nor ranx (the CLI's --help, the
    board's rendering and the report's reading stay fast)."""
    code = ("import sys\n"
            "import elsst_bench.metric_names, elsst_bench.devices, elsst_bench.slugs, elsst_bench.runs\n"
            "import elsst_bench.tasks, elsst_bench.leaderboard, elsst_bench.leaderboard.render\n"
            "heavy = sorted(m for m in ('torch', 'ranx', 'sentence_transformers', 'transformers') if m in sys.modules)\n"
            "print(','.join(heavy))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""

