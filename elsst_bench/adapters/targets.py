"""The model side: the encoder inside a SentenceTransformer, which of its linears to adapt, and who it is.

* :func:`inner_model` – adapters work on the Hugging Face encoder (``model[0].auto_model``); module names
  are relative to it.
* :func:`find_target_modules` – every ``nn.Linear`` inside the transformer blocks by default (a module name
  with a numeric path component, e.g. ``encoder.layer.3.attention.self.query``; that excludes BERT's pooler),
  or a selector with PEFT's semantics: a *list* of name suffixes (``["query", "value"]``; ``"output.dense"``
  also matches ``attention.output.dense``, exactly as in PEFT) or a *string* regular expression that must
  match the whole module name. :func:`block_index` and :func:`module_type` read names (:mod:`.names`).
* :func:`base_fingerprint` – what an adapter file records of the base weights it was trained on.
* :func:`module_identity` – the identity the module itself tells (its weights directory); the benchmark's
  fuller identity of a packaged or hub model is :func:`elsst_bench.models.infer_base_identity`, which callers
  pass as ``base_model=``.
* :func:`trainable_parameters`, :func:`count_trainable` – what the optimiser sees.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from ..errors import AdapterError
from .names import block_index, module_type

__all__ = [
    "base_fingerprint", "block_index", "count_trainable", "find_target_modules", "inner_model", "module_identity",
    "module_type", "set_submodule", "shapes_of", "trainable_parameters",
]


def inner_model(model: nn.Module) -> nn.Module:
    """The Hugging Face encoder inside a SentenceTransformer (``model[0].auto_model``), else ``model`` itself."""
    if not isinstance(model, nn.Module):
        raise AdapterError(f"expected a SentenceTransformer or a torch module, got {type(model).__name__}")
    if isinstance(model, nn.Sequential) and len(model) > 0:
        auto = getattr(model[0], "auto_model", None)
        if isinstance(auto, nn.Module):
            return auto
    auto = getattr(model, "auto_model", None)
    if isinstance(auto, nn.Module):
        return auto
    return model


def set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def find_target_modules(model: nn.Module, target_modules: str | Iterable[str] | None = None) -> dict[str, nn.Linear]:
    """``{name: nn.Linear}`` of the layers to adapt, in module order (names relative to the inner encoder).

    ``None``: every ``nn.Linear`` inside the transformer blocks. A string: a regular expression matched
    against the whole name. A list: name suffixes (a name matches ``s`` if it equals ``s`` or ends in
    ``"." + s``), PEFT's convention.
    """
    root = inner_model(model)
    linears = {
        name: module for name, module in root.named_modules() if isinstance(module, nn.Linear) and name
    }
    if target_modules is None:
        chosen = {n: m for n, m in linears.items() if block_index(n) is not None}
        if not chosen:
            raise AdapterError(
                "no linear layer inside numbered transformer blocks was found; pass target_modules explicitly"
            )
        return chosen
    if isinstance(target_modules, str):
        try:
            pattern = re.compile(target_modules)
        except re.error as err:
            raise AdapterError(f"target_modules {target_modules!r} is not a valid regular expression ({err})") from None
        chosen = {n: m for n, m in linears.items() if pattern.fullmatch(n)}
        label = target_modules
    else:
        suffixes = [str(s) for s in target_modules]
        if not suffixes:
            raise AdapterError("target_modules is empty; name at least one module suffix")
        chosen = {n: m for n, m in linears.items() if any(n == s or n.endswith("." + s) for s in suffixes)}
        unmatched = [s for s in suffixes if not any(n == s or n.endswith("." + s) for n in linears)]
        if unmatched:
            endings = sorted({module_type(n).split("*.", 1)[-1] for n in linears})
            raise AdapterError(
                f"target module(s) {', '.join(unmatched)} match no linear layer; the model's linear layers are: "
                f"{', '.join(endings)}"
            )
        label = ",".join(suffixes)
    if not chosen:
        raise AdapterError(f"target_modules {label!r} match no linear layer of the model")
    return chosen


def shapes_of(targets: dict[str, nn.Linear]) -> dict[str, tuple[int, int]]:
    """``{name: (d_out, d_in)}``."""
    return {name: (m.out_features, m.in_features) for name, m in targets.items()}


def base_fingerprint(targets: dict[str, nn.Linear]) -> str:
    """sha256 over the names, shapes and float32 bytes of the target layers' weights and biases."""
    digest = hashlib.sha256()
    for name in sorted(targets):
        layer = targets[name]
        for kind, tensor in (("weight", layer.weight), ("bias", layer.bias)):
            if tensor is None:
                continue
            data = tensor.detach().to("cpu", torch.float32).contiguous()
            digest.update(f"{name}.{kind}:{tuple(data.shape)}".encode())
            digest.update(data.numpy().tobytes())
    return digest.hexdigest()


def module_identity(model: nn.Module) -> dict | None:
    """``{"name", "location", "sha256": None}`` from the weights directory the encoder was loaded from (its
    config's ``_name_or_path``, when that is an existing directory), else None. The adapter library cannot
    tell more (which published model that is, the hash of its files): pass ``base_model=`` for that."""
    root = inner_model(model)
    location = getattr(getattr(root, "config", None), "_name_or_path", None) or getattr(root, "name_or_path", None)
    if not location or not Path(str(location)).is_dir():
        return None
    location = str(Path(str(location)).resolve())
    return {"name": location, "location": location, "sha256": None}


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters with ``requires_grad`` (after ``apply_adapter``: the adapter's only), each once."""
    seen: set[int] = set()
    out = []
    modules = [model] if inner_model(model) is model else [model, inner_model(model)]
    for module in modules:
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def count_trainable(model: nn.Module) -> int:
    """Number of trainable scalars (shared tensors counted once)."""
    return sum(p.numel() for p in trainable_parameters(model))
