"""``--device``: one rule for every command (auto, cpu, cuda, cuda:N, mps; anything else refused in one line)."""

from __future__ import annotations

import pytest

from elsst_bench.devices import check_device, resolve_device
from elsst_bench.errors import BenchError


@pytest.fixture
def machine(monkeypatch):
    """Pretend the machine has ``cuda`` CUDA devices and MPS or not."""
    import torch

    def set_(cuda: int = 0, mps: bool = False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    return set_


@pytest.mark.parametrize("cuda, mps, asked, expected", [
    (0, False, "auto", "cpu"),
    (0, False, None, "cpu"),
    (1, False, "auto", "cuda"),
    (0, False, "cpu", "cpu"),
    (2, False, "cpu", "cpu"),
    (1, False, "cuda", "cuda"),
    (1, False, "cuda:0", "cuda:0"),
    (2, False, "cuda:1", "cuda:1"),
    (0, True, "mps", "mps"),
    (0, True, "auto", "cpu"),  # auto never picks mps
])
def test_resolves(machine, cuda, mps, asked, expected):
    machine(cuda, mps)
    assert resolve_device(asked) == expected


@pytest.mark.parametrize("cuda, mps, asked, fragment", [
    (0, False, "cuda", "--device cuda was asked for but no CUDA device is available"),
    (0, False, "cuda:0", "--device cuda:0 was asked for but no CUDA device is available"),
    (1, False, "cuda:1", "--device cuda:1 was asked for but this machine has 1 CUDA device(s) (cuda:0 to cuda:0)"),
    (0, False, "mps", "--device mps was asked for but no MPS device is available"),
    (1, True, "tpu", "unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"),
    (1, True, "cuda:x", "unknown device 'cuda:x'"),
    (1, True, "CPU", "unknown device 'CPU'"),
    (1, True, "", "unknown device ''"),
])
def test_refuses_with_one_line(machine, cuda, mps, asked, fragment):
    machine(cuda, mps)
    with pytest.raises(BenchError) as err:
        resolve_device(asked)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_the_spelling_check_needs_no_torch():
    assert [check_device(d) for d in (None, "auto", "cpu", "cuda", "cuda:3", "mps")] == [
        "auto", "auto", "cpu", "cuda", "cuda:3", "mps"]
    with pytest.raises(BenchError, match="unknown device 'gpu'"):
        check_device("gpu")
