"""SKOS parsing and hierarchy measures: real ELSST figures and a hand-built polyhierarchy."""

from __future__ import annotations

import gzip

import pytest

from elsst_bench import skos
from elsst_bench.errors import DataError


@pytest.fixture(scope="module")
def elsst(release_path):
    thesaurus, stats, source = skos.load(release_path)
    return thesaurus, stats, source


@pytest.fixture(scope="module")
def mini(mini_path):
    return skos.load(mini_path)[0]


def test_release_figures_match_the_data_readme(elsst):
    thesaurus, stats, source = elsst
    assert source.sha256 == skos.PUBLISHED_RELEASES["5"]["sha256"]  # data/README.md; what makes it "elsst-r5"
    assert stats.triples == 236_925
    assert stats.concepts == 3_435 and len(thesaurus) == 3_435
    assert stats.deprecated == 34
    assert len(thesaurus.live_ids) == 3_401 == skos.PUBLISHED_RELEASES["5"]["live_concepts"]
    assert stats.pref_labels == 51_428
    assert stats.live_pref_labels == 50_908
    assert stats.alt_labels == stats.live_alt_labels == 36_338
    assert stats.broader == 3_361 and thesaurus.links == 3_361
    assert stats.related == 5_640
    assert stats.top_concepts == 246
    assert stats.definitions == 8_535
    assert thesaurus.languages == "cs de el en es fi fr hu is lt nl no ro sl sv".split()
    assert sum(1 for c in thesaurus.live_ids if len(thesaurus.parents(c)) >= 2) == 162
    assert thesaurus.cycles() == []
    assert thesaurus.scheme["version"] == "5"
    # nothing to repair: ingestion leaves the release (hence the elsst-r5 fingerprint) as it is
    assert stats.control_characters == 0 and stats.empty_labels == 0


def test_live_label_counts_per_language_sum_to_the_total(elsst):
    thesaurus, stats, _ = elsst
    per_concept = sum(len(thesaurus[c].labels) for c in thesaurus.live_ids)
    assert per_concept == stats.live_pref_labels  # one preferred label per language and concept
    alt = sum(len(v) for c in thesaurus.live_ids for v in thesaurus[c].alt.values())
    assert alt <= stats.live_alt_labels  # duplicates within a concept collapse
    assert sum(len(thesaurus[c].alt.get("hu", [])) for c in thesaurus.live_ids) == 0
    assert sum(len(thesaurus[c].alt.get("de", [])) for c in thesaurus.live_ids) == 11_324


def test_ids_are_the_version_independent_uuid(elsst):
    thesaurus, _, _ = elsst
    concept = thesaurus["000e1113-ffda-4088-8278-020b6dc71e20"]
    assert concept.uri == "https://elsst.cessda.eu/id/5/000e1113-ffda-4088-8278-020b6dc71e20"
    assert concept.labels["en"] == "TEACHING PROFESSION"
    assert concept.top and not concept.deprecated


def test_every_live_concept_reaches_a_root_and_depths_are_consistent(elsst):
    thesaurus, _, _ = elsst
    for cid in thesaurus.live_ids:
        parents = thesaurus.parents(cid)
        if parents:
            assert thesaurus.depth(cid) == 1 + min(thesaurus.depth(p) for p in parents)
            assert set(parents) <= set(thesaurus.ancestors(cid))
        else:
            assert thesaurus.depth(cid) == 1


# ----- hand-built polyhierarchy --------------------------------------------------------------------
def test_mini_structure(mini):
    assert sorted(mini.live_ids) == list("ABCDEFGPQR")
    assert mini["X"].deprecated and "X" not in mini.children("A")
    assert mini.parents("G") == ("A",)  # stated only as A skos:narrower G
    assert mini.parents("E") == ("B", "C")
    assert mini["C"].alt["en"] == ["GROUPS", "Social Groups"]


def test_mini_ancestors_and_depth(mini):
    assert mini.ancestors("F") == {"D": 1, "C": 2, "A": 3}
    assert mini.ancestors("E") == {"B": 1, "C": 1, "A": 2}
    assert {c: mini.depth(c) for c in "ABCDEFG"} == {"A": 1, "B": 1, "C": 2, "D": 3, "E": 2, "F": 4, "G": 2}


def test_mini_wu_palmer_and_lca(mini):
    # WuP(a, b) = max_c 2 d(c) / (2 d(c) + dist(a, c) + dist(b, c)), hand-computed:
    assert mini.wu_palmer("D", "E") == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))  # via C (depth 2)
    assert mini.lca("D", "E") == "C"
    assert mini.wu_palmer("F", "D") == pytest.approx(2 * 3 / (2 * 3 + 1 + 0))  # D is F's ancestor
    assert mini.lca("F", "D") == "D"
    assert mini.wu_palmer("E", "B") == pytest.approx(2 * 1 / (2 * 1 + 1 + 0))
    assert mini.wu_palmer("F", "G") == pytest.approx(2 * 1 / (2 * 1 + 3 + 1))  # only via the root A
    assert mini.wu_palmer("A", "B") == 0.0 and mini.lca("A", "B") is None
    assert mini.wu_palmer("E", "E") == 1.0
    assert mini.wu_palmer("D", "E") == mini.wu_palmer("E", "D")


def test_cycles_are_reported_not_looped_over(mini):
    assert mini.cycles() == [["P", "Q"]]
    assert mini.ancestors("R") == {"P": 1, "Q": 2}
    assert mini.ancestors("P") == {"Q": 1}
    assert mini.depth("P") == 1 and mini.depth("R") == 2


def test_format_is_detected_from_content_when_the_name_says_nothing(tmp_path, mini_path):
    plain = tmp_path / "thesaurus"  # no extension
    plain.write_bytes(mini_path.read_bytes())
    assert len(skos.load(plain)[0]) == 11
    gz = tmp_path / "thesaurus.ttl.gz"
    gz.write_bytes(gzip.compress(mini_path.read_bytes()))
    assert len(skos.load(gz)[0]) == 11


@pytest.mark.parametrize(
    "content, message",
    [
        (b"<?xml version='1.0'?><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'><rdf:Desc", "truncated"),
        (b"<?xml version='1.0'?><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
         b"<rdf:Description rdf:about='http://a'><rdf:Desc</rdf:Description></rdf:RDF>", "malformed"),
        (b"<?xml version='1.0'?><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
         b"<rdf:Description rdf:about='http://a'/></rdf:RDF>", "no skos:Concept"),
    ],
)
def test_bad_files_raise_one_line_data_errors(tmp_path, content, message):
    path = tmp_path / "bad.rdf"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        skos.load(path)
    assert "\n" not in str(info.value)


TTL_HEAD = """@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix ex: <https://example.org/t/> .
"""


def test_a_self_loop_is_reported_as_a_cycle_of_length_one(tmp_path):
    # A concept stated as its own broader (or narrower) used to vanish: no parent of itself, and no cycle either.
    # S hangs below the cycle P <-> Q and loops on itself: it is still one hop under P, not a root.
    path = tmp_path / "loops.ttl"
    path.write_text(TTL_HEAD + """
ex:A a skos:Concept ; skos:prefLabel "A"@en ; skos:broader ex:A .
ex:B a skos:Concept ; skos:prefLabel "B"@en ; skos:broader ex:A ; skos:narrower ex:B .
ex:P a skos:Concept ; skos:prefLabel "P"@en ; skos:broader ex:Q .
ex:Q a skos:Concept ; skos:prefLabel "Q"@en ; skos:broader ex:P .
ex:S a skos:Concept ; skos:prefLabel "S"@en ; skos:broader ex:P, ex:S .
""")
    th = skos.load(path)[0]
    assert th.cycles() == [["A"], ["B"], ["P", "Q"], ["S"]]
    assert th.parents("A") == () and th.parents("B") == ("A",) and th.ancestors("B") == {"A": 1}
    assert {c: th.depth(c) for c in "ABPQS"} == {"A": 1, "B": 2, "P": 1, "Q": 1, "S": 2}


def test_control_characters_are_removed_and_blank_labels_dropped_at_ingestion(tmp_path):
    # They used to be kept: a NUL or an ESC sequence went into the dataset (and raw onto the terminal of
    # `search`), and a label of spaces became an empty document.
    path = tmp_path / "dirty.ttl"
    path.write_text(TTL_HEAD + r"""
ex:A a skos:Concept ; skos:prefLabel "SOC\u0000IETY"@en, "\u001b[31mGESELLSCHAFT\u001b[0m"@de, "   "@fr ;
    skos:altLabel "\u0009 \u000b"@en, "TWO\nLINES"@en, "C1\u009bCSI"@en ; skos:definition "  "@en .
ex:B a skos:Concept ; skos:prefLabel "\u00a0"@en, "B"@de ; skos:broader ex:A .
""")
    th, stats, _ = skos.load(path)
    assert th["A"].labels == {"de": "GESELLSCHAFT", "en": "SOC IETY"}  # fr had only spaces
    assert th["A"].alt == {"en": ["C1 CSI", "TWO\nLINES"]}  # line feed kept (the tasks normalise whitespace)
    assert th["A"].definitions == {} and th["B"].labels == {"de": "B"}
    assert stats.control_characters == 4  # NUL, the ESC sequences, vertical tab, C1 CSI
    assert stats.empty_labels == 4  # "   "@fr, tab + vertical tab, the blank definition, a no-break space
    assert stats.pref_labels == 3 and stats.alt_labels == 2 and stats.definitions == 0
    texts = [t for c in th.concepts.values() for t in [*c.labels.values(), *(a for v in c.alt.values() for a in v)]]
    assert not [t for t in texts if any(ord(ch) < 32 and ch not in "\t\n\r" or 127 <= ord(ch) < 160 for ch in t)]


RDF_HEAD = (b"<?xml version='1.0' encoding='UTF-8'?>\n<!-- a comment before the root -->\n"
            b"<rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#' "
            b"xmlns:skos='http://www.w3.org/2004/02/skos/core#'>\n")


def rdf_concept(name: str) -> bytes:
    return (f"<skos:Concept rdf:about='https://example.org/t/{name}'><skos:prefLabel xml:lang='en'>{name}"
            f"</skos:prefLabel></skos:Concept>\n").encode()


def test_rdfxml_cut_between_elements_is_truncated_not_a_smaller_thesaurus(tmp_path):
    # The streaming parser used to accept a document cut between two elements: the concepts before the cut
    # came back as if they were the whole file.
    whole = RDF_HEAD + rdf_concept("A") + rdf_concept("B") + b"</rdf:RDF>\n<!-- end -->\n<?pi done?>\n"
    path = tmp_path / "thesaurus.rdf"
    path.write_bytes(whole)
    assert len(skos.load(path)[0]) == 2  # a complete document, trailing comment and PI included, is fine
    for cut in (whole.index(b"<skos:Concept rdf:about='https://example.org/t/B'"), whole.index(b"</rdf:RDF>")):
        path.write_bytes(whole[:cut])
        with pytest.raises(DataError, match=r"thesaurus.rdf: RDF/XML is truncated: .* <rdf:RDF> is closed$"):
            skos.load(path)
