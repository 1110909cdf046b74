"""``elsst-bench serve``: the concept suggester behind Annif's REST API and a page, on uvicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from .root import app
from .common import device_help, split_list


@app.command()
def serve(
    model_arg: Optional[str] = typer.Argument(None, metavar="MODEL", help="Run directory, zero-shot evaluation directory, exported model "
                                          "directory or model id. Default: --model, else multilingual-e5-small."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Same as MODEL."),
    languages: Optional[list[str]] = typer.Option(None, "--languages", "-l", help="Served languages, comma-separated "
                                                  "(one project elsst-<lang> each). Default: every language."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="Prepared dataset. Default: data/prepared/elsst-r5."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Worker processes (each holds the model; torch threads are split)."),
    backend: str = typer.Option("torch", help="torch (fp32, merged) or openvino (int8; the serve-int8 extra)."),
    device: str = typer.Option("cpu", help=device_help()),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, no access log."),
    check: bool = typer.Option(False, "--check", help="Build everything (refusing what cannot be served), fill the "
                               "pool cache, print the projects and exit without serving."),
) -> None:
    """Serve ELSST concept suggestions: Annif's REST API at /v1 (annif-client and Annif's http backend work
    unchanged), a page for cataloguers at /, the OpenAPI document at /openapi.json."""
    import uvicorn

    from ..errors import BenchError
    from ..progress import quiet_libraries
    from ..serve.app import create_app
    from ..serve.load import load_suggester

    if model_arg is not None and model is not None:
        raise BenchError("give the model once: as MODEL or as --model")
    spec = model_arg if model_arg is not None else model
    if not 1 <= port <= 65535:
        raise BenchError(f"--port must be from 1 to 65535, not {port}")
    if workers < 1:
        raise BenchError("--workers must be at least 1")
    if quiet:
        quiet_libraries()
    langs = split_list(languages, "--languages")
    # Built here in every case: a refusal is one line before any port is bound, and the pools are encoded into the
    # cache once, so that each worker process below starts from a warm cache.
    suggester = load_suggester(spec, dataset=dataset, languages=langs, backend=backend, device=device,
                               use_cache=not no_cache, show_progress=not quiet and sys.stderr.isatty())
    print(f"elsst-bench serve: {suggester.info.description}; projects "
          f"{', '.join(suggester.project_id(x) for x in suggester.languages)}; "
          f"http://{host if ':' not in host else f'[{host}]'}:{port}/", file=sys.stderr)
    if check:
        for project in suggester.projects():
            print(f"{project['project_id']}\t{project['name']}")
        return
    log_level = "warning" if quiet else "info"
    if workers == 1:
        uvicorn.run(create_app(suggester), host=host, port=port, log_level=log_level, access_log=not quiet)
        return
    del suggester
    os.environ.update({
        "ELSST_SERVE_MODEL": spec or "", "ELSST_SERVE_LANGUAGES": ",".join(langs or []),
        "ELSST_SERVE_DATASET": str(dataset or ""), "ELSST_SERVE_BACKEND": backend, "ELSST_SERVE_DEVICE": device,
        "ELSST_SERVE_THREADS": str(max(1, (os.cpu_count() or 1) // workers)),
    })
    uvicorn.run("elsst_bench.serve:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=not quiet)
