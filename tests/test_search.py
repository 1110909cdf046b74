"""Free-text concept suggestion, the core of `search` and `serve`: pool, ranking, scores, label/URI/broader path."""

from __future__ import annotations

import numpy as np
import pytest
from eval_fixtures import FakeEncoder, fake_identity

from elsst_bench.errors import DataError
from elsst_bench.serve.core import ConceptSuggester, broader_path, pool
from elsst_bench.tasks import open_prepared
from elsst_bench.thesaurus import Concept, Thesaurus


def test_broader_path_follows_the_parent_closest_to_a_root():
    #  A ─ B ─ C ─ D        D also sits directly under X (a top concept): X is the shorter way up
    #          X ─ D
    broader = {"B": ("A",), "C": ("B",), "D": ("C", "X")}
    th = Thesaurus({c: Concept(c, f"urn:{c}", labels={"en": f"Label {c}"}, broader=broader.get(c, ()))
                    for c in "ABCDX"})
    assert broader_path(th, "C", "en") == ["Label A", "Label B"]
    assert broader_path(th, "D", "en", str.lower) == ["label x"]
    assert broader_path(th, "A", "en") == []


def test_search_returns_the_concept_of_an_exact_label_first_with_its_path(prepared_en, tmp_path):
    ds = open_prepared(prepared_en)
    th = ds.thesaurus()
    searcher = ConceptSuggester(FakeEncoder(), ds, ["en"], identity=fake_identity(), cache_dir=str(tmp_path))
    cid = next(c for c in th.live_ids if len(th.parents(c)) == 1 and th.depth(c) >= 3)
    text = th[cid].labels["en"]
    hits = searcher.suggest_one(text.upper(), "en", limit=5)  # the query is normalised like the pool (lower-cased)
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    top = hits[0]
    assert top["concept_id"] == cid and top["uri"] == th[cid].uri and top["label"] == text.lower()
    assert top["cosine"] == pytest.approx(1.0, abs=1e-5) and top["score"] == pytest.approx(1.0, abs=1e-5)
    parent = th.parents(cid)[0]
    assert top["broader"][-1] == {"uri": th[parent].uri, "label": th[parent].labels["en"].lower()}
    assert len(top["broader"]) == th.depth(cid) - 1
    assert all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:]))
    # the pool came from the cache the second time
    again = ConceptSuggester(FakeEncoder(), ds, ["en"], identity=fake_identity(), cache_dir=str(tmp_path))
    assert again.encoding.encoded == 0 and again.suggest_one(text, "en", limit=1)[0]["concept_id"] == cid


def test_pool_is_the_prepared_corpus_and_unknown_languages_are_refused(prepared_en):
    ds = open_prepared(prepared_en)
    assert pool(ds, "en") == ds.load("broader", "en").corpus
    with pytest.raises(DataError, match="unknown language 'xx'"):
        pool(ds, "xx")
    searcher = ConceptSuggester(FakeEncoder(), ds, ["en"])
    with pytest.raises(DataError, match="empty"):
        searcher.suggest_one("   ", "en")


def test_search_hits_escape_control_characters_a_dataset_still_holds(tmp_path):
    # The bug: a label with an ESC sequence (or a C1 control) was printed raw: `search` could clear the screen or
    # retitle the terminal. Ingestion now removes them; a dataset prepared before that, or edited, may hold them.
    from elsst_bench.tasks import prepare

    source = tmp_path / "t.ttl"
    source.write_text("@prefix skos: <http://www.w3.org/2004/02/skos/core#> .\n"
                      "<https://example.org/t/A> a skos:Concept ; skos:prefLabel \"SOCIETY\"@en .\n"
                      "<https://example.org/t/B> a skos:Concept ; skos:prefLabel \"FAMILIES\"@en ;"
                      " skos:broader <https://example.org/t/A> .\n")
    out, _ = prepare(source, out=tmp_path / "ds")
    concepts = out / "concepts.jsonl"  # what an old dataset holds: raw control characters in labels
    concepts.write_text(concepts.read_text().replace('"SOCIETY"', '"SOC\\u001b[2JIETY\\u009b"')
                        .replace('"FAMILIES"', '"FAMI\\u0000LIES"'))
    hits = ConceptSuggester(FakeEncoder(), open_prepared(out), ["en"]).suggest_one("families", "en", limit=2)
    by_id = {h["uri"].rsplit("/", 1)[1]: h for h in hits}
    assert by_id["B"]["label"] == "fami\\x00lies" and [b["label"] for b in by_id["B"]["broader"]] == ["soc\\x1b[2jiety\\x9b"]
    assert by_id["A"]["label"] == "soc\\x1b[2jiety\\x9b" and by_id["A"]["broader"] == []
    texts = [v for h in hits for v in (h["label"], h["label_en"], h["uri"], *(b["label"] for b in h["broader"]))]
    assert not any(ord(ch) < 32 or 127 <= ord(ch) < 160 for v in texts for ch in v), hits


def test_scores_are_half_of_one_plus_the_cosine_and_rank_like_brute_force(prepared_en):
    """Against an independent computation: every pool text encoded here, cosines by numpy, sorted by
    (score desc, concept id asc)."""
    ds = open_prepared(prepared_en)
    enc = FakeEncoder(levels=3)  # coarse vectors: many exact ties, so the tie rule is exercised
    suggester = ConceptSuggester(enc, ds, ["en"])
    docs = pool(ds, "en")
    ids = sorted(docs)
    matrix = np.stack([enc._vector(docs[c]) for c in ids])
    text = "Youth unemployment and housing"
    cos = matrix @ enc._vector(text.lower())
    order = sorted(range(len(ids)), key=lambda i: (-round(float(cos[i]), 5), ids[i]))[:25]
    hits = suggester.suggest_one(text, "en", limit=25)
    assert [h["concept_id"] for h in hits] == [ids[i] for i in order]
    for h, i in zip(hits, order):
        assert h["cosine"] == pytest.approx(float(cos[i]), abs=1e-5)
        assert h["score"] == pytest.approx((1 + float(cos[i])) / 2, abs=1e-5) and 0.0 <= h["score"] <= 1.0
    # threshold keeps exactly the hits at or above it; limit cuts the list
    cut = hits[7]["score"]
    kept = suggester.suggest_one(text, "en", limit=25, threshold=cut)
    assert [h["concept_id"] for h in kept] == [h["concept_id"] for h in hits if h["score"] >= cut]
    assert suggester.suggest_one(text, "en", limit=25, threshold=1.0) == [h for h in hits if h["score"] >= 1.0]
    assert len(suggester.suggest_one(text, "en", limit=3)) == 3


def test_a_batch_answers_each_text_as_alone(prepared_en):
    suggester = ConceptSuggester(FakeEncoder(), open_prepared(prepared_en), ["en"])
    texts = ["families", "voting behaviour in national elections", "unemployment"]
    assert suggester.suggest(texts, "en", limit=5) == [suggester.suggest_one(t, "en", limit=5) for t in texts]


@pytest.mark.parametrize("options, message", [
    ({"limit": 0}, "limit must be an integer from 1 to 1000, not 0"),
    ({"limit": 10_000}, "limit must be an integer from 1 to 1000, not 10000"),
    ({"limit": True}, "limit must be an integer"),
    ({"threshold": -1}, "threshold must be a number from 0 to 1, not -1"),
    ({"threshold": float("nan")}, "threshold must be a number from 0 to 1, not nan"),
    ({"threshold": 1.5}, "threshold must be a number from 0 to 1"),
    ({"label_language": "xx"}, 'language "xx" not supported by vocabulary'),
])
def test_bad_options_are_refused_in_one_line(prepared_en, options, message):
    suggester = ConceptSuggester(FakeEncoder(), open_prepared(prepared_en), ["en"])
    with pytest.raises(DataError) as err:
        suggester.suggest_one("families", "en", **options)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError, match="language 'de' is not served; served: en"):
        suggester.suggest_one("families", "de")


def test_labels_in_another_language_and_projects_as_annif_reports_them(small_dataset):
    suggester = ConceptSuggester(FakeEncoder(), small_dataset, ["de", "en"])
    th = small_dataset.thesaurus()
    cid = next(c for c in th.live_ids if "de" in th[c].labels and th.depth(c) >= 2)
    hit = suggester.suggest_one(th[cid].labels["de"], "de", limit=1, label_language="en")[0]
    assert hit["concept_id"] == cid and hit["label"] == th[cid].labels["en"].lower() == hit["label_en"]
    assert [b["label"] for b in hit["broader"]] == broader_path(th, cid, "en", str.lower)
    de = suggester.suggest_one(th[cid].labels["de"], "de", limit=1)[0]
    assert de["label"] == th[cid].labels["de"].lower() and de["label_en"] == th[cid].labels["en"].lower()
    assert [p["project_id"] for p in suggester.projects()] == ["elsst-de", "elsst-en"]
    project = suggester.project("de")
    assert set(project) == {"project_id", "name", "language", "backend", "vocab", "vocab_language", "is_trained",
                            "modification_time"}
    assert project["language"] == "de" and project["backend"] == {"backend_id": "elsst-bench"}
    assert project["vocab"]["size"] == len(th.live_ids) and project["is_trained"] is True
    assert suggester.project_language("elsst-de") == "de" and suggester.project_language("elsst-fr") is None
