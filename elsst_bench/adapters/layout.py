"""What an adapter directory holds, and reading its config (torch-free).

``adapter.safetensors`` holds only adapter tensors (plus the frozen buffers a method needs to be rebuilt:
EigenLoRAx bases, PiCa projections, PiSSA's initial factors, VeRA's random projections), keyed
``<module name>.<tensor>``; a tensor shared by several layers (PiCa's M, VeRA's projections) is stored once,
under the first layer that holds it. ``adapter_config.json`` names the method, its resolved options, the rank,
the exact target module names, the base model identity, a fingerprint of the base weights of the target
modules (:func:`.targets.base_fingerprint`; this, not the file hash, is what ``load_adapter`` checks, so the
same weights saved in another file format still match), the trainable-parameter count and method-specific
fields. Writing and loading the tensors is :mod:`.io`'s job; this module only knows the layout, so a caller
(the CLI, a sweep, EigenLoRAx's source check) can inspect an adapter directory without importing torch.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import AdapterError
from ..jsontypes import is_integer, read_json

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
CONFIG_FORMAT = 1

#: fields every adapter config has, with their JSON types
REQUIRED_FIELDS = {"method": str, "rank": int, "options": dict, "target_modules": list, "base_fingerprint": str}


def read_adapter_config(directory: str | Path) -> dict:
    """The parsed ``adapter_config.json`` of an adapter directory (AdapterError when missing or corrupt)."""
    path = Path(directory) / ADAPTER_CONFIG
    if not path.is_file():
        raise AdapterError(f"{directory} is not an adapter directory (no {ADAPTER_CONFIG})")
    config = read_json(path, error=AdapterError)
    for key, kind in REQUIRED_FIELDS.items():
        value = config.get(key) if isinstance(config, dict) else None
        if not (is_integer(value) if kind is int else isinstance(value, kind)):  # `true` is not a rank
            raise AdapterError(f"adapter config {path} is corrupt (field {key!r} missing or of the wrong type)")
    return config
