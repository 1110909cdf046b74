"""elsst-bench: concept retrieval over ELSST and parameter-efficient adapters for sentence encoders.

The public API, one name per step of the benchmark (resolved on first use, so ``import elsst_bench`` stays
instant and imports no torch)::

    prepare(source, out=None, languages=None, tasks=None, ...) -> (directory, manifest)   # SKOS -> BEIR tasks
    open_prepared(directory) -> PreparedDataset
    train(TrainConfig(adapter="orthogeolora", ...)) -> run directory
    evaluate_model(model, dataset, split="test", ...) -> EvaluationResult               # .write(out_dir)
    compare_runs([run, run, ...], dataset) -> [{"task", "runs", "comparisons"}]
    apply_adapter / merge_adapter / save_adapter / load_adapter / available_adapters   # elsst_bench.adapters
    load_run(run_dir) -> (SentenceTransformer with the run's adapter, info)
    export_run(run_dir, merged=dir or peft=dir) -> what was written                      # `elsst-bench export`
    load_suggester(run or model, languages) -> ConceptSuggester                        # what `serve` answers
    submit(run_dir, leaderboard) -> Submitted; verify(leaderboard)                      # the leaderboard

Each layer's own package (``adapters``, ``training``, ``evaluation``, ``leaderboard``, ``serve``, ``track1``)
has the rest; ``__all__`` below is the whole top-level surface.
"""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

#: public name -> the module it lives in
_API = {
    "prepare": ".tasks", "open_prepared": ".tasks", "PreparedDataset": ".tasks",
    "TrainConfig": ".training", "train": ".training",
    "evaluate_model": ".evaluation", "compare_runs": ".evaluation", "EvaluationResult": ".evaluation",
    "apply_adapter": ".adapters", "merge_adapter": ".adapters", "save_adapter": ".adapters",
    "load_adapter": ".adapters", "available_adapters": ".adapters", "method_info": ".adapters",
    "load_run": ".runs", "export_run": ".export",
    "load_suggester": ".serve", "ConceptSuggester": ".serve",
    "submit": ".leaderboard", "verify": ".leaderboard",
    "BenchError": ".errors",
}

__all__ = ["__version__", *_API]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _API)  # the API module is imported when a name is first used
