"""Shared fixtures and the helpers every test module may use.

- fixtures: the real ELSST release, a full prepared dataset, a small one, the hand-built mini thesaurus, ``cli``;
- the fixture modules below are registered as plugins, so their fixtures are available in every test module
  (a test module imports only plain helpers from them);
- :func:`run_cli` runs the installed console script the way a user does, in a process of its own; the ``cli``
  fixture (:func:`run_cli_in_process`) runs the same ``main()`` in the test process, which is much cheaper; and
  :func:`assert_one_line_error` checks the CLI's contract for bad input: exit status 2, one line, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["adapter_fixtures", "eval_fixtures", "leaderboard_fixtures", "serve_fixtures"]

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
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller, before any worker starts
        _compile_numba_kernels()


#: The methods whose parametrisations of a registry-wide test (``@pytest.mark.matrix``) stay in the fast subset:
#: the baseline and the method this benchmark is about. CI runs every method; `make test-fast` these two.
FAST_METHODS = frozenset({"lora", "orthogeolora"})


def pytest_collection_modifyitems(config, items):
    """Marks ``slow`` every parametrisation of a ``matrix(param, *empty)`` test but those whose ``param`` is one
    of :data:`FAST_METHODS` and whose ``empty`` parameters are empty (a variant's options), so a new method of the
    registry joins the full run and leaves the fast one as it was."""
    for item in items:
        marker = item.get_closest_marker("matrix")
        if marker is None:
            continue
        params = item.callspec.params
        param, *empty = marker.args
        if params[param] not in FAST_METHODS or any(params[name] for name in empty):
            item.add_marker(pytest.mark.slow)


def _compile_numba_kernels() -> None:
    """Compile ranx's numba kernels into numba's disk cache once. In a fresh environment (a clean clone, CI) every
    process that scores would otherwise compile them itself, about 20 s of CPU each, and the concurrency test
    starts twenty such processes at once; with the cache written they load in well under a second."""
    import numpy as np
    from ranx.statistical_tests.fisher_randomization_test import fisher_randomization_test

    from elsst_bench.evaluation.metrics import warm_up

    warm_up()
    scores = np.linspace(0.0, 1.0, 8)
    fisher_randomization_test(scores, scores[::-1].copy(), 10, 0.05, 42)  # compare's kernel, as it calls it


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


@pytest.fixture(autouse=True)
def _signal_handlers():
    """Every test starts with the SIGINT and SIGTERM handlers the one before it found: a server or sweep run in the
    test process may install its own, and a test of interrupt handling then saw another handler than Python's
    (flaky under worksteal, depending on which test ran before it in the worker)."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        if signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


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


def run_cli_in_process(*args, cwd: Path | None = None, env: dict | None = None,
                       timeout: int | None = None) -> subprocess.CompletedProcess:
    """The console script's ``main()`` in this process: the same parsing, commands, error lines and exit statuses
    as :func:`run_cli`, without starting an interpreter (each start re-imports torch, transformers and
    sentence-transformers: seconds on 2 cores, most of what a CLI test used to cost).

    ``env`` and ``cwd`` apply for the call and are restored after it, as are ``sys.argv`` and every environment
    variable the command set (``--quiet`` sets some). An exception other than ``SystemExit`` becomes exit status 1
    with its traceback on stderr, as a real process would show it. What needs a process of its own — signals,
    concurrency, a tqdm that reads ``TQDM_DISABLE`` when it is imported — uses :func:`run_cli`.
    """
    import contextlib
    import io
    import traceback

    from elsst_bench.cli import main

    argv = [str(EXE), *map(str, args)]
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        os.environ.update({**ENV, **(env or {})})
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = argv
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - what a crashing process would print
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def cli():
    """:func:`run_cli_in_process`: ``cli("evaluate", path, "--json", cwd=..., env=...)``."""
    return run_cli_in_process


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
