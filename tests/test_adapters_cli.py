"""`elsst-bench adapters`: the listing (in the test process: every method budget-solved on the tests' tiny base), and
bad input -> exit status 2 with one line on stderr (the console script, in a process of its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from elsst_bench.adapters import available_adapters, describe_adapters, method_info

EXE = Path(sys.executable).parent / "elsst-bench"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, env=env, timeout=300)


def test_lists_every_adapter_with_formula_and_source(cli):
    result = cli("adapters")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n\n")[0].splitlines()  # the table; a note on the counted column follows it
    for name in available_adapters():
        method = method_info(name)
        line = next(line for line in lines if line.split()[:1] == [name])
        assert method.source in line and method.formula in line
    assert "params at lora-r8" in lines[0] and "trainable parameters with the size knob solved" in result.stdout
    sources = {line.split()[0]: line.split()[1] for line in lines[2:]}
    assert sources["lora"] == "native" and sources["dora"] == "peft" and sources["vera"] == "peft"
    assert sources["full"] == "baseline" and sources["none"] == "baseline"


def test_json_for_one_adapter():
    result = run("adapters", "orthogeolora", "--json", "--no-counts")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row == {"name": "orthogeolora", "source": "native", "params": "r·(d_in + d_out) + r", "knob": "rank",
                   "summary": method_info("orthogeolora").summary}


def test_json_lists_the_registry(cli):
    result = cli("adapters", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [{k: v for k, v in row.items() if k != "budget_params"} for row in rows] == describe_adapters()


@pytest.mark.slow  # every method applied for real
def test_counts_at_the_budget_are_what_apply_adapter_trains(cli):
    """The listing's count column, on the tests' base model, against adapters applied for real."""
    import torch

    from elsst_bench.adapters import apply_adapter, count_trainable
    from elsst_bench.models import load_sentence_transformer

    result = cli("adapters", "--json", "--budget", "lora-r4")
    assert result.returncode == 0, result.stderr
    shown = {row["name"]: row["budget_params"] for row in json.loads(result.stdout)}
    torch.manual_seed(0)
    for name in ("lora", "oft", "c3a", "ia3"):
        model = load_sentence_transformer(os.environ["ELSST_BENCH_MODEL"])
        apply_adapter(model, name, budget="lora-r4")
        assert shown[name] == f"{count_trainable(model):,}", name
    assert shown["none"] == "0"


@pytest.mark.parametrize("name", ["foo", "LoRA"])
def test_unknown_adapter_exits_2_with_one_line(name):
    result = run("adapters", name)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"unknown adapter '{name}'" in lines[0] and "lora, orthogeolora" in lines[0]


def test_the_documented_table_is_the_registry():
    """docs/adapters.md's table holds every method as the registry describes it (one home: the registry; the page
    is checked against it, so a new method or an edited formula cannot leave the page behind)."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "adapters.md").read_text(encoding="utf-8")
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in page.splitlines()
            if line.startswith("| `")]
    documented = [{"name": r[0].strip("`"), "source": r[1], "params": r[2], "knob": r[3], "summary": r[4]} for r in rows]
    assert documented == describe_adapters()
