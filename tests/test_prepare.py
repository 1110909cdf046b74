"""`elsst-bench prepare`: BEIR files, splits, qrels, fingerprints, determinism and bad input."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from collections import defaultdict
from pathlib import Path

import pyoxigraph as ox
import pytest
from conftest import assert_one_line_error

from elsst_bench import skos
from elsst_bench.tasks import (BENCHMARK_OPTIONS, SPLITS, TASKS, dataset_id_for, fingerprint, open_prepared, prepare,
                               split_of)
from elsst_bench.thesaurus import Concept, Thesaurus


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    with open(path, newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        assert next(reader) == ["query-id", "corpus-id", "score"]
        for qid, doc, grade in reader:
            out[qid][doc] = int(grade)
    return out


def all_files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# ----- layout and contents ----------------------------------------------------------------------------
def test_layout_is_beir_and_manifest_counts_match(prepared_full):
    path, manifest = prepared_full
    assert manifest["dataset_id"] == "elsst-r5"
    assert manifest["counts"]["live_concepts"] == 3_401
    assert manifest["counts"]["pref_labels_live"] == 50_908
    assert manifest["counts"]["alt_labels_live"] == 36_338
    assert manifest["counts"]["broader_links"] == 3_361
    assert len(manifest["languages"]) == 15
    for task, per_lang in manifest["queries"].items():
        for lang, counts in per_lang.items():
            base = path / task / lang
            queries = [json.loads(line) for line in open(base / "queries.jsonl", encoding="utf-8")]
            corpus = [json.loads(line) for line in open(base / "corpus.jsonl", encoding="utf-8")]
            assert all(set(q) == {"_id", "text", "concept"} for q in queries)
            assert all(set(d) == {"_id", "text"} for d in corpus)
            ids = {q["_id"] for q in queries}
            for split in SPLITS:
                qrels = read_qrels(base / "qrels" / f"{split}.tsv")
                assert len(qrels) == counts[split]
                assert set(qrels) <= ids
    # the recorded file hashes and the fingerprint are those of the files on disk
    files = {k: v for k, v in all_files(path).items() if k != "manifest.json"}
    assert manifest["files"] == {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    assert manifest["fingerprint"] == fingerprint(files)


def test_no_concept_in_two_splits_and_training_pairs_only_from_train_concepts(prepared_full):
    path, manifest = prepared_full
    split_of_concept: dict[str, str] = {}
    for task, per_lang in manifest["queries"].items():
        for lang in per_lang:
            base = path / task / lang
            concept_of = {}
            for line in open(base / "queries.jsonl", encoding="utf-8"):
                row = json.loads(line)
                concept_of[row["_id"]] = row["concept"]
            for split in SPLITS:
                for qid in read_qrels(base / "qrels" / f"{split}.tsv"):
                    cid = concept_of[qid]
                    assert split_of_concept.setdefault(cid, split) == split, (task, lang, cid)
                    assert split_of(cid) == split
    counts = defaultdict(int)
    for split in split_of_concept.values():
        counts[split] += 1
    total = sum(counts.values())
    assert 0.66 < counts["train"] / total < 0.74 and 0.07 < counts["dev"] / total < 0.13


def test_broader_qrels_are_graded_ancestors_without_the_query_concept(prepared_full, release_path):
    path, _ = prepared_full
    thesaurus = skos.load(release_path)[0]
    for lang in ("en", "de", "ro"):
        base = path / "broader" / lang
        concept_of = {json.loads(l)["_id"]: json.loads(l)["concept"] for l in open(base / "queries.jsonl")}
        corpus = {json.loads(l)["_id"] for l in open(base / "corpus.jsonl")}
        for split in SPLITS:
            for qid, rel in read_qrels(base / "qrels" / f"{split}.tsv").items():
                cid = concept_of[qid]
                assert cid not in rel
                # independent recomputation: walk broader links level by level
                expected, frontier, hop = {}, {cid}, 0
                while frontier:
                    hop += 1
                    frontier = {p for c in frontier for p in thesaurus.parents(c)} - set(expected) - {cid}
                    for p in frontier:
                        expected[p] = 3 if hop == 1 else 2 if hop == 2 else 1
                assert rel == {k: v for k, v in expected.items() if k in corpus}


def test_synonym_crosslingual_definition_relevance(prepared_full, release_path):
    path, manifest = prepared_full
    thesaurus = skos.load(release_path)[0]
    data = open_prepared(path).load("synonym", "en")
    for qid, text in data.queries.items():
        cid = data.query_concept[qid]
        assert text in {" ".join(a.split()).lower() for a in thesaurus[cid].alt["en"]}  # whitespace normalised
        split = split_of(cid)
        rel = data.qrels[split][qid]
        assert rel[cid] == 3
        assert {k for k, g in rel.items() if g == 1} == set(thesaurus.parents(cid)) | set(thesaurus.children(cid))
    cross = open_prepared(path).load("crosslingual", "de")
    assert cross.corpus == open_prepared(path).load("broader", "en").corpus  # the English pool
    assert "crosslingual" in manifest["queries"] and "en" not in manifest["queries"]["crosslingual"]
    definition = open_prepared(path).load("definition", "en")
    assert len(definition.queries) == 844  # en definitions in the release (all on live concepts)
    assert all(list(definition.qrels[split_of(c)][q].items()) == [(c, 3)] for q, c in definition.query_concept.items())


# ----- determinism and serialisation independence -----------------------------------------------------
def test_two_runs_give_byte_identical_files(tmp_path, prepared_full):
    path, _ = prepared_full
    again, _ = prepare(Path(__file__).resolve().parent.parent / "data" / "ELSST_R5.rdf.gz", out=tmp_path / "again")
    assert all_files(again) == all_files(path)


def test_rdfxml_turtle_and_ntriples_give_the_same_fingerprint(tmp_path, release_path, prepared_full):
    _, manifest = prepared_full
    triples = list(ox.parse(gzip.decompress(release_path.read_bytes()), format=ox.RdfFormat.RDF_XML))
    fingerprints = {}
    for name, fmt in (("elsst.ttl", ox.RdfFormat.TURTLE), ("elsst.nt.gz", ox.RdfFormat.N_TRIPLES)):
        data = ox.serialize(triples, format=fmt)
        target = tmp_path / name
        target.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        _, other = prepare(target, out=tmp_path / f"out-{name}")
        assert other["source"]["format"] == {"elsst.ttl": "turtle", "elsst.nt.gz": "ntriples"}[name]
        fingerprints[name] = other["fingerprint"]
    assert set(fingerprints.values()) == {manifest["fingerprint"]}


def test_a_different_seed_changes_splits_and_fingerprint(tmp_path, release_path, prepared_full):
    _, manifest = prepared_full
    _, other = prepare(release_path, out=tmp_path / "s1", seed=1, languages=["en"], tasks=["broader"])
    assert other["fingerprint"] != manifest["fingerprint"]
    assert split_of("000e1113-ffda-4088-8278-020b6dc71e20", 0) == split_of("000e1113-ffda-4088-8278-020b6dc71e20")


def test_mini_thesaurus_tasks(tmp_path, mini_path):
    out, manifest = prepare(mini_path, out=tmp_path / "mini", languages=["en", "de"])
    data = open_prepared(out).load("broader", "en")
    rel = {data.query_concept[q]: r for split in SPLITS for q, r in data.qrels[split].items()}
    assert rel["F"] == {"D": 3, "C": 2, "A": 1}
    assert rel["E"] == {"B": 3, "C": 3, "A": 2}
    assert rel["G"] == {"A": 3}
    assert "X" not in data.corpus and "A" not in rel  # deprecated out of the pool; roots ask nothing
    assert data.corpus["C"] == "social groups"
    syn = open_prepared(out).load("synonym", "en")
    assert sorted(syn.queries.values()) == ["groups", "homes"]  # "Social Groups" equals the label once lower-cased
    assert manifest["counts"]["cycles"] == [["P", "Q"]]
    assert manifest["dataset_id"].startswith("skos-")


# ----- the CLI as a user runs it -------------------------------------------------------------------------
def test_cli_prepare_prints_a_summary_and_json(cli, tmp_path):
    result = cli("prepare", "--out", str(tmp_path / "d"), "--languages", "en,de", "--tasks", "broader,synonym")
    assert result.returncode == 0, result.stderr
    assert "3,401 live concepts" in result.stdout and "broader" in result.stdout
    result = cli("prepare", "--out", str(tmp_path / "d"), "-l", "en", "--json", "--overwrite")  # another dataset
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["languages"] == ["en"] and set(info["queries"]) == {"broader", "synonym", "definition"}


@pytest.fixture
def existing_output(tmp_path, mini_path):
    out, _ = prepare(mini_path, out=tmp_path / "keep", languages=["en"])
    return out, all_files(out)


@pytest.mark.parametrize("case", ["truncated", "truncated-gzip", "no-concepts", "missing", "language", "url", "task"])
def test_bad_input_exits_2_with_one_line_and_keeps_existing_output(cli, tmp_path, release_path, existing_output, case):
    out, before = existing_output
    source = tmp_path / "source.rdf"
    args, needles = [], []
    if case == "truncated":
        xml = gzip.decompress(release_path.read_bytes())
        source.write_bytes(xml[: len(xml) // 2])
        needles = ["truncated"]
    elif case == "truncated-gzip":
        source = tmp_path / "source.rdf.gz"
        source.write_bytes(release_path.read_bytes()[:100_000])
        needles = ["truncated or corrupt"]
    elif case == "no-concepts":
        source = tmp_path / "source.ttl"
        source.write_text("<http://example.org/a> <http://example.org/b> 'c' .\n")
        needles = ["no skos:Concept"]
    elif case == "missing":
        source = tmp_path / "does-not-exist.rdf"
        needles = ["does not exist"]
    elif case == "language":
        source = release_path
        args = ["--languages", "en,xx"]
        needles = ["'xx'", "available: cs, de, el, en"]
    elif case == "url":
        source = "http://127.0.0.1:9/ELSST_R5.rdf"  # nothing listens there: what a user offline sees
        needles = ["cannot download"]
    elif case == "task":
        source = release_path
        args = ["--tasks", "hypernym"]
        needles = ["'hypernym'", "broader, synonym, crosslingual, definition"]
    result = cli("prepare", "--source", str(source), "--out", str(out), *args)
    assert_one_line_error(result, *needles)
    assert all_files(out) == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary directory left behind


# ----- a cut file, a file that only claims the release, a subset: never "elsst-r5" --------------------------
def dirs_of(root: Path) -> dict[str, dict[str, bytes]]:
    return {p.name: all_files(p) for p in sorted(root.iterdir())} if root.exists() else {}


def test_a_release_cut_between_elements_exits_2_and_writes_no_dataset(cli, tmp_path, release_path):
    # The bug: cut at an element boundary, the RDF/XML parsed as the concepts before the cut, and prepare wrote
    # them as data/prepared/elsst-r5, exit 0.
    xml = gzip.decompress(release_path.read_bytes())
    source = tmp_path / "ELSST_R5.rdf"
    source.write_bytes(xml[: xml.rfind(b"\n<rdf:Description", 0, len(xml) // 2) + 1])
    prepared = tmp_path / "prepared"
    result = cli("prepare", "--source", source, cwd=tmp_path, env={"ELSST_BENCH_DATA": str(prepared)})
    assert_one_line_error(result, "ELSST_R5.rdf: RDF/XML is truncated")
    assert not prepared.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ELSST_R5.rdf"]


ELSST5_TTL = """@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
<https://elsst.cessda.eu/id/5/> a skos:ConceptScheme ; owl:versionInfo "5"@en .
<https://elsst.cessda.eu/id/5/a> a skos:Concept ; skos:prefLabel "SOCIETY"@en .
<https://elsst.cessda.eu/id/5/b> a skos:Concept ; skos:prefLabel "FAMILIES"@en ;
    skos:broader <https://elsst.cessda.eu/id/5/a> .
"""


@pytest.fixture
def benchmark_dataset_dir(tmp_path):
    """``$ELSST_BENCH_DATA`` with an ``elsst-r5`` already in it (stands for the benchmark's dataset)."""
    prepared = tmp_path / "prepared"
    (prepared / "elsst-r5").mkdir(parents=True)
    (prepared / "elsst-r5" / "manifest.json").write_text('{"dataset_id": "elsst-r5", "fingerprint": "8cd12feb"}')
    return prepared, all_files(prepared / "elsst-r5")


def test_a_file_that_claims_release_5_gets_its_own_id_and_a_warning(cli, tmp_path, benchmark_dataset_dir):
    # The bug: any file whose scheme says ELSST version 5 (here: 2 concepts, as a truncated Turtle or N-Triples
    # release would look) was prepared as elsst-r5, silently replacing the benchmark's dataset.
    prepared, before = benchmark_dataset_dir
    source = tmp_path / "ELSST_R5.ttl"
    source.write_text(ELSST5_TTL)
    result = cli("prepare", "--source", source, "--json", cwd=tmp_path, env={"ELSST_BENCH_DATA": str(prepared)})
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert info["dataset_id"] == f"elsst-r5-{sha[:12]}" and Path(info["path"]) == prepared / info["dataset_id"]
    assert (prepared / info["dataset_id"] / "manifest.json").is_file()
    assert all_files(prepared / "elsst-r5") == before
    [warning] = result.stderr.splitlines()
    assert warning.startswith("elsst-bench: warning: ELSST_R5.ttl claims to be ELSST release 5 but has 2 live concepts")
    assert "3,401" in warning and info["warnings"] == [warning.removeprefix("elsst-bench: warning: ")]


def test_the_readme_subset_gets_its_own_id_and_leaves_elsst_r5_alone(cli, tmp_path, benchmark_dataset_dir):
    # The bug: `prepare --languages en,de --tasks broader,synonym`, the README's example, replaced
    # data/prepared/elsst-r5.
    prepared, before = benchmark_dataset_dir
    result = cli("prepare", "--languages", "en,de", "--tasks", "broader,synonym", "--json", cwd=tmp_path,
                 env={"ELSST_BENCH_DATA": str(prepared)})
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["dataset_id"].startswith("elsst-r5-") and info["languages"] == ["de", "en"]
    assert sorted(p.name for p in prepared.iterdir()) == sorted(["elsst-r5", info["dataset_id"]])
    assert all_files(prepared / "elsst-r5") == before
    assert "warning" not in result.stderr and info["warnings"] == []  # the published release: nothing to warn about


def test_dataset_ids_tell_sources_and_selections_apart():
    concepts = {c: Concept(c, f"https://elsst.cessda.eu/id/5/{c}", labels={"en": c, "de": c, "fr": c}) for c in "ab"}
    elsst = Thesaurus(concepts, {"uri": "https://elsst.cessda.eu/id/5/", "version": "5"})
    published = skos.Source("ELSST_R5.rdf.gz", b"", skos.PUBLISHED_RELEASES["5"]["sha256"], ox.RdfFormat.RDF_XML)
    other = skos.Source("ELSST_R5.ttl", b"", "ab" * 32, ox.RdfFormat.TURTLE)
    full = {"languages": ["de", "en", "fr"], "tasks": list(TASKS), **BENCHMARK_OPTIONS}
    assert dataset_id_for(elsst, published, **full) == "elsst-r5"
    assert dataset_id_for(elsst, published, **{**full, "tasks": list(reversed(TASKS))}) == "elsst-r5"
    assert dataset_id_for(elsst, other, **full) == "elsst-r5-abababababab"
    assert dataset_id_for(Thesaurus(concepts, {"uri": "https://example.org/", "version": "5"}), published,
                          **full) == f"skos-{published.sha256[:12]}"
    variants = [{"languages": ["de", "en"]}, {"tasks": ["broader", "synonym"]}, {"seed": 1}, {"pivot": "de"},
                {"lowercase": False}, {"documents": "label+definition"}]
    ids = [dataset_id_for(elsst, published, **{**full, **v}) for v in variants]
    assert len(set(ids)) == len(variants) and all(re.fullmatch(r"elsst-r5-[0-9a-f]{8}", i) for i in ids)
    assert dataset_id_for(elsst, published, **{**full, "languages": ["en", "de"]}) == ids[0]  # order is no option
    assert dataset_id_for(elsst, other, **{**full, "seed": 1}) == f"elsst-r5-abababababab-{ids[2].rsplit('-', 1)[1]}"


def test_cli_prepare_accepts_the_documented_format_rdfxml(cli, tmp_path, mini_path):
    # `--format rdfxml`, the value the README and --help give, used to be refused as an unknown format.
    source = tmp_path / "mini.ttl"  # RDF/XML under a Turtle name: only --format can say what it is
    source.write_bytes(ox.serialize(ox.parse(mini_path.read_bytes(), format=ox.RdfFormat.TURTLE),
                                    format=ox.RdfFormat.RDF_XML))
    result = cli("prepare", "--source", source, "--format", "rdfxml", "--out", tmp_path / "out", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["source"]["format"] == "rdfxml"
    assert_one_line_error(cli("prepare", "--source", source, "--format", "rdf-json", "--out", tmp_path / "x"),
                          "unknown RDF format 'rdf-json'; known: rdfxml, turtle, ntriples")


def test_control_characters_and_blank_labels_never_reach_the_dataset(tmp_path):
    # The bug: a NUL or an ESC sequence went into corpus and queries as is, and a label of spaces became an
    # empty document that every query could retrieve.
    source = tmp_path / "dirty.ttl"
    source.write_text(r"""@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix ex: <https://example.org/t/> .
ex:A a skos:Concept ; skos:prefLabel "SOC\u0000IETY\u001b[2J"@en .
ex:B a skos:Concept ; skos:prefLabel "   "@en ; skos:broader ex:A .
ex:C a skos:Concept ; skos:prefLabel "\u001b]0;title\u0007FAMILIES"@en ; skos:broader ex:A ;
    skos:altLabel "\u0000"@en, "KIN\u009b31m"@en .
""")
    out, manifest = prepare(source, out=tmp_path / "out")
    broader = open_prepared(out).load("broader", "en")
    assert broader.corpus == {"A": "soc iety", "C": "families"}  # B has no label left: not in the pool
    assert open_prepared(out).load("synonym", "en").queries == {"C#0": "kin 31m"}
    assert manifest["counts"]["control_characters_removed"] == 4 and manifest["counts"]["empty_labels_dropped"] == 2
    assert any("control characters removed from 4" in w for w in manifest["warnings"])
    assert any("2 labels or notes dropped" in w for w in manifest["warnings"])
    raw = b"".join(all_files(out).values()).decode("utf-8")
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]|\\u00[01]", raw)
