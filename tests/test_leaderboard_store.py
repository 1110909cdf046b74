"""Leaderboard: re-scoring, entries, grouping over seeds, duplicates, rendering and --verify.

Runs are real: one zero-shot evaluation of the default model on the small dataset (en + de, all tasks), and
variants of it with a few top-10 swaps (see tests/leaderboard_fixtures.py). Numbers are checked against an
independent call of ``score_rankings`` on the submitted TREC files.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error
from leaderboard_fixtures import evaluated_run, make_run, new_board, snapshot

from elsst_bench.errors import DataError
from elsst_bench.evaluation import Rankings, read_trec, score_rankings
from elsst_bench.evaluation.metrics import macro
from elsst_bench.leaderboard import read_benchmark, store, submit, tables, verify
from elsst_bench.leaderboard.codec import TOP
from elsst_bench.metric_names import PRIMARY_METRIC


def independent_scores(run_dir: Path, ds) -> dict:
    """Scores of every test ranking file of a run, straight from the full TREC file (top 100)."""
    th = ds.thesaurus()
    out: dict = {}
    for path in sorted((run_dir / "rankings").glob("*.test.tsv.gz")):
        task, lang = path.name.split(".")[:2]
        data = ds.load(task, lang)
        ranked = read_trec(path)
        pool = sorted(data.corpus)
        row = {c: i for i, c in enumerate(pool)}
        qids = sorted(data.qrels["test"])
        rows = np.full((len(qids), max(len(v) for v in ranked.values())), -1, dtype=np.int64)
        for i, qid in enumerate(qids):
            rows[i, :len(ranked[qid])] = [row[c] for c in ranked[qid]]
        scores = score_rankings(Rankings(qids, pool, rows, np.zeros(rows.shape, np.float32)), data.qrels["test"], th)
        out.setdefault(task, {})[lang] = scores
    for task in out:
        out[task]["macro"] = macro(dict(out[task]))
    return out


@pytest.fixture(scope="module")
def base_run(small_dataset) -> Path:
    return evaluated_run(str(small_dataset.path))


@pytest.fixture(scope="module")
def board_with_runs(small_dataset, base_run, tmp_path_factory):
    """A board with the zero-shot run and three seeds of one (perturbed) configuration, submitted in-process."""
    root = tmp_path_factory.mktemp("lb-store")
    board = new_board(root, small_dataset)
    runs = [base_run] + [make_run(base_run, root / "runs" / f"lora-s{k}", seed=k) for k in range(3)]
    entries = [submit(run, board, dataset=small_dataset.path).entry for run in runs]
    return board, runs, entries


def test_entry_numbers_are_rescored_from_rankings_not_metrics_json(small_dataset, base_run, tmp_path, cli):
    run = tmp_path / "tampered"
    shutil.copytree(base_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    for per_lang in metrics["scores"].values():
        for scores in per_lang.values():
            for key in list(scores):
                if isinstance(scores[key], float):
                    scores[key] = 0.999
    metrics["main_score"] = 0.999
    (run / "metrics.json").write_text(json.dumps(metrics))
    board = new_board(tmp_path, small_dataset)

    result = cli("submit", run, "--leaderboard", board, "--dataset", small_dataset.path)
    assert result.returncode == 0, result.stderr
    assert "reports nDCG@10 graded 0.9990 for broader/en; the board shows the re-scored" in result.stdout
    (entry_path,) = store.entry_paths(board)
    entry = json.loads(entry_path.read_text())
    truth = independent_scores(run, small_dataset)
    assert entry["scores"] == truth  # exactly: the stored top 10 scores like the full top-100 file
    assert entry["scores"]["broader"]["en"][PRIMARY_METRIC] != 0.999
    assert "0.9990" not in (board / "README.md").read_text()
    broader_en = truth["broader"]["macro"][PRIMARY_METRIC]
    assert f"{broader_en:.4f}" in (board / "README.md").read_text()
    # A run without metrics.json is just as good: the rankings are what count.
    (run / "metrics.json").unlink()
    again = submit(run, new_board(tmp_path / "other", small_dataset), dataset=small_dataset.path,
                   name="no metrics.json")
    assert again.entry["scores"] == truth and again.notes == []


def test_top10_rescoring_equals_full_top100(small_dataset, board_with_runs):
    board, runs, entries = board_with_runs
    for run, entry in zip(runs, entries):
        assert entry["rankings"]["k"] == TOP == 10
        assert entry["scores"] == independent_scores(run, small_dataset)


def test_entry_format_is_small_and_complete(board_with_runs, small_dataset):
    board, runs, entries = board_with_runs
    paths = store.entry_paths(board)
    assert len(paths) == 4
    zero, lora = entries[0], entries[1]
    assert zero["seed"] is None and zero["adapter"] == "none" and zero["trainable_params"] == 0
    assert lora["seed"] == 0 and lora["options"]["rank"] == 8 and lora["options"]["lr"] == 0.003
    assert lora["run"]["train_seconds"] == 12.5 and lora["run"]["peak_memory_mb"] == 812.0
    assert lora["dataset_fingerprint"] == small_dataset.fingerprint and lora["split"] == "test"
    assert set(lora["rankings"]["runs"]) == {"broader", "synonym", "crosslingual", "definition"}
    assert "location" not in lora["model"]  # no local paths in the repository
    for path in paths:
        assert path.stat().st_size < 30_000
        assert path.read_text() == json.dumps(json.loads(path.read_text()), ensure_ascii=False, sort_keys=True,
                                              indent=2) + "\n"


def test_seeds_group_into_one_row_with_sample_std(board_with_runs):
    board, runs, entries = board_with_runs
    (table,) = [t for t in tables([e for _, e in store.load_entries(board)]) if t.task == "crosslingual"]
    assert table.languages == ("de",)
    assert [g.adapter for g in table.groups] == ["none", "lora"]  # zero-shot beats the perturbed copies
    zero, lora = table.groups
    values = [e["scores"]["crosslingual"]["de"][PRIMARY_METRIC] for e in entries[1:]]
    assert lora.seeds == [0, 1, 2]
    assert lora.stats["macro"][PRIMARY_METRIC].mean == pytest.approx(statistics.mean(values), abs=1e-12)
    assert lora.stats["macro"][PRIMARY_METRIC].std == pytest.approx(statistics.stdev(values), abs=1e-12)
    assert zero.stats["macro"][PRIMARY_METRIC].std is None  # one seed: shown as "–"
    readme = (board / "README.md").read_text()
    assert f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" in readme
    assert "| 1 | sentence-transformers/all-MiniLM-L6-v2 | none | 0 | " in readme


def test_multilingual_tables_have_a_macro_row_then_languages(board_with_runs, cli):
    board, _, entries = board_with_runs
    result = cli("leaderboard", "--leaderboard", board, "--task", "broader")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("broader · de, en") for line in lines)
    assert not any("synonym" in line for line in lines)
    rows = [line.split() for line in lines if line[:1].isdigit() or line.startswith(" ")]
    assert [r[0] for r in rows if r[0].isdigit()] == ["1", "2"]
    macro = entries[0]["scores"]["broader"]["macro"][PRIMARY_METRIC]
    assert f"{macro:.4f} ± –" in result.stdout
    as_json = json.loads(cli("leaderboard", "--leaderboard", board, "--json").stdout)
    assert [t["task"] for t in as_json] == ["broader", "synonym", "crosslingual", "definition"]
    assert as_json[0]["rows"][1]["seeds"] == [0, 1, 2]


def test_exact_duplicate_is_refused_and_nothing_changes(board_with_runs, small_dataset, cli):
    board, runs, _ = board_with_runs
    before = snapshot(board)
    result = cli("submit", runs[1], "--leaderboard", board, "--dataset", small_dataset.path)
    assert_one_line_error(result, "exact duplicate", "lora-all-minilm-l6-v2-s0-")
    assert snapshot(board) == before


def test_render_is_deterministic_and_verify_passes(board_with_runs, small_dataset, cli):
    board, _, _ = board_with_runs
    before = snapshot(board)
    bench = read_benchmark(board)
    assert store.rerender(board, bench) == []  # already up to date: nothing rewritten
    assert store.rendered(bench, [e for _, e in store.load_entries(board)]) == {
        "README.md": before["README.md"], "index.html": before["index.html"]}
    result = cli("leaderboard", "--verify", "--leaderboard", board, "--dataset", small_dataset.path)
    assert result.returncode == 0, result.stderr
    assert "4 entries re-scored" in result.stdout
    assert snapshot(board) == before


def _copy_board(board: Path, target: Path) -> Path:
    shutil.copytree(board, target, ignore=shutil.ignore_patterns(".lock"))
    return target


def test_verify_fails_on_an_edited_number(board_with_runs, small_dataset, tmp_path, cli):
    board = _copy_board(board_with_runs[0], tmp_path / "b")
    path = store.entry_paths(board)[0]
    entry = json.loads(path.read_text())
    entry["scores"]["broader"]["en"]["mrr@10"] += 0.01
    path.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    result = cli("leaderboard", "--verify", "--leaderboard", board, "--dataset", small_dataset.path)
    assert_one_line_error(result, path.name, "scores/broader/en/mrr@10 is", "on the board but re-scores to")


def test_verify_fails_on_altered_rankings_and_stale_pages(board_with_runs, small_dataset, tmp_path, cli):
    board = _copy_board(board_with_runs[0], tmp_path / "b")
    path = store.entry_paths(board)[1]
    entry = json.loads(path.read_text())
    blob = entry["rankings"]["runs"]["synonym"]["en"]
    from elsst_bench.leaderboard.codec import decode_rows, encode_rows

    rows = decode_rows(blob, "x")
    rows[0, [0, 1]] = rows[0, [1, 0]]
    entry["rankings"]["runs"]["synonym"]["en"] = encode_rows(rows, int(rows.max()) + 1)
    path.write_text(json.dumps(entry, indent=2, sort_keys=True) + "\n")
    assert_one_line_error(cli("leaderboard", "--verify", "--leaderboard", board, "--dataset", small_dataset.path),
                   path.name, "the stored rankings hash to")

    board = _copy_board(board_with_runs[0], tmp_path / "c")
    (board / "README.md").write_text((board / "README.md").read_text().replace("2026", "2025"))
    with pytest.raises(DataError, match="README.md is out of date .* run `elsst-bench leaderboard --render"):
        verify(board, small_dataset.path)
    assert cli("leaderboard", "--render", "--leaderboard", board).returncode == 0
    assert verify(board, small_dataset.path).startswith(f"{board}: 4 entries")


def test_empty_board(small_dataset, tmp_path, cli):
    board = new_board(tmp_path, small_dataset)
    assert {"README.md", "benchmark.json", "index.html"} <= set(snapshot(board))
    assert "No entries yet" in (board / "README.md").read_text()
    shown = cli("leaderboard", "--leaderboard", board)
    assert shown.returncode == 0 and "no entries yet" in shown.stdout
    checked = cli("leaderboard", "--verify", "--leaderboard", board)  # no dataset needed for an empty board
    assert checked.returncode == 0, checked.stderr
    assert "no entries yet" in checked.stdout
    assert_one_line_error(cli("leaderboard", "--leaderboard", tmp_path / "nowhere"), "benchmark.json is missing")
    assert_one_line_error(cli("leaderboard", "--leaderboard", board, "--task", "bogus"), "unknown task 'bogus'")


@pytest.mark.slow  # every committed entry re-scored
def test_committed_board_verifies(cli):
    """The repository's own board: every entry re-scores exactly and the pages are up to date."""
    result = cli("leaderboard", "--verify", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    bench = json.loads((ROOT / "leaderboards" / "benchmark.json").read_text())
    assert bench["dataset_id"] == "elsst-r5" and bench["split"] == "test"
    assert bench["primary_metric"] == PRIMARY_METRIC


def test_benchmark_dataset_is_prepared_when_the_default_one_is_stale(tmp_path, monkeypatch):
    """No --dataset: a default dataset with another fingerprint is ignored; the release is prepared into the cache
    and accepted only if its files hash to the pinned fingerprint."""
    from elsst_bench.leaderboard import Benchmark, benchmark_dataset
    from elsst_bench.leaderboard.benchmark import cache_dir

    stale = tmp_path / "data" / "prepared" / "elsst-r5"
    stale.mkdir(parents=True)
    (stale / "manifest.json").write_text(json.dumps({"fingerprint": "0" * 64, "dataset_id": "elsst-r5",
                                                     "files": {}}))
    monkeypatch.setenv("ELSST_BENCH_DATA", str(tmp_path / "data" / "prepared"))
    monkeypatch.setenv("ELSST_BENCH_CACHE", str(tmp_path / "cache"))
    pinned = json.loads((ROOT / "leaderboards" / "benchmark.json").read_text())
    bench = Benchmark(**pinned)
    ds = benchmark_dataset(bench)
    assert ds.fingerprint == bench.fingerprint and Path(ds.path) == cache_dir(bench)
    assert benchmark_dataset(bench).path == ds.path  # found again, not re-prepared
    with pytest.raises(DataError, match=f"the bundled release prepares to fingerprint {bench.fingerprint[:12]}…, "
                                        "not the benchmark's ffffffffffff…"):
        benchmark_dataset(Benchmark("elsst-r5", "f" * 64))


def test_page_inlines_the_package_stylesheet_and_script(small_dataset, tmp_path):
    """index.html carries board.css and board.js (package data) inline, as they are: no external resource."""
    from elsst_bench.leaderboard.render import static

    page = (new_board(tmp_path, small_dataset) / "index.html").read_text(encoding="utf-8")
    css, js = static("board.css"), static("board.js")
    assert css.startswith(":root{") and "function sortTable" in js
    assert f"<style>\n{css}</style>" in page and f"<script>\n{js}</script>" in page
