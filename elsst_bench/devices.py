"""Which torch device a command runs on: the one rule for ``--device`` (train, evaluate, search, sweep).

- ``auto`` (or ``None``): ``cuda`` when a CUDA device is available, else ``cpu``;
- ``cpu``; ``cuda`` or ``cuda:N`` (N below the number of visible CUDA devices); ``mps`` (Apple silicon);
- anything else, or a device this machine does not have, is refused with one line (:class:`BenchError`).

:func:`check_device` checks the spelling only and never imports torch, so a command can refuse a typo before
anything slow; :func:`resolve_device` also checks that the device exists (importing torch unless it is ``cpu``).
"""

from __future__ import annotations

import re

from .errors import BenchError

AUTO = "auto"
_FORM = re.compile(r"^(?:cpu|mps|cuda(?::(\d+))?)$")
KNOWN = "auto, cpu, cuda, cuda:N or mps"  # what --device takes, in words (every command's help says this)


def check_device(device: str | None) -> str:
    """``device`` if it is spelled like a device this rule knows (``auto`` for ``None``), else a BenchError."""
    if device is None or device == AUTO:
        return AUTO
    if not isinstance(device, str) or not _FORM.match(device):
        raise BenchError(f"unknown device {device!r}; use {KNOWN}")
    return device


def resolve_device(device: str | None = AUTO) -> str:
    """The concrete device for ``device`` (see the module docstring); one-line BenchError if unusable."""
    device = check_device(device)
    if device == "cpu":
        return device
    import torch

    if device == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise BenchError("--device mps was asked for but no MPS device is available")
        return device
    if not torch.cuda.is_available():
        raise BenchError(f"--device {device} was asked for but no CUDA device is available")
    index = _FORM.match(device).group(1)
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise BenchError(f"--device {device} was asked for but this machine has {count} CUDA device(s) "
                         f"(cuda:0 to cuda:{count - 1})")
    return device
