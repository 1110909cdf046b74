"""Metrics: equal to pytrec_eval and sentence-transformers' evaluator on the same rankings; WuP@1 by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval
from eval_fixtures import FakeEncoder

from elsst_bench.evaluation import BINARY_METRICS, PRIMARY_METRIC, Rankings, evaluate_model, macro, score_rankings
from elsst_bench.tasks import open_prepared
from elsst_bench.thesaurus import Concept, Thesaurus

TREC = {"mrr@10": "recip_rank", "recall@1": "recall_1", "recall@3": "recall_3", "recall@5": "recall_5",
        "recall@10": "recall_10", "ndcg@3": "ndcg_cut_3", "ndcg@10": "ndcg_cut_10"}
EN_TASKS = ("broader", "synonym", "definition")


@pytest.fixture(scope="module")
def en_rankings(prepared_en):
    """Real English test qrels, rankings of a coarse fake encoder (many exact score ties)."""
    ds = open_prepared(prepared_en)
    result = evaluate_model(FakeEncoder(levels=2), ds, split="test", tasks=list(EN_TASKS), languages=["en"])
    return ds, result.rankings


def test_fixture_has_many_ties(en_rankings):
    _, rankings = en_rankings
    scores = rankings[("broader", "en")].scores[:, :10]
    assert (np.diff(scores, axis=1) == 0).mean() > 0.05  # the tie rule is exercised, not assumed


@pytest.mark.parametrize("task", EN_TASKS)
def test_binary_and_graded_metrics_equal_pytrec_eval(en_rankings, task):
    ds, rankings = en_rankings
    ranked: Rankings = rankings[(task, "en")]
    qrels = ds.load(task, "en").qrels["test"]
    ours = score_rankings(ranked, qrels, per_query=True)
    binary = {q: {d: 1 for d, g in j.items() if g >= 3} for q, j in qrels.items()}
    binary = {q: j for q, j in binary.items() if j}
    run = ranked.run_dict()  # top 100, rank-derived scores (trec_eval would break score ties by id desc)
    run10 = ranked.run_dict(k=10)  # recip_rank has no cutoff: MRR@10 is recip_rank over the top 10
    full = pytrec_eval.RelevanceEvaluator(binary, {"recall.1,3,5,10", "ndcg_cut.3,10"}).evaluate(
        {q: run[q] for q in binary})
    rr = pytrec_eval.RelevanceEvaluator(binary, {"recip_rank"}).evaluate({q: run10[q] for q in binary})
    assert ours["queries_binary"] == len(binary) and ours["queries"] == len(qrels)
    for metric in BINARY_METRICS:
        theirs = {q: (rr if metric == "mrr@10" else full)[q][TREC[metric]] for q in binary}
        for q, value in theirs.items():
            assert ours["per_query"][metric][q] == pytest.approx(value, abs=1e-6), (metric, q)
        assert ours[metric] == pytest.approx(float(np.mean(list(theirs.values()))), abs=1e-6)
    graded = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    for q in qrels:
        assert ours["per_query"][PRIMARY_METRIC][q] == pytest.approx(graded[q]["ndcg_cut_10"], abs=1e-6)
    assert ours[PRIMARY_METRIC] == pytest.approx(np.mean([v["ndcg_cut_10"] for v in graded.values()]), abs=1e-6)


@pytest.mark.parametrize("task", EN_TASKS)
def test_binary_metrics_equal_sentence_transformers_evaluator(en_rankings, task):
    """The ST evaluator re-sorts hits by (-score, corpus_id): given the raw cosine scores it must land on
    exactly our order, so this also checks the tie rule."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    ds, rankings = en_rankings
    ranked: Rankings = rankings[(task, "en")]
    data = ds.load(task, "en")
    qrels = data.qrels["test"]
    relevant = {q: {d for d, g in j.items() if g >= 3} for q, j in qrels.items()}
    evaluator = InformationRetrievalEvaluator(
        queries={q: data.queries[q] for q in qrels}, corpus=data.corpus, relevant_docs=relevant,
        mrr_at_k=[10], ndcg_at_k=[3, 10], accuracy_at_k=[1], precision_recall_at_k=[1, 3, 5, 10], map_at_k=[10])
    position = {q: i for i, q in enumerate(ranked.qids)}
    hits = []
    for q in evaluator.queries_ids:
        i = position[q]
        hits.append([{"corpus_id": ranked.doc_ids[r], "score": s}
                     for r, s in zip(ranked.rows[i].tolist(), ranked.scores[i].tolist()) if r >= 0])
    theirs = evaluator.compute_metrics(hits)
    ours = score_rankings(ranked, qrels)
    assert ours["mrr@10"] == pytest.approx(theirs["mrr@k"][10], abs=1e-6)
    for k in (1, 3, 5, 10):
        assert ours[f"recall@{k}"] == pytest.approx(theirs["recall@k"][k], abs=1e-6)
    for k in (3, 10):
        assert ours[f"ndcg@{k}"] == pytest.approx(theirs["ndcg@k"][k], abs=1e-6)


# ----- WuP@1 on a hand-built polyhierarchy ----------------------------------------------------------------
#   R            S          depth 1
#  / \           |
# B   C          T          depth 2
#  \ / \
#   D   E                   depth 3   (D has two parents: B and C)
#       |
#       F                   depth 4
def poly() -> Thesaurus:
    broader = {"B": ("R",), "C": ("R",), "D": ("B", "C"), "E": ("C",), "F": ("E",), "T": ("S",)}
    ids = ["R", "S", "B", "C", "D", "E", "F", "T"]
    return Thesaurus({c: Concept(c, f"urn:{c}", labels={"en": c.lower()}, broader=broader.get(c, ()))
                      for c in ids})


def test_wu_palmer_values_of_the_hand_built_polyhierarchy():
    th = poly()
    assert [th.depth(c) for c in "RBDEFT"] == [1, 2, 3, 3, 4, 2]
    assert th.wu_palmer("D", "B") == pytest.approx(2 * 2 / (3 + 2))  # B is D's parent
    assert th.wu_palmer("D", "E") == pytest.approx(2 * 2 / (3 + 3))  # LCA C, through D's second parent
    assert th.wu_palmer("F", "D") == pytest.approx(4 / 7)  # C: 2·2 / (2·2 + 2 + 1)
    assert th.wu_palmer("T", "D") == 0.0  # different trees


def test_wup_at_1_takes_the_nearest_grade_3_concept():
    th = poly()
    docs = sorted(th.concepts)  # B C D E F R S T
    row = {c: i for i, c in enumerate(docs)}
    cases = [  # (qid, top-1, qrels, expected)
        ("q1", "D", {"B": 3, "R": 2}, 0.8),
        ("q2", "D", {"E": 3, "B": 3}, 0.8),  # max(WuP(D,E)=2/3, WuP(D,B)=0.8)
        ("q3", "T", {"D": 3}, 0.0),
        ("q4", "F", {"F": 3}, 1.0),
        ("q5", "D", {"C": 2}, None),  # no grade-3 concept: not scored by binary metrics nor WuP@1
        ("q6", "D", {"F": 3, "R": 1}, 4 / 7),  # a grade-1 concept is not "relevant" for WuP@1
    ]
    rows = np.array([[row[top], row["S"]] for _, top, _, _ in cases], dtype=np.int64)
    ranked = Rankings([c[0] for c in cases], docs, rows, np.ones(rows.shape, np.float32))
    result = score_rankings(ranked, {q: rel for q, _, rel, _ in cases}, thesaurus=th, per_query=True)
    expected = {q: e for q, _, _, e in cases if e is not None}
    assert result["per_query"]["wup@1"] == pytest.approx(expected)
    assert result["wup@1"] == pytest.approx(sum(expected.values()) / 5)
    assert result["queries"] == 6 and result["queries_binary"] == 5
    # q5 still counts for graded nDCG: C (grade 2) is not retrieved -> 0
    assert result["per_query"][PRIMARY_METRIC]["q5"] == 0.0
    assert result["per_query"]["recall@1"] == {"q1": 0.0, "q2": 0.0, "q3": 0.0, "q4": 1.0, "q6": 0.0}


def test_hand_computed_binary_and_graded_values():
    docs = ["a", "b", "c", "d", "e"]
    ranked = Rankings(["q"], docs, np.array([[3, 1, 0, 4, 2]]), np.zeros((1, 5), np.float32))  # d b a e c
    result = score_rankings(ranked, {"q": {"b": 3, "c": 3, "e": 1}})
    assert result["mrr@10"] == 0.5
    assert result["recall@1"] == 0.0 and result["recall@3"] == 0.5 and result["recall@10"] == 1.0
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    assert result["ndcg@10"] == pytest.approx(dcg / (1 + 1 / math.log2(3)))
    graded = 3 / math.log2(3) + 1 / math.log2(5) + 3 / math.log2(6)
    assert result[PRIMARY_METRIC] == pytest.approx(graded / (3 + 3 / math.log2(3) + 1 / math.log2(4)))


def test_fewer_candidates_than_the_cutoff_and_unpooled_relevant_concepts():
    ranked = Rankings(["q"], ["a", "b"], np.array([[1, -1]]), np.array([[0.5, -np.inf]], np.float32))
    result = score_rankings(ranked, {"q": {"b": 3, "zzz": 3}})  # zzz: judged, not in the pool
    assert result["recall@10"] == 0.5 and result["mrr@10"] == 1.0


def test_macro_is_an_unweighted_mean_over_languages():
    per = {"en": {"queries": 10, "queries_binary": 10, "mrr@10": 0.2},
           "de": {"queries": 30, "queries_binary": 29, "mrr@10": 0.4}}
    out = macro(per)
    assert out["mrr@10"] == pytest.approx(0.3)
    assert out["queries"] == 40 and out["queries_binary"] == 39 and out["languages"] == 2


def test_a_ranking_that_repeats_a_concept_is_refused():
    """A relevant concept repeated down the top 10 would count at every rank it fills (graded nDCG above 1, as
    in the forged leaderboard entry of the reliability issue): the metric code refuses it, naming the query."""
    from elsst_bench.errors import DataError

    docs = ["a", "b", "c", "d"]
    rows = np.array([[0, 1, 2, -1, -1], [2, 0, 3, 2, 2]])  # q1: three distinct, then padding; q2 repeats c
    ranked = Rankings(["q1", "q2"], docs, rows, np.zeros(rows.shape, np.float32))
    with pytest.raises(DataError, match=r"^query q2 ranks concept c twice \(ranks 1 and 4\); a ranking must not "
                                        r"repeat a concept$"):
        score_rankings(ranked, {"q1": {"a": 3}, "q2": {"c": 3}})
    rows[1] = [2, 0, 3, 1, -1]  # the same ranking without the repeats (and the -1 padding of q1) is scored
    assert score_rankings(ranked, {"q1": {"a": 3}, "q2": {"c": 3}})[PRIMARY_METRIC] == 1.0
