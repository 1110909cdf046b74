"""One run over several processes: DDP as ``torchrun`` or ``accelerate launch`` starts it.

The launcher starts N copies of ``elsst-bench train`` and sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``;
:func:`init` joins them into one process group through accelerate's ``PartialState`` (the object the Trainer
itself uses, so the Trainer finds the group ready): gloo on CPU, NCCL on CUDA, each process on the device of its
local rank. From there DDP is the Trainer's own (gradients averaged, batches sharded, checkpoints and resumption).
What this package adds is what the Trainer cannot know:

- ``--batch-size`` stays the *global* batch B: each process takes B / N rows per step, and the losses gather the
  in-batch candidates of every process (``gather_across_devices``), so each query is contrasted with all B
  documents, as in one process. What still differs from one process with batch B is the batch composition: the
  no-duplicates sampler draws N batches of B / N, each free of duplicates within itself only, and the float sums
  run in another order;
- only rank 0 writes the run directory (``config.json``, logs, the adapter, metrics); the others train and help
  encode the dev and test queries (sentence-transformers' ``distributed_evaluation``);
- the run records ``distributed`` (world size, backend, per-process batch) in ``config.json``. It is not an option:
  a run may be resumed under another world size, and a DDP run is on the board next to single-process ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import BenchError


@dataclass(frozen=True)
class World:
    """The processes of one run (``size`` 1: not distributed)."""

    size: int = 1
    rank: int = 0
    backend: str | None = None
    device: str | None = None  # this process's device under DDP (cuda:LOCAL_RANK, or cpu)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()

    def per_process_batch(self, batch_size: int) -> int:
        """Rows per process and step for the global ``batch_size``; refused unless N divides it."""
        if batch_size % self.size:
            raise BenchError(f"--batch-size {batch_size} is the global batch and must divide evenly among "
                             f"{self.size} processes")
        if batch_size // self.size < 2:
            raise BenchError(f"--batch-size {batch_size} over {self.size} processes leaves fewer than two rows per "
                             "process; in-batch negatives need two")
        return batch_size // self.size

    def record(self, batch_size: int) -> dict:
        """What ``config.json`` records of the world (``distributed``)."""
        return {"world_size": self.size, "backend": self.backend,
                "per_process_batch_size": self.per_process_batch(batch_size)}


def launched_size() -> int:
    """The world size the launcher asked for (``WORLD_SIZE``; 1 when started as a plain command)."""
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        size = int(raw)
    except ValueError:
        raise BenchError(f"WORLD_SIZE={raw!r} is not a number of processes") from None
    if size < 1:
        raise BenchError(f"WORLD_SIZE={raw!r} is not a number of processes")
    return size


def init(device: str) -> World:
    """Join the launcher's process group (nothing when not launched as several processes)."""
    if launched_size() == 1:
        return World()
    import torch.distributed as dist
    from accelerate import PartialState

    state = PartialState(cpu=device == "cpu")
    if not dist.is_initialized():  # e.g. CUDA asked for in the command, the launcher's processes without a GPU
        raise BenchError(f"WORLD_SIZE={state.num_processes} but no process group could be set up on {device}")
    own = "cpu" if device == "cpu" else str(state.device)
    return World(size=state.num_processes, rank=state.process_index, backend=dist.get_backend(), device=own)


def is_main_process() -> bool:
    """Whether this process is rank 0 of its launch (or not launched as several): the one that reports."""
    return os.environ.get("RANK", "0") == "0"
