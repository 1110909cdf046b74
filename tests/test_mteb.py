"""elsst_bench.mteb: the ELSST tasks inside MTEB give the benchmark's own numbers on the same model.

The comparisons run ``mteb.evaluate`` and :func:`evaluate_model` on the tiny random BERT, both drawing their
embeddings from one table (:func:`share_embeddings`: each text encoded once, the same vector handed to both), so
that both see bitwise the same embeddings; what is left is how each scores them (FAISS here, torch in MTEB), a few
float32 ulps. Two candidates whose cosines are closer than that may be ordered either way, so a
query whose top 11 holds such a near-tie (:func:`near_ties`) may differ by at most 1/n in a mean over n queries:
that, on top of 1e-3, is the tolerance. docs/mteb.md explains the correspondence.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest

if "MTEB_CACHE" not in os.environ:  # importing mteb creates its result cache directory: not in $HOME for tests
    os.environ["MTEB_CACHE"] = tempfile.mkdtemp(prefix="elsst-mteb-cache-")
    atexit.register(shutil.rmtree, os.environ["MTEB_CACHE"], ignore_errors=True)

mteb = pytest.importorskip("mteb")

import mteb.abstasks.abstask as mteb_abstask  # noqa: E402
import mteb.abstasks.retrieval as mteb_retrieval  # noqa: E402
from mteb.abstasks.retrieval import AbsTaskRetrieval  # noqa: E402
from mteb.languages import check_language_code  # noqa: E402

from elsst_bench import mteb as elsst_mteb  # noqa: E402
from elsst_bench.errors import BenchError, DataError  # noqa: E402
from elsst_bench.evaluation import evaluate_model, score_rankings  # noqa: E402
from elsst_bench.evaluation.metrics import CUTOFF  # noqa: E402
from elsst_bench.metric_names import METRICS, PRIMARY_METRIC  # noqa: E402
from elsst_bench.models import load_sentence_transformer  # noqa: E402
from elsst_bench.tasks import TASKS  # noqa: E402

TOLERANCE = 1e-3
#: Closer cosines than this may be ordered differently by FAISS and torch (their float32 sums differ by ulps).
NEAR_TIE = 2e-6
QUIET = {"batch_size": 64, "show_progress_bar": False}
PRIMARY = elsst_mteb.SCORE_KEYS[PRIMARY_METRIC]


pytestmark = pytest.mark.slow  # MTEB's own evaluation loop


def near_ties(rankings, gap: float = NEAR_TIE) -> int:
    """How many queries hold two cosines closer than ``gap`` among their top ``CUTOFF + 1`` candidates."""
    scores = rankings.scores[:, :CUTOFF + 1].astype(np.float64)
    with np.errstate(invalid="ignore"):  # -inf - -inf where a ranking is shorter than the cut-off
        close = np.abs(np.diff(scores, axis=1)) < gap
    return int(close.any(axis=1).sum())


def no_hub(*args, **kwargs):
    raise AssertionError("MTEB tried to load a dataset from the hub")


@pytest.fixture
def offline(monkeypatch):
    """Any attempt of MTEB to load a task's data from the hub fails the test."""
    monkeypatch.setattr(mteb_retrieval, "RetrievalDatasetLoader", no_hub)
    monkeypatch.setattr(mteb_abstask, "load_dataset", no_hub)


def _prompt(model, entry: str, prompt: str | None, prompt_name: str | None) -> str:
    """The prompt sentence-transformers puts before a text: the one given, else the named one, else ``query``'s
    for ``encode_query`` and ``document``'s for ``encode_document``, else the model's default; none is ''."""
    if prompt is not None:
        return prompt
    name = prompt_name or {"encode_query": "query", "encode_document": "document"}.get(entry)
    if name not in model.prompts:
        name = model.default_prompt_name
    return model.prompts.get(name, "") if name else ""


def share_embeddings(model) -> dict[str, int]:
    """Have ``model`` encode each text once per prompt, whichever entry point asks (``encode``, ``encode_query``,
    ``encode_document``), and hand every later request for it that same vector: MTEB and the benchmark then score
    bitwise the same embeddings, whatever batches each asks in (a text's vector depends on its batch's padding by
    a few ulps). The vectors are the model's own output; a caller that asks for normalised ones gets
    x / max(‖x‖, 1e-12), as sentence-transformers gives them. Returns ``{"encoded": texts encoded so far}``."""
    table: dict[tuple, np.ndarray] = {}
    counts = {"encoded": 0}
    encode = model.encode  # the model's own; encode_query and encode_document call model.encode with a prompt
    for entry in ("encode", "encode_query", "encode_document"):

        def shared(inputs, *, _entry=entry, normalize_embeddings=False, batch_size=None, show_progress_bar=None,
                   convert_to_numpy=True, convert_to_tensor=False, **kwargs):
            texts = [inputs] if isinstance(inputs, str) else list(inputs)
            prompt = _prompt(model, _entry, kwargs.pop("prompt", None), kwargs.pop("prompt_name", None))
            settings = repr(sorted((k, v) for k, v in kwargs.items() if v is not None))
            keys = [(prompt, settings, text) for text in texts]
            missing = list(dict.fromkeys(key for key in keys if key not in table))
            if missing:
                fresh = encode([key[2] for key in missing], prompt=prompt, batch_size=64, show_progress_bar=False,
                               convert_to_numpy=True, normalize_embeddings=False, **kwargs)
                table.update(zip(missing, np.asarray(fresh, dtype=np.float32)))
                counts["encoded"] += len(missing)
            out = np.stack([table[key] for key in keys]) if keys else np.zeros((0, 0), dtype=np.float32)
            if normalize_embeddings:
                out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
            if convert_to_tensor:
                import torch

                out = torch.from_numpy(out)
            return out[0] if isinstance(inputs, str) else out

        setattr(model, entry, shared)
    return counts


def run_mteb(model, made):
    """``mteb.evaluate`` as a test runs it: no result cache, no progress bars; ``{(task, lang): scores}``."""
    result = mteb.evaluate(model, tasks=made, cache=None, encode_kwargs=dict(QUIET),
                           show_progress_bar=False, co2_tracker=False)
    names = {task.metadata.name: task.elsst_task for task in made}
    return {(names[r.task_name], scores["hf_subset"]): scores for r in result.task_results for scores in r.scores["test"]}


def spy_on_runs(task) -> dict:
    """Record, per language, the candidates of each query as MTEB's scoring hook receives them."""
    seen: dict[str, dict[str, set[str]]] = {}
    original = task.task_specific_scores

    def spy(scores, qrels, results, hf_split, hf_subset):
        seen[hf_subset] = {qid: set(docs) for qid, docs in results.items()}
        return original(scores, qrels, results, hf_split=hf_split, hf_subset=hf_subset)

    task.task_specific_scores = spy
    return seen


def test_every_elsst_language_has_a_valid_mteb_code():
    assert sorted(elsst_mteb.LANGUAGES) == "cs de el en es fi fr hu is lt nl no ro sl sv".split()
    for code in elsst_mteb.LANGUAGES.values():
        check_language_code(code)
    assert elsst_mteb.LANGUAGES["el"] == "ell-Grek" and elsst_mteb.LANGUAGES["en"] == "eng-Latn"
    assert elsst_mteb.SCORE_KEYS[PRIMARY_METRIC] == "elsst_ndcg_at_10_graded"
    assert elsst_mteb.SCORE_KEYS["wup@1"] == "elsst_wup_at_1" and elsst_mteb.SCORE_KEYS["mrr@10"] == "elsst_mrr_at_10"


def test_one_retrieval_task_per_elsst_task_with_complete_metadata(small_dataset):
    made = elsst_mteb.tasks(dataset=small_dataset)
    counts = small_dataset.manifest["queries"]
    assert [task.elsst_task for task in made] == [t for t in TASKS
                                                 if any(c.get("test") for c in counts.get(t, {}).values())]
    assert "broader" in small_dataset.tasks() and "crosslingual" in small_dataset.tasks()
    assert len({task.metadata.name for task in made}) == len(made)
    for task in made:
        metadata = task.metadata
        assert isinstance(task, AbsTaskRetrieval)
        assert metadata.name == elsst_mteb.TASK_NAMES[task.elsst_task]
        assert metadata.type == "Retrieval" and metadata.category == "t2t" and metadata.eval_splits == ["test"]
        assert metadata.main_score == PRIMARY and metadata.license == "cc-by-sa-4.0"
        assert metadata.revision == small_dataset.fingerprint
        assert metadata.is_filled(), metadata
        pool = ["eng-Latn"] if task.elsst_task == "crosslingual" else []
        assert dict(metadata.eval_langs) == {lang: [elsst_mteb.LANGUAGES[lang], *pool]
                                             for lang in small_dataset.languages(task.elsst_task)}
        assert task.hf_subsets and set(task.hf_subsets) <= set(metadata.eval_langs)
        # MTEB drops a candidate whose id is the query's: only broader's queries may not retrieve their own concept
        assert task.ignore_identical_ids is (task.elsst_task == "broader")


def test_selection_by_task_and_language_and_its_errors(small_dataset, tmp_path, monkeypatch):
    (only,) = elsst_mteb.tasks(tasks=["broader"], languages=["de"], dataset=small_dataset)
    assert only.elsst_task == "broader" and only.hf_subsets == ["de"]
    (same,) = elsst_mteb.tasks(tasks="broader", languages=["deu-Latn"], dataset=small_dataset.path)
    assert same.hf_subsets == ["de"] and same.metadata.revision == only.metadata.revision
    english = [task.elsst_task for task in elsst_mteb.tasks(languages=["en"], dataset=small_dataset)]
    assert "broader" in english and "crosslingual" not in english  # English is crosslingual's pool, not a query
    with pytest.raises(DataError, match="unknown task 'nope'"):
        elsst_mteb.tasks(tasks=["nope"], dataset=small_dataset)
    with pytest.raises(DataError, match="unknown language 'xx'"):
        elsst_mteb.tasks(languages=["xx"], dataset=small_dataset)
    with pytest.raises(DataError, match="unknown language 'en'"):
        elsst_mteb.tasks(tasks=["crosslingual"], languages=["en"], dataset=small_dataset)
    with pytest.raises(DataError, match="no prepared dataset at"):
        elsst_mteb.tasks(dataset=tmp_path / "missing")
    monkeypatch.setenv("ELSST_BENCH_DATA", str(tmp_path))  # the default dataset, data/prepared/elsst-r5, is not there
    with pytest.raises(BenchError, match="run `elsst-bench prepare` first"):
        elsst_mteb.tasks()


def test_load_data_reads_the_prepared_files_and_never_the_hub(small_dataset, offline):
    for task in elsst_mteb.tasks(dataset=small_dataset):
        task.load_data()
        assert task.data_loaded and set(task.dataset) == set(task.hf_subsets)
        for lang in task.hf_subsets:
            data = small_dataset.load(task.elsst_task, lang)
            split = task.dataset[lang]["test"]
            ids = sorted(data.corpus)
            assert list(split["corpus"]["id"]) == ids
            assert list(split["corpus"]["text"]) == [data.corpus[cid] for cid in ids]
            qids = sorted(data.qrels["test"])
            assert list(split["queries"]["id"]) == qids
            assert list(split["queries"]["text"]) == [data.queries[q] for q in qids]
            assert split["relevant_docs"] == data.qrels["test"]  # the graded qrels (1..3), as they are
            assert split["top_ranked"] is None
            if task.elsst_task == "broader":  # the id MTEB compares is the concept's
                assert all(data.query_concept[q] == q for q in qids)
        task.unload_data()
        assert not task.data_loaded and task.metadata.revision == small_dataset.fingerprint


def test_rankings_from_run_break_ties_by_concept_id_as_the_benchmark_does():
    run = {"q2": {"c": 0.5, "a": 0.5, "d": 0.9}, "q1": {"b": 0.1}}
    ranked = elsst_mteb.rankings_from_run(run, ["a", "b", "c", "d"], k=4)
    assert ranked.qids == ["q1", "q2"]
    assert ranked.ids(0) == ["b"] and ranked.ids(1) == ["d", "a", "c"]
    assert ranked.rows.shape == (2, 4) and ranked.rows[0, 1] == -1
    scored = score_rankings(ranked, {"q1": {"a": 3}, "q2": {"c": 3, "a": 1}})
    assert scored["mrr@10"] == pytest.approx((0 + 1 / 3) / 2)


def test_mteb_evaluate_gives_the_benchmarks_metrics_on_the_same_model(small_dataset, offline):
    model = load_sentence_transformer(None)
    counts = share_embeddings(model)
    ours = evaluate_model(model, small_dataset)
    encoded = counts["encoded"]
    made = elsst_mteb.tasks(dataset=small_dataset)
    seen = {task.elsst_task: spy_on_runs(task) for task in made}
    theirs = run_mteb(model, made)
    assert counts["encoded"] == encoded > 0  # every vector MTEB scored is one the benchmark scored
    assert set(theirs) == {(task, lang) for task, per in ours.metrics["scores"].items() for lang in per
                           if lang != "macro"}
    assert ("broader", "en") in theirs and ("crosslingual", "de") in theirs

    for lang, run in seen["broader"].items():  # the query's own concept is never a candidate in broader ...
        pool = small_dataset.load("broader", lang).corpus
        assert run and all(qid not in docs for qid, docs in run.items())
        if len(pool) <= 1000:  # MTEB keeps its top 1000
            assert all(len(docs) == len(pool) - 1 for docs in run.values())
    for lang, run in seen["crosslingual"].items():  # ... and is in crosslingual, where it is the answer
        pool = small_dataset.load("crosslingual", lang).corpus
        if len(pool) <= 1000:
            assert all(qid in docs for qid, docs in run.items() if qid in pool)

    failures = []

    def check(what, got, want, n, fragile):
        tolerance = TOLERANCE + fragile / max(n, 1)
        if got is None or want is None or abs(got - want) > tolerance:
            failures.append(f"{what}: MTEB {got}, elsst-bench {want} (tolerance {tolerance:.4f})")

    for (task, lang), scores in sorted(theirs.items()):
        mine = ours.metrics["scores"][task][lang]
        ranked = ours.rankings[(task, lang)]
        qrels = small_dataset.load(task, lang).qrels["test"]
        fragile = near_ties(ranked)
        n, n_binary = mine["queries"], mine["queries_binary"]
        where = f"{task}/{lang} ({fragile} of {n} queries with a near-tie)"
        # MTEB's own metrics on the graded qrels: nDCG@10 with linear gains is the primary metric; MRR and recall
        # count every judged concept (grade >= 1) as relevant: ours with every grade counted as 3
        lenient = score_rankings(ranked, {q: dict.fromkeys(docs, 3) for q, docs in qrels.items()})
        check(f"{where} ndcg_at_10 = {PRIMARY_METRIC}", scores["ndcg_at_10"], mine[PRIMARY_METRIC], n, fragile)
        check(f"{where} mrr_at_10 = mrr@10 (any grade)", scores["mrr_at_10"], lenient["mrr@10"], n, fragile)
        check(f"{where} recall_at_10 = recall@10 (any grade)", scores["recall_at_10"], lenient["recall@10"], n,
              fragile)
        if all(grade == 3 for docs in qrels.values() for grade in docs.values()):  # definition: grade 3 only
            check(f"{where} mrr_at_10 = mrr@10", scores["mrr_at_10"], mine["mrr@10"], n_binary, fragile)
            check(f"{where} recall_at_10 = recall@10", scores["recall_at_10"], mine["recall@10"], n_binary, fragile)
        # the benchmark's metrics, added by the hook: each equals ours
        for metric in METRICS:
            if mine.get(metric) is not None:
                key = elsst_mteb.SCORE_KEYS[metric]
                check(f"{where} {key}", scores.get(key), mine[metric], n if metric == PRIMARY_METRIC else n_binary,
                      fragile)
        # one ranking, two scorers: only a tie (trec_eval orders it by id descending, we ascending) sets them apart
        check(f"{where} ndcg_at_10 = {PRIMARY} on MTEB's run", scores["ndcg_at_10"], scores[PRIMARY], n, fragile)
        assert scores["main_score"] == scores[PRIMARY]
    assert not failures, "\n".join(failures)


def test_query_and_document_prompts_reach_mteb_as_they_reach_the_benchmark(small_dataset, offline):
    model = load_sentence_transformer(None)
    model.prompts = {"query": "query: ", "document": "passage: "}
    counts = share_embeddings(model)
    ours = evaluate_model(model, small_dataset, tasks=["broader"], languages=["en"])
    encoded = counts["encoded"]
    theirs = run_mteb(model, elsst_mteb.tasks(tasks=["broader"], languages=["en"], dataset=small_dataset))
    assert counts["encoded"] == encoded > 0
    mine, scores = ours.metrics["scores"]["broader"]["en"], theirs[("broader", "en")]
    tolerance = TOLERANCE + near_ties(ours.rankings[("broader", "en")]) / mine["queries"]
    assert scores["ndcg_at_10"] == pytest.approx(mine[PRIMARY_METRIC], abs=tolerance)
    assert scores[PRIMARY] == pytest.approx(mine[PRIMARY_METRIC], abs=tolerance)
