"""`elsst-bench serve`: Annif's REST API as annif-client (untouched, from PyPI) speaks it, Annif's error answers
for bad input (never a 500, never a traceback), refusals at startup, the app factory under gunicorn, and the real
multilingual-e5-small behind it (slow)."""

from __future__ import annotations

import json
import shutil

import psutil
import pytest
import requests
from annif_client import AnnifClient
from conftest import assert_one_line_error
from serve_fixtures import LOOPBACK, Served, gunicorn_command, serve_command

from elsst_bench import runs
from elsst_bench.training import TrainConfig, train

TINY = dict(languages=["en"], epochs=1, batch_size=8, max_pairs=16, eval_tasks=["broader"])


@pytest.fixture(scope="module")
def tiny_run(small_dataset, tmp_path_factory):
    """A complete tiny LoRA run on the tests' random BERT."""
    out = tmp_path_factory.mktemp("serve-run")
    return train(TrainConfig(adapter="lora", dataset=str(small_dataset.path), out=str(out), run_id="lora", **TINY),
                 progress=False)


@pytest.fixture(scope="module")
def served(tiny_run, small_dataset, tmp_path_factory):
    cache = tmp_path_factory.mktemp("serve-cache")
    server = Served(serve_command(tiny_run, "--dataset", small_dataset.path, "-l", "en,de"),
                    env={"ELSST_BENCH_CACHE": str(cache)})
    yield server
    server.stop()


def unique_label(ds, lang: str, depth: int = 2) -> tuple[str, str]:
    """A concept whose label in ``lang`` no other concept's pool text shares: ``(concept id, label)``."""
    from elsst_bench.serve.core import pool

    docs = pool(ds, lang)
    counts: dict[str, int] = {}
    for text in docs.values():
        counts[text] = counts.get(text, 0) + 1
    th = ds.thesaurus()
    cid = next(c for c in sorted(docs) if counts[docs[c]] == 1 and th.depth(c) >= depth)
    return cid, th[cid].labels[lang]


def test_annif_client_lists_projects_and_suggests(served, small_dataset):
    client = AnnifClient(served.base + "v1/")
    assert client.api_info["title"].startswith("elsst-bench")
    projects = client.projects
    assert [p["project_id"] for p in projects] == ["elsst-de", "elsst-en"]
    assert {p["language"] for p in projects} == {"de", "en"}
    project = client.get_project("elsst-en")
    assert project["backend"] == {"backend_id": "elsst-bench"} and project["is_trained"] is True
    assert project["modification_time"].endswith("Z") and "lora" in project["name"]
    with pytest.raises(ValueError, match="Project 'elsst-xx' not found"):
        client.get_project("elsst-xx")

    th = small_dataset.thesaurus()
    cid, label = unique_label(small_dataset, "en")
    results = client.suggest("elsst-en", label, limit=4)
    assert len(results) == 4 and results[0]["uri"] == th[cid].uri and results[0]["label"] == label.lower()
    assert all(set(r) >= {"uri", "label", "notation", "score"} and 0 <= r["score"] <= 1 for r in results)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert results[0]["broader"][-1]["uri"] == th[th.parents(cid)[0]].uri
    # threshold: nothing below it
    assert all(r["score"] >= results[1]["score"] for r in client.suggest("elsst-en", label, limit=4,
                                                                        threshold=results[1]["score"]))

    de_cid, de_label = unique_label(small_dataset, "de")
    batch = client.suggest_batch("elsst-de", [{"text": de_label, "document_id": "doc-1"}, {"text": label}], limit=3)
    assert [b["document_id"] for b in batch] == ["doc-1", None]
    assert batch[0]["results"][0]["uri"] == th[de_cid].uri and batch[0]["results"][0]["label_en"]
    alone = client.suggest("elsst-de", label, limit=3)  # a batch pads texts together: equal up to float noise
    assert [r["score"] for r in batch[1]["results"]] == pytest.approx([r["score"] for r in alone], abs=1e-5)


def test_the_served_run_has_its_adapter_merged_and_answers_as_the_unmerged_model(served, tiny_run, small_dataset):
    """Merge equivalence through the service: the cosines of the served (merged) model equal those of the run's
    model with its adapter applied as trained (not merged), computed here in-process."""
    from elsst_bench.evaluation.loading import load_run_model
    from elsst_bench.serve.core import ConceptSuggester

    loaded = load_run_model(tiny_run, small_dataset, "cpu")
    unmerged = ConceptSuggester(loaded.model, small_dataset, ["en"])
    _, label = unique_label(small_dataset, "en", depth=3)
    text = f"{label} in european surveys"
    served_hits = requests.post(served.base + "v1/projects/elsst-en/suggest", data={"text": text, "limit": 10},
                                timeout=30).json()["results"]
    by_id = {h["concept_id"]: h["cosine"] for h in unmerged.suggest_one(text, "en", limit=50)}
    for hit in served_hits:
        assert hit["cosine"] == pytest.approx(by_id[hit["concept_id"]], abs=1e-4)
    assert [h["concept_id"] for h in served_hits[:1]] == [next(iter(by_id))]


BAD = [
    # (method, path, request keyword arguments, status, a fragment of "detail")
    ("post", "v1/projects/elsst-en/suggest", {"data": {"text": ""}}, 400, "text is empty"),
    ("post", "v1/projects/elsst-en/suggest", {"data": {"text": " \t\n "}}, 400, "text is empty"),
    ("post", "v1/projects/elsst-en/suggest", {"data": {"limit": "3"}}, 400, "text is empty"),
    ("post", "v1/projects/elsst-en/suggest", {"json": {"text": ["a"]}}, 400, "text must be a string"),
    ("post", "v1/projects/elsst-en/suggest", {"data": {"text": "a", "limit": "0"}}, 400, "limit must be an integer from 1"),
    ("post", "v1/projects/elsst-en/suggest", {"data": {"text": "a", "limit": "10000"}}, 400, "not 10000"),
    ("post", "v1/projects/elsst-en/suggest", {"data": {"text": "a", "limit": "ten"}}, 400, "limit must be an integer"),
    ("post", "v1/projects/elsst-en/suggest", {"json": {"text": "a", "limit": 2.5}}, 400, "limit must be an integer"),
    ("post", "v1/projects/elsst-en/suggest", {"data": {"text": "a", "threshold": "-1"}}, 400, "threshold must be"),
    ("post", "v1/projects/elsst-en/suggest", {"data": {"text": "a", "threshold": "nan"}}, 400, "finite number"),
    ("post", "v1/projects/elsst-en/suggest", {"data": {"text": "a", "threshold": "inf"}}, 400, "finite number"),
    ("post", "v1/projects/elsst-en/suggest", {"data": '{"text": "a", "threshold": NaN}',
                                               "headers": {"Content-Type": "application/json"}}, 400, "finite number"),
    ("post", "v1/projects/elsst-en/suggest", {"data": {"text": "a", "language": "xx"}}, 400, "not supported"),
    ("post", "v1/projects/elsst-en/suggest", {"data": '{"text": ', "headers": {"Content-Type": "application/json"}},
     400, "not valid JSON"),
    ("post", "v1/projects/elsst-en/suggest", {"data": "[1, 2]", "headers": {"Content-Type": "application/json"}},
     400, "JSON object"),
    ("post", "v1/projects/elsst-en/suggest", {"data": b"\xff\xfe", "headers": {"Content-Type": "application/json"}},
     400, "not valid JSON"),
    ("post", "v1/projects/elsst-en/suggest", {"data": "text=a", "headers": {"Content-Type": "text/plain"}},
     415, "content type text/plain"),
    ("post", "v1/projects/elsst-en/suggest", {"data": "text=a", "headers": {"Content-Type": ""}}, 415, "(none)"),
    ("post", "v1/projects/elsst-en/suggest", {"data": {"text": "a" * 600_000}}, 413, "over 524,288 bytes"),
    ("post", "v1/projects/elsst-xx/suggest", {"data": {"text": "a"}}, 404, "Project 'elsst-xx' not found"),
    ("post", "v1/projects/elsst-fr/suggest-batch", {"json": {"documents": [{"text": "a"}]}}, 404, "not found"),
    ("post", "v1/projects/elsst-en/suggest-batch", {"json": {"documents": []}}, 400, "non-empty list"),
    ("post", "v1/projects/elsst-en/suggest-batch", {"json": {"documents": [{"text": "a"}] * 33}}, 400, "at most 32"),
    ("post", "v1/projects/elsst-en/suggest-batch", {"json": {"documents": [{"text": "a"}, {"id": 1}]}}, 400,
     "documents[1] has no text"),
    ("post", "v1/projects/elsst-en/suggest-batch", {"json": {"documents": [{"text": "a", "document_id": 7}]}}, 400,
     "document_id must be a string"),
    ("post", "v1/projects/elsst-en/suggest-batch?limit=0", {"json": {"documents": [{"text": "a"}]}}, 400, "limit"),
    ("post", "v1/projects/elsst-en/suggest-batch?threshold=2", {"json": {"documents": [{"text": "a"}]}}, 400,
     "threshold"),
    ("post", "v1/projects/elsst-en/suggest-batch", {"data": {"documents": "a"}}, 415, "send application/json"),
    ("post", "v1/projects/elsst-en/learn", {"json": [{"text": "a", "subjects": []}]}, 403, "not configured to allow"),
    ("get", "v1/projects/elsst-en/suggest", {}, 405, "Method Not Allowed"),
    ("get", "v1/nothing-here", {}, 404, "Not Found"),
    ("delete", "v1/projects/elsst-en", {}, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize("method, path, kwargs, status, detail", BAD, ids=[f"{b[3]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_gets_annifs_error_answer(served, method, path, kwargs, status, detail):
    answer = requests.request(method, served.base + path, timeout=30, **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["status"] == status and detail in body["detail"] and "Traceback" not in answer.text
    assert set(body) == {"type", "title", "status", "detail"}


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(served):
    def chunks():
        for _ in range(80):
            yield b"text=" + b"a" * 8192

    answer = requests.post(served.base + "v1/projects/elsst-en/suggest", data=chunks(), timeout=30,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413 and "over 524,288 bytes" in answer.json()["detail"]


def test_openapi_document_and_no_endpoint_that_writes(served):
    spec = requests.get(served.base + "openapi.json", timeout=30).json()
    assert requests.get(served.base + "v1/openapi.json", timeout=30).json() == spec
    operations = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert operations == {("/v1/", "get"), ("/v1/vocabs", "get"), ("/v1/projects", "get"),
                          ("/v1/projects/{project_id}", "get"), ("/v1/projects/{project_id}/suggest", "post"),
                          ("/v1/projects/{project_id}/suggest-batch", "post"),
                          ("/v1/projects/{project_id}/learn", "post")}
    suggest = spec["paths"]["/v1/projects/{project_id}/suggest"]["post"]
    assert set(suggest["requestBody"]["content"]) == {"application/x-www-form-urlencoded", "application/json"}
    # the service listens on the loopback address only, by default
    process = psutil.Process(served.process.pid)
    listening = [c.laddr for p in [process, *process.children(recursive=True)] for c in p.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and {a.ip for a in listening} == {LOOPBACK}


def _copy_run(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    return run


def test_startup_refuses_what_it_cannot_serve_in_one_line(cli, tiny_run, small_dataset, tmp_path):
    incomplete = _copy_run(tiny_run, tmp_path)
    config = json.loads((incomplete / runs.CONFIG).read_text())
    (incomplete / runs.CONFIG).write_text(json.dumps({**config, "status": "running"}))
    assert_one_line_error(cli("serve", incomplete, "--dataset", small_dataset.path), "is not complete")

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tiny_run, elsewhere)
    moved = dict(config, model={**config["model"], "name": "/nowhere/tiny", "location": "/nowhere/tiny"})
    (elsewhere / runs.CONFIG).write_text(json.dumps(moved))
    assert_one_line_error(cli("serve", elsewhere, "--dataset", small_dataset.path), "not on this machine")

    assert_one_line_error(cli("serve", tmp_path / "none", "--dataset", small_dataset.path), "none")
    assert_one_line_error(cli("serve", "--dataset", small_dataset.path, "--backend", "tensorrt"), "unknown backend")
    assert_one_line_error(cli("serve", "--dataset", small_dataset.path, "--backend", "onnx"), "transformers < 4.58")
    assert_one_line_error(cli("serve", "--dataset", small_dataset.path, "-l", "xx"), "unknown language 'xx'")
    assert_one_line_error(cli("serve", "--dataset", small_dataset.path, "--port", "70000"), "--port")
    assert_one_line_error(cli("serve", "--dataset", small_dataset.path, "--workers", "0"), "--workers")
    assert_one_line_error(cli("serve", tiny_run, "--model", tiny_run, "--dataset", small_dataset.path), "once")


def test_search_refuses_bad_input_before_loading(cli, small_dataset):
    assert_one_line_error(cli("search", "  ", "--dataset", small_dataset.path), "empty")
    assert_one_line_error(cli("search", "x", "-k", "0", "--dataset", small_dataset.path), "-k must be an integer from 1 to 1000")
    assert_one_line_error(cli("search", "x", "-l", "xx", "--dataset", small_dataset.path), "unknown language")


@pytest.mark.slow  # gunicorn and its worker processes
def test_the_app_factory_runs_under_gunicorn_with_workers(tiny_run, small_dataset, tmp_path):
    """As Annif deploys: gunicorn with uvicorn workers, configured by environment variables."""
    env = {"ELSST_SERVE_MODEL": str(tiny_run), "ELSST_SERVE_DATASET": str(small_dataset.path),
           "ELSST_SERVE_LANGUAGES": "en", "ELSST_SERVE_THREADS": "1", "ELSST_BENCH_CACHE": str(tmp_path / "cache")}
    server = Served(gunicorn_command(workers=2), env=env)
    try:
        client = AnnifClient(server.base + "v1/")
        assert [p["project_id"] for p in client.projects] == ["elsst-en"]
        _, label = unique_label(small_dataset, "en")
        answers = [client.suggest("elsst-en", label, limit=3) for _ in range(6)]
        assert all(a == answers[0] for a in answers) and answers[0][0]["label"] == label.lower()
        workers = psutil.Process(server.process.pid).children()
        assert len(workers) == 2
    finally:
        server.stop()


@pytest.mark.slow
def test_the_real_multilingual_e5_behind_annif_client(small_dataset, tmp_path):
    """multilingual-e5-small (the offline default) served for German and English: a known label's text, and a
    phrase around it, have that concept first."""
    env = {"ELSST_BENCH_MODEL": "", "ELSST_BENCH_CACHE": str(tmp_path / "cache")}
    server = Served(serve_command("--dataset", small_dataset.path, "-l", "de,en"), env=env, timeout=600)
    try:
        client = AnnifClient(server.base + "v1/")
        assert "multilingual-e5-small" in client.get_project("elsst-de")["name"]
        th = small_dataset.thesaurus()
        for lang in ("en", "de"):
            cid, label = unique_label(small_dataset, lang, depth=2)
            assert client.suggest(f"elsst-{lang}", label, limit=5)[0]["uri"] == th[cid].uri
        # a label inside a sentence, as in a study title
        cid, label = unique_label(small_dataset, "en", depth=3)
        hits = client.suggest("elsst-en", f"A survey of {label.lower()} in European countries, 2010-2020", limit=10)
        assert th[cid].uri in [h["uri"] for h in hits], (label, [h["label"] for h in hits])
    finally:
        server.stop()


def test_check_builds_everything_and_exits_without_serving(cli, tiny_run, small_dataset, tmp_path):
    result = cli("serve", tiny_run, "--dataset", small_dataset.path, "-l", "de", "--check", "--quiet",
                 env={"ELSST_BENCH_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("elsst-de\tELSST German (") and "lora" in result.stdout
    assert any((tmp_path / "cache").rglob("*.npz"))  # the pool is in the cache for the workers that follow


@pytest.mark.slow  # OpenVINO's export and int8 quantisation
def test_the_openvino_backend_serves_a_static_int8_export_and_reuses_it(cli, tiny_run, small_dataset, tmp_path):
    """`--backend openvino`: the merged run exported to OpenVINO and quantised to int8 (FakeQuantize on the
    MatMuls), built once into the cache and reused; its answers are the fp32 model's up to quantisation noise."""
    import openvino

    from elsst_bench.serve.load import load_suggester

    cache = tmp_path / "cache"
    options = dict(dataset=small_dataset.path, languages=["en"], cache_dir=cache)
    int8 = load_suggester(str(tiny_run), backend="openvino", **options)
    exports = sorted((cache / "serving").rglob("openvino_model.xml"))
    assert len(exports) == 1
    ops = [op.get_type_name() for op in openvino.Core().read_model(exports[0]).get_ops()]
    assert ops.count("FakeQuantize") >= 8, sorted(set(ops))  # the tiny BERT's 2 layers x 6 linears, at least
    assert int8.info.backend == "openvino" and "openvino" in int8.projects()[0]["name"]
    fp32 = load_suggester(str(tiny_run), **options)
    cid, label = unique_label(small_dataset, "en")
    first = int8.suggest_one(label, "en", limit=20)
    assert first[0]["concept_id"] == cid == fp32.suggest_one(label, "en", limit=1)[0]["concept_id"]
    exact = {h["concept_id"]: h["cosine"] for h in fp32.suggest_one(label, "en", limit=200)}
    assert all(abs(h["cosine"] - exact[h["concept_id"]]) < 0.05 for h in first[1:] if h["concept_id"] in exact)
    built = exports[0].stat().st_mtime_ns
    result = cli("serve", tiny_run, "--dataset", small_dataset.path, "-l", "en", "--backend", "openvino", "--check",
                 "--quiet", env={"ELSST_BENCH_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr
    assert sorted((cache / "serving").rglob("openvino_model.xml")) == exports
    assert exports[0].stat().st_mtime_ns == built  # reused, not rebuilt


@pytest.mark.parametrize("name, value", [("ELSST_SERVE_THREADS", "two"), ("ELSST_SERVE_MAX_BODY", "-5"),
                                         ("ELSST_SERVE_BACKEND", "tpu")])
def test_the_app_factory_refuses_a_bad_setting_in_one_line(name, value, monkeypatch):
    from elsst_bench.errors import BenchError
    from elsst_bench.serve import create_app

    monkeypatch.setenv(name, value)
    with pytest.raises(BenchError, match=name):
        create_app()
