"""Serving: the archives' use of a benchmarked adapter.

- :class:`ConceptSuggester` (:mod:`.core`) — the one core: an encoder with the adapter merged, one FAISS index per
  served language, the thesaurus; ``suggest(texts, lang, limit, threshold)``. ``elsst-bench search`` and
  ``elsst-bench serve`` are two faces of it.
- :func:`load_suggester` (:mod:`.load`) — a suggester from a run directory, a model id or an exported model.
- :func:`create_app` (:mod:`.app`) — the ASGI app: Annif's REST API and the cataloguer's page; configured from
  ``ELSST_SERVE_*`` variables when called without a suggester (``gunicorn 'elsst_bench.serve:create_app()'``).

Imports are lazy: ``import elsst_bench.serve`` loads neither torch nor FastAPI.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"ConceptSuggester": "core", "ModelInfo": "core", "load_suggester": "load", "create_app": "app"}


def __getattr__(name: str) -> Any:  # PEP 562
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
