"""Training pairs: every grade-3 train pair, or a capped sample per (task, language) that is deterministic, the
same for every method and seed, spread over the thesaurus and nested; the options a run records for it."""

from __future__ import annotations

import hashlib

import pytest

from elsst_bench.pairs import training_pairs
from elsst_bench.training import TrainConfig, resolved_options

TASKS = ["broader", "synonym", "crosslingual"]


def all_train_pairs(ds, task: str, lang: str) -> list[tuple[str, str]]:
    """(query text, document text) of every grade-3 train pair, read straight from the qrels."""
    data = ds.load(task, lang)
    return [(data.queries[q], data.corpus[d]) for q, docs in data.qrels["train"].items()
            for d, grade in docs.items() if grade >= 3]


def hash_sample(ds, task: str, lang: str, n: int) -> set[tuple[str, str]]:
    """The n pairs with the smallest blake2b-64 of "task/lang/qid/doc": the sampler's rule, computed here."""
    data = ds.load(task, lang)
    ranked = sorted((hashlib.blake2b(f"{task}/{lang}/{q}/{d}".encode(), digest_size=8).digest(), q, d)
                    for q, docs in data.qrels["train"].items() for d, grade in docs.items() if grade >= 3)
    return {(data.queries[q], data.corpus[d]) for _, q, d in ranked[:n]}


def by_source(pairs) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for a, p, s in zip(pairs.anchors, pairs.positives, pairs.sources):
        out.setdefault(s, []).append((a, p))
    return out


def test_without_a_cap_every_grade_3_train_pair_is_used(small_dataset):
    pairs = training_pairs(small_dataset, TASKS, ["en", "de"])
    got = by_source(pairs)
    for source, count in pairs.counts.items():
        task, lang = source.split("/")
        assert sorted(got[source]) == sorted(all_train_pairs(small_dataset, task, lang))
        assert count == len(got[source])
    assert "crosslingual/en" not in pairs.counts  # English is crosslingual's pool, not a query language


def test_a_cap_keeps_the_hash_sample_of_each_source(small_dataset):
    full = training_pairs(small_dataset, TASKS, ["en", "de"])
    n = 20
    capped = training_pairs(small_dataset, TASKS, ["en", "de"], limit=n)
    got = by_source(capped)
    for source, available in full.counts.items():
        task, lang = source.split("/")
        assert capped.counts[source] == min(n, available) == len(got[source])
        assert set(got[source]) == hash_sample(small_dataset, task, lang, n)
    # spread over the thesaurus: not the first n pairs in concept-id order
    first_n = all_train_pairs(small_dataset, "broader", "en")
    assert set(got["broader/en"]) != set(sorted(first_n)[:n])


def test_the_sample_is_deterministic_and_nested(small_dataset):
    small = training_pairs(small_dataset, TASKS, ["en", "de"], limit=8)
    again = training_pairs(small_dataset, TASKS, ["en", "de"], limit=8)
    large = training_pairs(small_dataset, TASKS, ["en", "de"], limit=24)
    assert (small.anchors, small.positives, small.sources) == (again.anchors, again.positives, again.sources)
    for source, pairs in by_source(small).items():
        assert set(pairs) <= set(by_source(large)[source])
    # one language's sample does not depend on which other languages are trained
    alone = by_source(training_pairs(small_dataset, TASKS, ["de"], limit=8))
    assert all(alone[s] == by_source(small)[s] for s in alone)


def test_dev_languages_and_dev_only_are_recorded_only_when_set(small_dataset):
    identity = {"name": "m", "sha256": "0" * 64}
    plain = resolved_options(TrainConfig(adapter="lora", languages=["en", "de"]), small_dataset, identity)
    assert "dev_languages" not in plain and "test" not in plain  # older runs' options stay comparable
    same = resolved_options(TrainConfig(adapter="lora", languages=["en", "de"], dev_languages=["de", "en"]),
                            small_dataset, identity)
    assert same == plain  # the same set as the evaluation languages is no change
    tuned = resolved_options(TrainConfig(adapter="lora", languages=["en", "de"], dev_languages=["de"], test=False),
                             small_dataset, identity)
    assert tuned["dev_languages"] == ["de"] and tuned["test"] is False
    assert {k: v for k, v in tuned.items() if k not in ("dev_languages", "test")} == plain


@pytest.mark.parametrize("limit", [0, -3])
def test_a_cap_below_one_is_refused(small_dataset, limit):
    from elsst_bench.errors import BenchError

    with pytest.raises(BenchError, match="--max-pairs must be >= 1"):
        resolved_options(TrainConfig(adapter="lora", max_pairs=limit), small_dataset, {"name": "m"})
