"""Build a :class:`~.core.ConceptSuggester` from what a user names: a run directory, a zero-shot evaluation, a model
id or an exported model directory; the adapter merged into the base weights, on the backend asked for.

Everything that can be refused is checked before anything slow is loaded: the backend and device names, the
dataset, the languages, the run (complete, prepared on this dataset, its base model on this machine). Each refusal
is one line (:class:`~elsst_bench.errors.BenchError`).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from .. import paths, runs
from ..devices import check_device
from ..errors import BenchError
from ..tasks import open_prepared, resolve_selection
from .backends import BACKENDS, calibration_texts, check_backend, serving_model
from .core import ConceptSuggester, ModelInfo, search_languages
from .thread import on_encoder_thread


def modification_time(*paths: Path) -> str | None:
    """The newest modification time of the files under ``paths``, ISO 8601 UTC (as Annif reports a project's)."""
    times = [f.stat().st_mtime for p in paths if p.exists() for f in ([p] if p.is_file() else p.rglob("*"))
             if f.is_file()]
    if not times:
        return None
    return datetime.fromtimestamp(max(times), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_spec(spec: str | None, ds) -> dict | None:
    """Validate a model argument without loading it; returns a training run's config (None otherwise)."""
    from ..evaluation.loading import RUN_DIR_HINT, check_model_spec, check_run_fingerprint, is_run_dir
    from ..models import locate

    if not is_run_dir(spec):
        check_model_spec(spec)
        return None
    config = runs.read_config(spec, hint=RUN_DIR_HINT)
    check_run_fingerprint(spec, config, ds)
    if config.get("kind") == "zero-shot":
        return None
    config = runs.read_complete(spec, hint=RUN_DIR_HINT)
    base = locate(config["model"])
    if not (runs.trains(config["adapter"]) and not runs.is_adapter(config["adapter"])) and not Path(base).is_dir():
        raise BenchError(f"run {spec}: its base model {config['model']['name']} is not on this machine ({base})")
    return config


def load_suggester(spec: str | None = None, **options) -> ConceptSuggester:
    """A suggester for ``spec`` (run directory, zero-shot evaluation directory, model id or path; ``None``: the
    default base) over ``languages`` of ``dataset`` (default: every language with a pool); built on the encoder
    thread (:mod:`.thread`), where its every torch call then runs. Options: ``dataset``, ``languages``, ``backend``
    (``torch``), ``device`` (``cpu``), ``use_cache``, ``cache_dir``, ``batch_size``, ``show_progress``."""
    return on_encoder_thread(_load_suggester, spec, **options)


def _load_suggester(spec: str | None = None, *, dataset=None, languages: list[str] | None = None,
                    backend: str = "torch", device: str = "cpu", use_cache: bool = True, cache_dir=None,
                    batch_size: int = 128, show_progress: bool = False) -> ConceptSuggester:
    from ..evaluation.encode import default_cache_dir
    from ..evaluation.loading import LazySentenceTransformer, is_run_dir, load_base_model, load_run_model

    check_backend(backend)
    check_device(device)
    if batch_size < 1:
        raise BenchError("--batch-size must be at least 1")
    ds = open_prepared(dataset if dataset is not None else paths.default_dataset_dir())
    if languages:
        languages = resolve_selection(languages, search_languages(ds), "language")
    config = check_spec(spec, ds)
    cache_dir = str(cache_dir or default_cache_dir()) if use_cache else None
    if is_run_dir(spec):
        loaded = load_run_model(spec, ds, device)
        weights = [Path(spec) / runs.ADAPTER_DIR, Path(spec) / runs.MODEL_DIR, Path(spec) / runs.CONFIG]
    else:
        loaded = load_base_model(spec, device, lazy=False)
        location = loaded.identity.get("location")
        weights = [Path(location)] if location and Path(location).is_dir() else []
    model = loaded.model
    if isinstance(model, LazySentenceTransformer):  # a zero-shot evaluation's base: serving needs it loaded
        model = model.load()
    if config is not None and runs.is_adapter(loaded.adapter):
        from ..adapters import merge_adapter

        merge_adapter(model)  # ΔW folded into the base weights: plain nn.Linear layers, no adapter branch per call
    model.eval()
    # Calibrated on every language of the dataset, whichever are served: one int8 export per model.
    calibration = calibration_texts(ds, search_languages(ds)) if backend != "torch" else None
    model, extra = serving_model(model, backend, loaded.identity, loaded.cache_extra, cache_dir, calibration)
    info = ModelInfo(name=str(loaded.identity.get("name", "model")), adapter=loaded.adapter,
                     run=(config or {}).get("run_id") or (Path(spec).name if is_run_dir(spec) else None),
                     backend=backend, trained=config is not None, modified=modification_time(*weights))
    suggester = ConceptSuggester(model, ds, languages, identity=loaded.identity, cache_dir=cache_dir,
                                 cache_extra=extra, info=info, batch_size=batch_size, show_progress=show_progress)
    release_memory()
    return suggester


def release_memory() -> None:
    """Give the heap that building left free back to the system: the whole embedding cache read to find the pools,
    the pools' encoding batches, which glibc would otherwise keep in its arenas (measured: a run served in 4
    languages from a cold cache, 1,356 MB resident without, 1,284 MB with). Elsewhere only the garbage is
    collected."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def environment_settings(environ=os.environ) -> dict:
    """``load_suggester`` keyword arguments from ``ELSST_SERVE_*`` variables (the app factory's configuration, for
    ``gunicorn 'elsst_bench.serve:create_app()'``); see docs/serve.md."""
    settings: dict = {}
    spec = environ.get("ELSST_SERVE_MODEL", "").strip()
    if spec:
        settings["spec"] = spec
    if environ.get("ELSST_SERVE_LANGUAGES", "").strip():
        settings["languages"] = [x.strip() for x in environ["ELSST_SERVE_LANGUAGES"].split(",") if x.strip()]
    if environ.get("ELSST_SERVE_DATASET", "").strip():
        settings["dataset"] = environ["ELSST_SERVE_DATASET"].strip()
    backend = environ.get("ELSST_SERVE_BACKEND", "").strip()
    if backend:
        if backend not in BACKENDS:
            raise BenchError(f"ELSST_SERVE_BACKEND={backend!r} is not a backend; known: {', '.join(BACKENDS)}")
        settings["backend"] = backend
    if environ.get("ELSST_SERVE_DEVICE", "").strip():
        settings["device"] = environ["ELSST_SERVE_DEVICE"].strip()
    return settings


def search_command(text: str, spec: str | None = None, *, dataset=None, lang: str = "en", k: int = 10,
                   use_cache: bool = True, cache_dir=None, device: str = "auto", show_progress: bool = False) -> list[dict]:
    """``elsst-bench search``: the suggester over one language, asked once (the text is checked before loading)."""
    from .core import check_limit

    if not isinstance(text, str) or not text.strip():
        raise BenchError("the search text is empty")
    check_limit(k, "-k")
    suggester = load_suggester(spec, dataset=dataset, languages=[lang], device=device, use_cache=use_cache,
                               cache_dir=cache_dir, show_progress=show_progress)
    return suggester.suggest_one(text, suggester.languages[0], limit=k)
