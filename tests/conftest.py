"""Shared fixtures and the helpers every test module may use.

- fixtures: the real ELSST release, a full prepared dataset, a small one, the hand-built mini thesaurus, ``cli``;
- the fixture modules below are registered as plugins, so their fixtures are available in every test module
  (a test module imports only plain helpers from them);
- :func:`run_cli` (also the ``cli`` fixture) runs the installed console script the way a user does, and
  :func:`assert_one_line_error` checks the CLI's contract for bad input: exit status 2, one line, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["adapter_fixtures", "eval_fixtures", "leaderboard_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "data" / "ELSST_R5.rdf.gz"
MINI = Path(__file__).resolve().parent / "data" / "mini.ttl"
EXE = Path(sys.executable).parent / "elsst-bench"
#: Nothing is fetched from a hub in tests; no tokenizer thread pools in forked test processes.
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
os.environ.update(ENV)


def pytest_configure(config):
    """The default base of every test (``$ELSST_BENCH_MODEL``, inherited by the commands the tests run) is the tiny
    random BERT of tests/tiny_model.py; the tests of the real default, multilingual-e5-small, unset it."""
    import atexit
    import shutil
    import tempfile

    from tiny_model import build_tiny_model

    if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two workers on two cores: one thread each,
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # inherited by the commands a test runs
            os.environ[name] = "1"
    root = Path(tempfile.mkdtemp(prefix="elsst-tiny-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    os.environ["ELSST_BENCH_MODEL"] = str(build_tiny_model(root / "tiny-bert"))


def run_cli(*args, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the installed console script the way a user does (arguments may be paths)."""
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **ENV, **(env or {})}, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, exactly one line on stderr, no traceback; the line contains every fragment. Returns it."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def release_path() -> Path:
    return RELEASE


@pytest.fixture(scope="session")
def mini_path() -> Path:
    return MINI


@pytest.fixture(scope="session")
def prepared_full(tmp_path_factory):
    """The whole release, all languages and tasks, prepared once per test session."""
    from elsst_bench.tasks import prepare

    out = tmp_path_factory.mktemp("prepared") / "elsst-r5"
    path, manifest = prepare(RELEASE, out=out)
    return path, manifest


@pytest.fixture(scope="session")
def cli():
    """:func:`run_cli`: ``cli("evaluate", path, "--json", cwd=..., env=...)``."""
    return run_cli


def write_subset(release: Path, target: Path, min_concepts: int = 300) -> Path:
    """A smaller real SKOS file: whole subtrees of ELSST top concepts (by id) until ``min_concepts``.

    Links to concepts outside the subset are dropped, so the file is a consistent thesaurus of its own.
    Used to keep training and export tests fast while exercising the real parsing and task code.
    """
    import gzip

    import pyoxigraph as ox

    skos_ns = "http://www.w3.org/2004/02/skos/core#"
    quads = list(ox.parse(gzip.decompress(release.read_bytes()), format=ox.RdfFormat.RDF_XML))
    narrower: dict[str, set[str]] = {}
    concepts, tops = set(), []
    for q in quads:
        s, p, o = q.subject.value, q.predicate.value, q.object.value
        if p == skos_ns + "broader":
            narrower.setdefault(o, set()).add(s)
        elif p == skos_ns + "narrower":
            narrower.setdefault(s, set()).add(o)
        elif p == skos_ns + "topConceptOf":
            tops.append(s)
        elif p.endswith("#type") and o == skos_ns + "Concept":
            concepts.add(s)
    keep: set[str] = set()
    for top in sorted(tops):
        stack = [top]
        while stack:
            node = stack.pop()
            if node not in keep:
                keep.add(node)
                stack.extend(narrower.get(node, ()))
        if len(keep) >= min_concepts:
            break
    linked = {skos_ns + x for x in ("broader", "narrower", "related", "hasTopConcept")}
    kept = [q.triple for q in quads
            if (q.subject.value in keep or q.subject.value not in concepts)
            and not (q.predicate.value in linked and q.object.value in concepts and q.object.value not in keep)]
    target.write_bytes(ox.serialize(kept, format=ox.RdfFormat.N_TRIPLES))
    return target


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """A prepared dataset (en, de) from a ~300-concept subset of the real release."""
    from elsst_bench.tasks import open_prepared, prepare

    root = tmp_path_factory.mktemp("small")
    source = write_subset(RELEASE, root / "elsst-subset.nt")
    path, _ = prepare(source, out=root / "prepared", languages=["en", "de"])
    return open_prepared(path)
