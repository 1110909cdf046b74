"""The model card (``README.md``) every ``export`` writes: what the exported model is, what it was trained on and
how it scored, in the layout sentence-transformers uses for its own cards (YAML front matter, then sections).

Everything comes from the run directory: ``config.json`` (base model identity, adapter, trainable parameters,
options, dataset id and fingerprint) and ``metrics.json`` (test scores per task and language; a dev-only run
says it was never scored on test). The training data's licence is stated, since a model trained on ELSST
carries its attribution: ELSST is © CESSDA ERIC and its Service Providers, CC BY-SA 4.0.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import runs
from .metric_names import PRIMARY_METRIC

DATA_ATTRIBUTION = ("ELSST (European Language Social Science Thesaurus), © CESSDA ERIC and its Service Providers, "
                    "licensed under CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)")
CITATION = """@software{elsst_bench,
  title  = {elsst-bench: a benchmark and adapter library for multilingual concept retrieval over ELSST},
  author = {{The elsst-bench developers}},
  year   = {2026},
  note   = {Version %s}
}"""


def _yaml_list(values) -> str:
    return "[" + ", ".join(json.dumps(str(v)) for v in values) + "]"


def model_card(run_dir: str | Path, *, kind: str) -> str:
    """The card of an export of ``run_dir``; ``kind`` is ``"merged"`` (a SentenceTransformer) or ``"peft"``."""
    from . import __version__

    run_dir = Path(run_dir)
    config = runs.read_complete(run_dir)
    options = config.get("options") or {}
    base = config["model"]
    metrics_path = run_dir / runs.METRICS_FILE
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else None
    languages = options.get("languages") or []
    library = "sentence-transformers" if kind == "merged" else "peft"
    front = [
        "---",
        f"library_name: {library}",
        "pipeline_tag: sentence-similarity",
        f"base_model: {json.dumps(base['name'])}",
        f"language: {_yaml_list(languages)}",
        f"tags: {_yaml_list(['sentence-transformers', 'elsst-bench', 'elsst', str(config['adapter'])])}",
        "---",
    ]
    peft_load = "`PeftModel.from_pretrained(model[0].auto_model, \"<this directory>\")`"
    if kind == "merged":
        how = "a SentenceTransformer with the adapter merged into the base weights: " \
              "`SentenceTransformer(\"<this directory>\")`"
    elif runs.method(config["adapter"]).peft_form == "own":
        how = f"a PEFT adapter of {config['adapter']}'s own type for the base transformer: {peft_load}"
    else:
        how = (f"a PEFT LoRA adapter with the run's exact weight update for the base transformer: {peft_load}, or "
               "`model.load_adapter(\"<this directory>\")` on the base SentenceTransformer")
    lines = [
        *front, "",
        f"# {config['adapter']} on {base['name']}, trained on ELSST with elsst-bench", "",
        f"This is {how}. Run `{config.get('run_id', run_dir.name)}`, exported by elsst-bench {__version__}.", "",
        "## Base model", "",
        f"- name: `{base['name']}`",
        f"- sha256: `{base.get('sha256')}`" + (f" (source `{base['source']}`, converter {base.get('converter')})"
                                               if base.get("source") else ""), "",
        "## Adapter", "",
        f"- method: `{config['adapter']}`; trainable parameters: {config['trainable_params']:,}",
        f"- rank {options.get('rank')}, budget {options.get('budget') or '–'}, options "
        f"`{json.dumps(options.get('options') or {}, sort_keys=True)}`",
        f"- learning rate {options.get('lr')}, {options.get('epochs')} epoch(s), batch {options.get('batch_size')}, "
        f"seed {options.get('seed')}, loss {options.get('loss')}", "",
        "## Training data", "",
        f"- dataset `{config.get('dataset_id')}`, fingerprint `{config.get('dataset_fingerprint')}`",
        f"- tasks {', '.join(options.get('tasks') or [])}; languages {', '.join(languages)}; at most "
        f"{options.get('max_pairs') or 'all'} pairs per task and language", "",
        f"Data: {DATA_ATTRIBUTION}.", "",
        "## Test metrics", "",
    ]
    if metrics is None:
        lines += ["This run was not scored on test (a dev-only run, `train --no-test`).", ""]
    else:
        lines += [f"{PRIMARY_METRIC} (graded nDCG@10) per task and language on the test split; main score "
                  f"{metrics['main_score']:.4f}.", ""]
        for task, per_lang in metrics["scores"].items():
            langs = [lang for lang in per_lang if lang != "macro"]
            lines += [f"`{task}`:", "", "| " + " | ".join([*langs, "macro"]) + " |",
                      "|" + "---|" * (len(langs) + 1),
                      "| " + " | ".join(f"{per_lang[lang][PRIMARY_METRIC]:.4f}" for lang in [*langs, "macro"]) + " |",
                      ""]
    lines += ["## Licence and citation", "",
              f"The training data is {DATA_ATTRIBUTION}; share what you derive from it under the same terms. "
              f"The base model's own licence applies to its weights.", "",
              "```bibtex", CITATION % __version__, "```", ""]
    return "\n".join(lines)


def write_card(run_dir: str | Path, directory: str | Path, *, kind: str) -> Path:
    path = Path(directory) / "README.md"
    path.write_text(model_card(run_dir, kind=kind), encoding="utf-8")
    return path
