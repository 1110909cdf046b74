"""Helpers for the leaderboard tests: real evaluated runs on the small dataset, cheap variants of them, a board.

One zero-shot evaluation of all-MiniLM-L6-v2 on the ``small_dataset`` fixture is made per test process
(:func:`evaluated_run`) and copied into variants: :func:`make_run` writes a run directory whose rankings are
the base ones with a few top-10 swaps drawn from a seed (still valid rankings, different numbers) and a
training-run ``config.json``. No model is trained. Registered as a plugin in ``conftest.py``; test modules
import these plain helpers.
"""

from __future__ import annotations

import atexit
import gzip
import hashlib
import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=None)
def evaluated_run(dataset_path: str) -> Path:
    """Zero-shot all-MiniLM-L6-v2 on the dataset (all tasks, en+de): rankings + metrics.json + config.json. A real
    encoder, not the tests' tiny random one: the tests compare it with perturbed copies of its rankings."""
    from elsst_bench.evaluation import evaluate_model
    from elsst_bench.models import load_sentence_transformer, model_identity
    from elsst_bench.runs import versions
    from elsst_bench.tasks import open_prepared

    ds = open_prepared(dataset_path)
    tmp = tempfile.mkdtemp(prefix="elsst-lb-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    run = Path(tmp) / "zeroshot-all-minilm-l6-v2"
    identity = model_identity("all-MiniLM-L6-v2")
    evaluate_model(load_sentence_transformer("all-MiniLM-L6-v2"), ds, split="test", identity=identity).write(run)
    (run / "config.json").write_text(json.dumps({
        "kind": "zero-shot", "adapter": "none", "model": identity, "trainable_params": 0,
        "dataset_id": ds.dataset_id, "dataset_fingerprint": ds.fingerprint, "versions": versions(),
    }, indent=2, sort_keys=True))
    return run


def read_run(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in gzip.decompress(path.read_bytes()).decode().splitlines()]


def write_run(path: Path, rows: list[list[str]]) -> None:
    path.write_bytes(gzip.compress("".join("\t".join(r) + ("" if r[-1].endswith("\n") else "\n") for r in rows)
                                   .encode(), mtime=0))


def perturb(rows: list[list[str]], seed: int) -> list[list[str]]:
    """Swap the concepts at two of the top-10 ranks for about a third of the queries (scores stay in place)."""
    by_query: dict[str, list[list[str]]] = {}
    for row in rows:
        by_query.setdefault(row[0], []).append(list(row))
    out = []
    for qid, cands in by_query.items():
        h = int(hashlib.sha256(f"{seed}:{qid}".encode()).hexdigest(), 16)
        if h % 3 == 0:
            i, j = h // 3 % 10, h // 30 % 10
            cands[i][2], cands[j][2] = cands[j][2], cands[i][2]
        out.extend(cands)
    return out


#: LoRA r=8 on all-MiniLM-L6-v2's 36 block linears, what ``submit`` re-counts for :func:`make_run`'s default setup
LORA_R8_MINILM = 331_776


def make_run(base: Path, target: Path, *, seed: int = 0, adapter: str = "lora", rank: int = 8, lr: float = 3e-3,
             trainable_params: int = LORA_R8_MINILM, perturb_seed: int | None = None, name: str | None = None,
             tasks: tuple[str, ...] | None = None, languages: tuple[str, ...] | None = None) -> Path:
    """A training-run-shaped directory from ``base``'s rankings (perturbed unless ``perturb_seed`` is -1). Its
    ``trainable_params`` must be what ``adapter`` at ``rank`` trains on all-MiniLM-L6-v2 (``submit`` re-counts
    it), unless the adapter is not one of elsst-bench's."""
    target.mkdir(parents=True)
    (target / "rankings").mkdir()
    chosen = perturb_seed if perturb_seed is not None else seed
    for src in sorted((base / "rankings").glob("*.tsv.gz")):
        task, lang = src.name.split(".")[:2]
        if (tasks and task not in tasks) or (languages and lang not in languages):
            continue
        dst = target / "rankings" / src.name
        if chosen == -1:
            shutil.copyfile(src, dst)
        else:
            write_run(dst, perturb([r[:5] + ["test-run"] for r in read_run(src)], chosen))
    base_config = json.loads((base / "config.json").read_text())
    config = {
        "run_id": name or target.name, "status": "complete", "adapter": adapter, "model": base_config["model"],
        "seed": seed, "dataset_id": base_config["dataset_id"],
        "dataset_fingerprint": base_config["dataset_fingerprint"], "trainable_params": trainable_params,
        "versions": base_config["versions"], "device": "cpu", "train_seconds": 12.5, "peak_memory_mb": 812.0,
        "options": {"adapter": adapter, "rank": rank, "budget": None, "lr": lr, "epochs": 3, "batch_size": 64,
                    "tasks": ["broader", "synonym"], "languages": ["en"], "seed": seed, "options": {}},
    }
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return target


def new_board(root: Path, dataset) -> Path:
    from elsst_bench.leaderboard import init_board

    board = root / "board"
    init_board(board, dataset)
    return board


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}
