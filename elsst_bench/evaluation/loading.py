"""Which encoder to evaluate or search with: a run directory or a base model id/path.

A run directory is a directory with a ``config.json`` (read by :func:`elsst_bench.runs.read_config`): a training
run (``adapter/`` or ``model/`` beside it), loaded with :func:`elsst_bench.runs.load_run`, or a zero-shot output of
``elsst-bench evaluate --model`` (``"kind": "zero-shot"``), which names its base model. The run's dataset
fingerprint (``config.json`` ``dataset_fingerprint``) is checked against the prepared dataset *before*
anything is loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .. import runs
from ..devices import resolve_device
from ..errors import DataError


@dataclass
class LoadedModel:
    model: object
    identity: dict
    adapter: str = "none"
    trainable_params: int = 0
    cache_extra: str | None = None  # extra embedding-cache key material (the adapter files' hash)
    run_dir: Path | None = None


def is_run_dir(path: str | Path | None) -> bool:
    if path is None:
        return False
    path = Path(path)
    # A saved SentenceTransformer also has a config.json (the transformer's); modules.json marks a model.
    return path.is_dir() and (path / runs.CONFIG).is_file() and not (path / "modules.json").is_file()


#: What to do instead, when a path given as a run directory has no config.json.
RUN_DIR_HINT = "pass a run directory or --model"


def check_run_fingerprint(run_dir: str | Path, config: dict, ds) -> None:
    """Refuse a run prepared on another dataset: its train/dev/test split and labels would not match."""
    theirs = config.get("dataset_fingerprint")
    if not theirs:
        raise DataError(f"{run_dir}/config.json records no dataset_fingerprint; cannot check it against {ds.path}")
    if theirs != ds.fingerprint:
        raise DataError(f"run {run_dir} was trained on dataset fingerprint {theirs[:16]}, but {ds.path} has "
                        f"{ds.fingerprint[:16]}; pass --dataset with the dataset the run was prepared on")


def files_sha256(directory: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(directory)).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_run_model(run_dir: str | Path, ds, device: str = "cpu") -> LoadedModel:
    run_dir = Path(run_dir)
    config = runs.read_config(run_dir, hint=RUN_DIR_HINT)
    check_run_fingerprint(run_dir, config, ds)
    if config.get("kind") == "zero-shot":
        from ..models import locate, prompt_convention

        if not isinstance(config.get("model"), dict):
            raise DataError(f"{run_dir}/config.json names no model")
        location = locate(config["model"])
        loaded = load_base_model(location, device, prompts=prompt_convention(config.get("options")))
        loaded.identity = dict(config["model"], location=location)
        loaded.run_dir = run_dir
        return loaded
    model, info = runs.load_run(run_dir, device=resolve_device(device))  # the one place: run directory -> model
    info = dict(info or {})
    if info.get("dataset_fingerprint") and info["dataset_fingerprint"] != ds.fingerprint:
        check_run_fingerprint(run_dir, info, ds)
    weights = [d for d in (run_dir / "adapter", run_dir / "model") if d.is_dir()]
    return LoadedModel(model=model, identity=dict(info.get("identity") or config.get("model") or {}),
                       adapter=str(info.get("adapter") or config.get("adapter") or "unknown"),
                       trainable_params=int(info.get("trainable_params") or 0),
                       cache_extra=":".join(files_sha256(d) for d in weights) or None, run_dir=run_dir)


class LazySentenceTransformer:
    """A local sentence-transformers model that is loaded only when something must be encoded.

    An evaluation or search whose embeddings are all in the cache never pays the model load (importing
    sentence-transformers and reading the weights: several seconds on a small CPU). The cache key of a text
    depends on the role signature (:func:`.encode.role_signature`), read here from the model directory
    without loading it: ``""`` for both roles when the model has no prompts, no default prompt and no
    task router (all-MiniLM-L6-v2), otherwise a per-role signature that cannot collide with another role's.
    """

    training = False

    def __init__(self, name_or_path: str | None, location: str, device: str, prompts: str = "asymmetric"):
        from ..models import prompts_under

        self._spec, self._device, self._model, self._prompts = name_or_path, device, None, prompts
        config, types = {}, []
        with contextlib.suppress(OSError, ValueError):
            config = json.loads((Path(location) / "config_sentence_transformers.json").read_text(encoding="utf-8"))
        with contextlib.suppress(OSError, ValueError):
            types = [m.get("type", "") for m in json.loads((Path(location) / "modules.json").read_text("utf-8"))]
        own, default = prompts_under(config.get("prompts"), config.get("default_prompt_name"), prompts)
        plain = not any(own.values()) and not default and not any("Router" in t for t in types)
        material = json.dumps([own, default, types], sort_keys=True)
        self._plain, self._material = plain, hashlib.sha256(material.encode()).hexdigest()[:16]

    def role_signature(self, role: str) -> str:
        return "" if self._plain else f"lazy|{role}|{self._material}"

    def load(self):
        if self._model is None:
            from ..models import load_sentence_transformer

            self._model = load_sentence_transformer(self._spec, device=resolve_device(self._device),
                                                    prompts=self._prompts)
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def encode(self, *args, **kwargs):
        return self.load().encode(*args, **kwargs)

    def encode_query(self, *args, **kwargs):
        return self.load().encode_query(*args, **kwargs)

    def encode_document(self, *args, **kwargs):
        return self.load().encode_document(*args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.load(), name)


def load_base_model(name_or_path: str | None, device: str = "cpu", lazy: bool = True,
                    prompts: str = "asymmetric") -> LoadedModel:
    """A base model with its prompts under ``prompts`` (:data:`elsst_bench.models.PROMPT_CONVENTIONS`); with
    ``lazy`` (and a local directory) loaded only when something is encoded."""
    from ..models import check_prompts, load_sentence_transformer, model_identity

    check_prompts(prompts)
    identity = model_identity(name_or_path)  # validates a path before the (slow) load
    if lazy and identity.get("location") and Path(identity["location"]).is_dir():
        return LoadedModel(model=LazySentenceTransformer(name_or_path, identity["location"], device, prompts),
                           identity=identity)
    model = load_sentence_transformer(name_or_path, device=resolve_device(device), prompts=prompts)
    return LoadedModel(model=model, identity=identity)


def check_model_spec(spec: str | None) -> None:
    """Fail fast (before opening anything slow) on a model path that cannot be a model."""
    if spec is not None and not is_run_dir(spec):
        from ..models import resolve_model

        resolve_model(spec)
