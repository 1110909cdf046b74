"""`elsst-bench serve` against its peers, side by side in one run: the core in-process, the HTTP service, the
`search` command.

Usage: .venv/bin/python benchmarks/serve.py [--models default,results/multilingual/runs/lora-graded-g1-s0]
       [--languages all] [--requests 200] [--batches 20] [--search-calls 3] [--out serve.json]

For each model (zero-shot multilingual-e5-small and a trained multilingual run by default), on this machine's cores:

1. warm-up, untimed: the label pools of every served language are encoded into the embedding cache once;
2. startup from that warm cache: ``elsst-bench serve`` started as a user starts it, until ``GET /v1/`` answers;
3. single-request latency (p50/p95/p99 over ``--requests``), for a title (8 words) and a 200-word abstract:
   - in-process: :meth:`ConceptSuggester.suggest` on a suggester built in this process (the peer for HTTP);
   - HTTP: ``POST /v1/projects/elsst-en/suggest`` (form-encoded, as annif-client sends it) to the server of 2.,
     one client on loopback, one connection kept alive;
4. batch throughput: 32 abstracts per call, documents per second, in-process and through ``suggest-batch``;
5. the ``search`` command, one process per call (``--search-calls``), as a user without a server pays it.

It prints one table per model and the ratios (HTTP over in-process, search over HTTP) and writes them as JSON
(``--out``). Run it alone: a second CPU-heavy process on 2 cores spoils every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent / "elsst-bench"
TITLE = "Attitudes to immigration among young people in Europe"
ABSTRACT = " ".join((
    "This longitudinal study follows a representative sample of private households in twelve European countries "
    "over ten years. Every adult member is interviewed each year about employment and unemployment, income and "
    "wealth, housing conditions and housing costs, the education of children, physical and mental health, the "
    "use of social services and social security benefits, and participation in political and social life, "
    "including voting, membership of trade unions and voluntary organisations. Additional modules cover attitudes "
    "to immigration, trust in institutions, gender roles in the family, and the care of older relatives. The data "
    "allow researchers to trace how families adapt to economic change, how poverty persists or ends, how young "
    "people move from school to work, and how retirement changes living standards. Weights correct for "
    "non-response and attrition; occupations are coded to ISCO and education to ISCED, so that results can be "
    "compared across countries and with other surveys of living conditions."
).split()[:200])


def percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "n": len(ms)}


def timed(fn, n: int, warm: int = 5) -> list[float]:
    for _ in range(warm):
        fn()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(spec: str | None, languages: list[str] | None, env: dict) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    args = [str(EXE), "serve", *([spec] if spec else []), "--port", str(port), "--quiet",
            *(["-l", ",".join(languages)] if languages else [])]
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}/"
    while True:
        if process.poll() is not None:
            raise SystemExit(f"serve exited with {process.returncode}: {process.stderr.read()}")
        try:
            if requests.get(base + "v1/", timeout=1).ok:
                return process, base, time.perf_counter() - start
        except requests.RequestException:
            pass
        if time.perf_counter() - start > 900:
            os.killpg(process.pid, signal.SIGKILL)
            raise SystemExit("serve did not answer in 900 s")
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def bench_model(spec: str | None, languages: list[str] | None, args, env: dict) -> dict:
    from elsst_bench.serve.load import load_suggester

    name = spec or "multilingual-e5-small (zero-shot)"
    print(f"\n== {name}", flush=True)
    t0 = time.perf_counter()
    suggester = load_suggester(spec, languages=languages, show_progress=sys.stderr.isatty())  # fills the cache
    print(f"   built in-process (cache warm-up) in {time.perf_counter() - t0:.1f} s; "
          f"languages {','.join(suggester.languages)}", flush=True)
    result: dict = {"model": name, "languages": suggester.languages, "inprocess": {}, "http": {}}
    batch = [ABSTRACT] * 32

    for label, text in (("title", TITLE), ("abstract", ABSTRACT)):
        result["inprocess"][label] = percentiles(timed(lambda: suggester.suggest([text], "en"), args.requests))
    seconds = timed(lambda: suggester.suggest(batch, "en"), args.batches, warm=1)
    result["inprocess"]["batch32_docs_per_s"] = 32 / statistics.median(seconds)
    del suggester

    process, base, startup = start_server(spec, languages, env)
    result["startup_s"] = startup
    try:
        with requests.Session() as session:
            url = base + "v1/projects/elsst-en/suggest"
            for label, text in (("title", TITLE), ("abstract", ABSTRACT)):
                result["http"][label] = percentiles(timed(
                    lambda: session.post(url, data={"text": text}, timeout=60).raise_for_status(), args.requests))
            documents = {"documents": [{"text": t, "document_id": str(i)} for i, t in enumerate(batch)]}
            seconds = timed(lambda: session.post(base + "v1/projects/elsst-en/suggest-batch", json=documents,
                                                 timeout=120).raise_for_status(), args.batches, warm=1)
            result["http"]["batch32_docs_per_s"] = 32 / statistics.median(seconds)
    finally:
        stop(process)

    calls = []
    for _ in range(args.search_calls):
        start = time.perf_counter()
        subprocess.run([str(EXE), "search", TITLE, "-q", *([f"--model={spec}"] if spec else [])], env=env,
                       check=True, capture_output=True)
        calls.append(time.perf_counter() - start)
    result["search_cli_s"] = statistics.median(calls)
    result["ratios"] = {
        "http_over_inprocess_title_p50": result["http"]["title"]["p50"] / result["inprocess"]["title"]["p50"],
        "http_over_inprocess_abstract_p50": result["http"]["abstract"]["p50"] / result["inprocess"]["abstract"]["p50"],
        "inprocess_over_http_batch_throughput": (result["inprocess"]["batch32_docs_per_s"]
                                                 / result["http"]["batch32_docs_per_s"]),
        "search_cli_over_http_title_p50": result["search_cli_s"] * 1000 / result["http"]["title"]["p50"],
    }
    return result


def print_result(r: dict) -> None:
    print(f"   startup from a warm cache ({len(r['languages'])} languages): {r['startup_s']:.1f} s")
    print(f"   {'':26s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}")
    for where in ("inprocess", "http"):
        for label in ("title", "abstract"):
            p = r[where][label]
            print(f"   {where + ' ' + label:26s} {p['p50']:8.1f} {p['p95']:8.1f} {p['p99']:8.1f}")
    print(f"   batch of 32 abstracts: in-process {r['inprocess']['batch32_docs_per_s']:.1f} docs/s, "
          f"suggest-batch {r['http']['batch32_docs_per_s']:.1f} docs/s")
    print(f"   search command (one process per call): {r['search_cli_s']:.1f} s")
    for key, value in r["ratios"].items():
        print(f"   ratio {key}: {value:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="default,results/multilingual/runs/lora-graded-g1-s0",
                        help="comma-separated: 'default' (zero-shot multilingual-e5-small) or run directories")
    parser.add_argument("--languages", default="all", help="served languages ('all' or comma-separated)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--search-calls", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    os.environ.update({k: env[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")})
    languages = None if args.languages == "all" else args.languages.split(",")
    import torch

    machine = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    print(f"machine: {machine}")
    results = []
    for spec in args.models.split(","):
        r = bench_model(None if spec == "default" else spec, languages, args, env)
        print_result(r)
        results.append(r)
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
        print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
