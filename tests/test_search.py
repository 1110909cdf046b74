"""Free-text concept suggestion: pool, ranking, label/URI/broader path."""

from __future__ import annotations

import pytest
from eval_fixtures import FakeEncoder, fake_identity

from elsst_bench.errors import DataError
from elsst_bench.evaluation import ConceptSearch, broader_path
from elsst_bench.evaluation.search import pool
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
    searcher = ConceptSearch(FakeEncoder(), ds, "en", identity=fake_identity(), cache_dir=str(tmp_path))
    cid = next(c for c in th.live_ids if len(th.parents(c)) == 1 and th.depth(c) >= 3)
    text = th[cid].labels["en"]
    hits = searcher(text.upper(), k=5)  # the query is normalised like the pool (lower-cased)
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    top = hits[0]
    assert top["id"] == cid and top["uri"] == th[cid].uri and top["label"] == text.lower()
    assert top["score"] == pytest.approx(1.0, abs=1e-5)
    parent = th.parents(cid)[0]
    assert top["broader_path"][-1] == th[parent].labels["en"].lower()
    assert top["path"] == " > ".join(top["broader_path"]) and len(top["broader_path"]) == th.depth(cid) - 1
    assert all(a["score"] >= b["score"] for a, b in zip(hits, hits[1:]))
    # the pool came from the cache the second time
    again = ConceptSearch(FakeEncoder(), ds, "en", identity=fake_identity(), cache_dir=str(tmp_path))
    assert again.encoding.encoded == 0 and again(text, k=1)[0]["id"] == cid


def test_pool_is_the_prepared_corpus_and_unknown_languages_are_refused(prepared_en):
    ds = open_prepared(prepared_en)
    assert pool(ds, "en") == ds.load("broader", "en").corpus
    with pytest.raises(DataError, match="unknown language 'xx'"):
        pool(ds, "xx")
    searcher = ConceptSearch(FakeEncoder(), ds, "en")
    with pytest.raises(DataError, match="empty"):
        searcher("   ")


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
    hits = ConceptSearch(FakeEncoder(), open_prepared(out), "en")("families", k=2)
    by_id = {h["id"]: h for h in hits}
    assert by_id["B"]["label"] == "fami\\x00lies" and by_id["B"]["path"] == "soc\\x1b[2jiety\\x9b"
    assert by_id["A"]["label"] == "soc\\x1b[2jiety\\x9b" and by_id["A"]["path"] == ""
    assert not any(ord(ch) < 32 or 127 <= ord(ch) < 160 for h in hits for v in (h["label"], h["uri"], h["path"])
                   for ch in v), hits
