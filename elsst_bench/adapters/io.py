"""Saving and loading adapters: ``adapter.safetensors`` + ``adapter_config.json`` (layout: :mod:`.layout`).

* :func:`save_adapter` writes the adapter's own tensors (each shared tensor once) and its config.
* :func:`load_adapter` puts a saved adapter on a *fresh* base model: it checks the base weights of the target
  modules against the saved fingerprint, rebuilds the structure from the config and copies the tensors in;
  any mismatch raises AdapterError and leaves the model as it was.
* :func:`load_adapter_weights` copies a saved adapter's tensors into the *same* adapter already applied
  (checkpoint reload), running the method's ``before_reload``/``after_reload`` hooks (PiSSA moves its residual
  base there).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import AdapterError
from .apply import apply_exact, unapply
from .layout import ADAPTER_CONFIG, ADAPTER_WEIGHTS, read_adapter_config
from .method import AdapterState, get_state, require_state
from .registry import get_method
from .targets import base_fingerprint, inner_model

def adapter_config(model: nn.Module) -> dict:
    """The adapter config ``save_adapter`` would write (method, options, rank, targets, identity, counts...)."""
    return _jsonable(require_state(model).config(model))


def _tensors_for_saving(state: AdapterState) -> dict[str, torch.Tensor]:
    method = get_method(state.method)
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for name, layer in state.layers.items():
        for key, tensor in method.layer_tensors(layer).items():
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            out[f"{name}.{key}"] = tensor
    return out


def save_adapter(model: nn.Module, directory: str | Path, base_model: dict | None = None) -> Path:
    """Write ``adapter.safetensors`` (adapter tensors only) and ``adapter_config.json`` into ``directory``.

    ``base_model``: the identity to record (default: the one given to ``apply_adapter``, else what the module
    itself tells).
    """
    from safetensors.torch import save as save_tensors

    from ..atomic import write_bytes, write_json

    state = require_state(model)
    directory = Path(directory)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in _tensors_for_saving(state).items()}
    config = state.config(model, base_model)
    config["tensors"] = len(tensors)
    data = save_tensors(tensors, metadata={"format": "pt", "method": state.method})
    write_bytes(directory / ADAPTER_WEIGHTS, canonical_safetensors(data))
    write_json(directory / ADAPTER_CONFIG, _jsonable(config))
    return directory


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    return obj


def read_adapter_tensors(directory: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``adapter.safetensors`` (AdapterError when missing or corrupt)."""
    from safetensors.torch import load as load_tensors

    path = Path(directory) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise AdapterError(f"adapter file {path} is missing")
    try:
        return load_tensors(path.read_bytes())
    except Exception as err:  # safetensors raises its own error types for bad bytes
        raise AdapterError(f"adapter file {path} is corrupt ({str(err).splitlines()[0][:120]})") from None


def load_adapter(model: nn.Module, directory: str | Path) -> list[nn.Module]:
    """Load a saved adapter into a fresh base ``model``: rebuild its structure from the config, copy the tensors.

    Any mismatch (other base weights, other modules, missing or misshapen tensors, bad bytes) raises
    AdapterError and leaves the model as it was.
    """
    directory = Path(directory)
    config = read_adapter_config(directory)
    tensors = read_adapter_tensors(directory)
    method = get_method(config["method"])
    path = directory / ADAPTER_WEIGHTS
    if get_state(model) is not None:
        raise AdapterError(
            f"the model already has a '{get_state(model).method}' adapter; load_adapter needs a fresh base model"
        )
    root = inner_model(model)
    names = config["target_modules"]
    modules = dict(root.named_modules())
    missing = [n for n in names if not isinstance(modules.get(n), nn.Linear)]
    if missing:
        raise AdapterError(
            f"adapter file {path} is mismatched: the model has no linear layer {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if base_fingerprint({n: modules[n] for n in names}) != config["base_fingerprint"]:
        raise AdapterError(_base_mismatch_message(path, config))
    apply_exact(model, config, dict(config["options"]))
    state = get_state(model)
    for key in (*method.config_fields, "budget"):
        if key in config:
            state.extra[key] = config[key]
    try:
        _copy_tensors(state, tensors, path)
    except BaseException:
        unapply(model)
        raise
    method.after_load(state)
    return list(state.layers.values())


def load_adapter_weights(model: nn.Module, directory: str | Path) -> list[nn.Module]:
    """Copy a saved adapter's tensors into the *same* adapter already applied to ``model`` (checkpoint reload).

    The saved method, target modules and base fingerprint must match the applied adapter's; the method's
    ``before_reload``/``after_reload`` hooks run around the copy.
    """
    state = require_state(model)
    directory = Path(directory)
    config = read_adapter_config(directory)
    tensors = read_adapter_tensors(directory)
    path = directory / ADAPTER_WEIGHTS
    if config["method"] != state.method or config["target_modules"] != state.target_modules:
        raise AdapterError(
            f"adapter file {path} is mismatched: it holds a '{config['method']}' adapter on "
            f"{len(config['target_modules'])} modules, the model carries a '{state.method}' adapter on "
            f"{len(state.target_modules)}"
        )
    if config["base_fingerprint"] != state.base_fingerprint:
        raise AdapterError(_base_mismatch_message(path, config))
    method = get_method(state.method)
    previous = method.before_reload(state)
    _copy_tensors(state, tensors, path)
    method.after_reload(state, previous)
    return list(state.layers.values())


def _copy_tensors(state: AdapterState, tensors: dict[str, torch.Tensor], path: Path) -> None:
    expected = _tensors_for_saving(state)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        what = f"missing tensor {missing[0]}" if missing else f"unexpected tensor {unexpected[0]}"
        raise AdapterError(
            f"adapter file {path} is mismatched ({what}; {len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for key, target in expected.items():
        if tuple(tensors[key].shape) != tuple(target.shape):
            raise AdapterError(
                f"adapter file {path} is mismatched: tensor {key} has shape {tuple(tensors[key].shape)}, "
                f"expected {tuple(target.shape)}"
            )
    with torch.no_grad():
        for key, target in expected.items():
            target.copy_(tensors[key].to(target.device, target.dtype))


def _base_mismatch_message(path: Path, config: dict) -> str:
    base = config.get("base_model") or {}
    name = base.get("name") or "another model"
    return (
        f"adapter file {path} is mismatched: it was trained on base model {name} and this model's weights "
        "of the target modules differ"
    )


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted, so equal tensors give equal bytes.

    safetensors serialises the header from hash maps, whose order changes from process to process; the tensor
    entries carry their data offsets, so reordering the header (same length, compact JSON) changes nothing a
    reader sees.
    """
    import json
    import struct

    (length,) = struct.unpack("<Q", data[:8])
    raw = data[8:8 + length]
    header = json.loads(raw)
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if len(canonical) > length:  # never for safetensors' own compact header; keep the file as it is otherwise
        return data
    return data[:8] + canonical + b" " * (length - len(canonical)) + data[8 + length:]
