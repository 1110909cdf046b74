"""The top-level public API (`elsst_bench.__all__`): every name resolves, and `import elsst_bench` is instant."""

from __future__ import annotations

import json


def test_the_top_level_api_resolves_every_name_and_imports_no_torch_until_used():
    import subprocess
    import sys

    script = """
import json, sys
import elsst_bench
heavy = [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]
names = {name: type(getattr(elsst_bench, name)).__name__ for name in elsst_bench.__all__}
print(json.dumps({"heavy": heavy, "names": names}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["heavy"] == []  # `import elsst_bench` alone
    assert set(found["names"]) == {"__version__", "prepare", "open_prepared", "PreparedDataset", "TrainConfig", "train",
                                   "evaluate_model", "compare_runs", "EvaluationResult", "apply_adapter",
                                   "merge_adapter", "save_adapter", "load_adapter", "available_adapters",
                                   "method_info", "load_run", "export_run", "load_suggester", "ConceptSuggester", "submit", "verify",
                                   "BenchError"}
