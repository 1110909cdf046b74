"""Training recipes (issue 18): hierarchy-aware hard negatives, graded rows and the soft-target loss, guided
negatives; each checked against an independent computation."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest
import torch

from elsst_bench import runs
from elsst_bench.errors import BenchError
from elsst_bench.pairs import training_pairs
from elsst_bench.training import TrainConfig, train
from elsst_bench.training.losses import GradedInfoNCELoss, RowConcepts, grade_matrix, graded_infonce
from elsst_bench.training.recipes import COMPONENTS, LOSSES, Recipe, parse_recipe

TASKS = ["broader", "synonym", "crosslingual"]
TINY = dict(languages=["en", "de"], epochs=1, batch_size=16, max_pairs=24, eval_tasks=["broader"],
            eval_languages=["en"])


def _closure(start: str, step) -> set[str]:
    """Everything reachable from ``start`` by ``step`` (independent of Thesaurus.ancestors/descendants)."""
    seen, queue = set(), deque(step(start))
    while queue:
        node = queue.popleft()
        if node not in seen and node != start:
            seen.add(node)
            queue.extend(step(node))
    return seen


@pytest.fixture(scope="module")
def base_model():
    from elsst_bench.models import load_sentence_transformer

    return load_sentence_transformer(None, device="cpu")


@pytest.fixture(scope="module")
def mined(small_dataset, base_model):
    from elsst_bench.training.negatives import mine_negatives

    pairs = training_pairs(small_dataset, TASKS, ["en", "de"], limit=40)
    return pairs, mine_negatives(base_model, small_dataset, pairs, k=4)


def test_mined_negatives_are_never_relevant_nor_hierarchically_related(mined, small_dataset):
    pairs, negatives = mined
    th = small_dataset.thesaurus()
    data = {s: small_dataset.load(*s.split("/")) for s in set(pairs.sources)}
    checked = 0
    for i, source in enumerate(pairs.sources):
        d, qid = data[source], pairs.query_ids[i]
        concept = d.query_concept[qid]
        related = ({concept} | _closure(concept, th.parents) | _closure(concept, th.children)
                   | set(d.qrels["train"][qid]))
        related_texts = {d.corpus[c] for c in related if c in d.corpus}
        assert len(negatives[i]) == 4 and len(set(negatives[i])) == 4
        for text in negatives[i]:
            ids = {c for c, t in d.corpus.items() if t == text}
            assert ids, f"{text!r} is not in {source}'s pool"
            assert not ids & related and text not in related_texts, (source, qid, text)
            assert text != pairs.positives[i]
            checked += 1
    assert checked == 4 * len(pairs) and len(set(pairs.sources)) == 5  # broader, synonym ×2 langs + crosslingual/de


def test_mined_negatives_are_the_base_models_best_admissible_documents(mined, small_dataset, base_model):
    """The first negative is the top-scoring admissible pool document (by an independent brute-force search)."""
    from elsst_bench.models import role_prompt

    pairs, negatives = mined
    th = small_dataset.thesaurus()
    i = next(j for j, s in enumerate(pairs.sources) if s == "broader/en")
    d = small_dataset.load("broader", "en")
    qid, concept = pairs.query_ids[i], d.query_concept[pairs.query_ids[i]]
    related = {concept} | _closure(concept, th.parents) | _closure(concept, th.children) | set(d.qrels["train"][qid])
    banned = {d.corpus[c] for c in related if c in d.corpus}
    texts = sorted({t for t in d.corpus.values() if t not in banned})
    q = base_model.encode([role_prompt(base_model, "query") + pairs.anchors[i]], normalize_embeddings=True)
    docs = base_model.encode([role_prompt(base_model, "document") + t for t in texts], normalize_embeddings=True)
    order = np.argsort(-(docs @ q[0]), kind="stable")
    assert negatives[i][0] == texts[order[0]]
    assert set(negatives[i]) <= {texts[j] for j in order[:6]}  # the top 4, up to near-ties


def test_mining_is_deterministic(mined, small_dataset):
    from elsst_bench.models import load_sentence_transformer
    from elsst_bench.training.negatives import mine_negatives

    pairs, negatives = mined
    again = mine_negatives(load_sentence_transformer(None, device="cpu"), small_dataset, pairs, k=4)
    assert again == negatives


def test_grade_matrix_follows_concepts_and_masks_the_own_concept():
    rows = [
        RowConcepts(grades={"p": 3, "g": 2}, masked=frozenset({"q"}), columns=(frozenset({"p"}),)),
        RowConcepts(grades={"g": 3}, masked=frozenset(), columns=(frozenset({"g"}),)),
        RowConcepts(grades={"x": 3}, masked=frozenset(), columns=(frozenset({"x", "q"}),)),  # one text, two concepts
    ]
    grades, mask = grade_matrix(rows)
    assert grades.tolist() == [[3, 2, 0], [0, 3, 0], [0, 0, 3]]
    assert mask.tolist() == [[False, False, True], [False, False, False], [False, False, False]]


def test_graded_infonce_against_a_hand_computation():
    scores = torch.tensor([[2.0, 1.0, 0.5, -1.0], [0.0, 3.0, 1.0, 2.0]], dtype=torch.float64)
    grades = torch.tensor([[3, 2, 0, 1], [0, 3, 0, 0]], dtype=torch.float64)
    mask = torch.tensor([[False, False, True, False], [False, False, False, False]])
    # Row 0: candidate 2 masked out; targets 3/6, 2/6, 1/6 over candidates 0, 1, 3.
    z0 = math.log(math.exp(2.0) + math.exp(1.0) + math.exp(-1.0))
    loss0 = -(3 / 6 * (2.0 - z0) + 2 / 6 * (1.0 - z0) + 1 / 6 * (-1.0 - z0))
    # Row 1: one-hot on candidate 1, every candidate in the softmax.
    z1 = math.log(math.exp(0.0) + math.exp(3.0) + math.exp(1.0) + math.exp(2.0))
    loss1 = -(3.0 - z1)
    assert graded_infonce(scores, grades, mask).item() == pytest.approx((loss0 + loss1) / 2, abs=1e-12)


def test_graded_loss_is_mnrl_when_only_the_own_positive_is_judged(base_model):
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    anchors = ["labour market", "households", "voting behaviour"]
    positives = ["employment", "family", "elections"]
    negatives = ["fishing", "astronomy", "tourism"]
    rows = [RowConcepts(grades={f"d{i}": 3}, masked=frozenset(), columns=(frozenset({f"d{i}"}), frozenset({f"n{i}"})))
            for i in range(3)]
    features = [base_model.tokenize(texts) for texts in (anchors, positives, negatives)]
    graded = GradedInfoNCELoss(base_model, rows)(features, torch.tensor([0, 1, 2]))
    mnrl = MultipleNegativesRankingLoss(base_model, scale=20.0)(features, None)
    assert graded.item() == pytest.approx(mnrl.item(), abs=1e-5)
    # A judged in-batch candidate changes it: row 0 also grades row 1's positive.
    rows[0] = RowConcepts(grades={"d0": 3, "d1": 2}, masked=frozenset(), columns=rows[0].columns)
    assert GradedInfoNCELoss(base_model, rows)(features, torch.tensor([0, 1, 2])).item() != pytest.approx(mnrl.item())


def test_graded_rows_add_the_sampled_queries_weaker_judgments(small_dataset):
    plain = training_pairs(small_dataset, TASKS, ["en", "de"], limit=30)
    graded = training_pairs(small_dataset, TASKS, ["en", "de"], limit=30, min_grade=2)
    key = lambda p, i: (p.sources[i], p.query_ids[i], p.doc_ids[i])  # noqa: E731
    plain_rows = {key(plain, i) for i in range(len(plain))}
    graded_rows = {key(graded, i): graded.grades[i] for i in range(len(graded))}
    assert plain_rows <= graded_rows.keys() and all(plain.grades[i] == 3 for i in range(len(plain)))
    extra = {k: g for k, g in graded_rows.items() if k not in plain_rows}
    assert extra and set(extra.values()) == {2}
    sampled = {(s, q) for s, q, _ in plain_rows}
    assert all((s, q) in sampled for s, q, _ in extra)
    # Independently: every grade-2 judgment of a sampled query is a row.
    for source, qid in sampled:
        d = small_dataset.load(*source.split("/"))
        for doc, grade in d.qrels["train"][qid].items():
            if grade == 2:
                assert (source, qid, doc) in extra


@pytest.mark.parametrize("text,expected", [
    ("plain", ()), ("graded", ("graded",)), ("guided+hard-negatives", ("hard-negatives", "guided")),
    ("graded + hard-negatives", ("hard-negatives", "graded")),
])
def test_recipe_components_parse_to_their_recorded_order(text, expected):
    assert parse_recipe(text) == expected


@pytest.mark.parametrize("text,fragment", [
    ("bogus", "unknown recipe component 'bogus'"), ("graded+guided", "pick one"),
    ("graded+graded", "twice"), ("", "--recipe must be"),
])
def test_bad_recipes_are_refused(text, fragment):
    with pytest.raises(BenchError, match=fragment):
        parse_recipe(text)


def test_bad_recipe_on_the_command_line_is_one_line_and_exit_2(cli, small_dataset, tmp_path):
    for args, fragment in ((["--recipe", "graded+guided"], "pick one"),
                           (["--recipe", "graded", "--min-grade", "3"], "--min-grade must be 1 or 2"),
                           (["--recipe", "hard-negatives", "--hard-negatives", "0"], "--hard-negatives must be >= 1"),
                           (["--adapter", "none", "--recipe", "graded"], "trains nothing")):
        adapter = [] if "--adapter" in args else ["--adapter", "lora"]
        result = cli("train", *adapter, *args, "--dataset", str(small_dataset.path), "--runs-dir", str(tmp_path / "r"))
        assert result.returncode == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("recipe", ["hard-negatives", "graded+hard-negatives", "guided"])
def test_each_recipe_trains_and_records_itself(recipe, small_dataset, tmp_path):
    run_dir = train(TrainConfig(adapter="lora", dataset=str(small_dataset.path), out=str(tmp_path), recipe=recipe,
                                hard_negatives=2, **TINY), progress=False)
    record = runs.read_config(run_dir)
    assert record["status"] == "complete" and record["steps"] >= 1
    options = record["options"]
    r = Recipe.resolve(recipe, 2, 2)
    assert options["recipe"] == r.name == "+".join(sorted(recipe.split("+"), key=COMPONENTS.index))
    assert options["recipe_options"] == r.options and options["loss"] == r.loss
    plain = training_pairs(small_dataset, TASKS, ["en", "de"], limit=24)
    graded = training_pairs(small_dataset, TASKS, ["en", "de"], limit=24, min_grade=2)
    assert record["train_pairs"] == (len(graded) if "graded" in recipe else len(plain))
    assert len(graded) > len(plain)


def test_plain_records_no_recipe_so_earlier_runs_still_match(small_dataset, tmp_path):
    from elsst_bench.models import model_identity, portable_identity
    from elsst_bench.training.config import resolved_options

    options = resolved_options(TrainConfig(adapter="lora", **TINY), small_dataset,
                               portable_identity(model_identity(None)))
    assert "recipe" not in options and "recipe_options" not in options
    assert options["loss"] == LOSSES["plain"] == "MultipleNegativesRankingLoss(scale=20, cos_sim)"


def test_the_board_labels_a_row_by_its_recipe():
    from elsst_bench.leaderboard.board import setup_text

    text = setup_text("lora", {"budget": "lora-r8", "lr": 0.003, "epochs": 3, "recipe": "hard-negatives+graded",
                               "recipe_options": {"hard_negatives": 1, "min_grade": 2}})
    assert text.endswith("recipe hard-negatives+graded (hard_negatives=1, min_grade=2)")
    assert "recipe" not in setup_text("lora", {"budget": "lora-r8", "lr": 0.003})

