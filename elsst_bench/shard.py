"""Sharding a sweep: a deterministic partition of its runs, so N processes run one grid together.

``elsst-bench sweep CONFIG --shard K/N`` runs shard K of N (1-based): N GPUs of one machine (one process per
``CUDA_VISIBLE_DEVICES``), N machines sharing the run and leaderboard directories, or a SLURM job array, where
``--shard`` defaults from ``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_MIN`` and ``SLURM_ARRAY_TASK_COUNT``.

- **Runs that need other runs stay together.** A block with ``lr_from`` needs its tuning runs' dev scores, and
  EigenLoRAx needs its ``sources`` (run directories of the same sweep). The runs are grouped into connected
  components over these edges; a shard holds whole components, so it never waits for another shard.
- **The partition depends only on the plan.** Components are dealt largest first (ties: file order), each to the
  shard with the fewest runs so far (ties: the lower shard); inside a shard, runs keep their file order. Every
  shard computes the same partition, and together they cover every run exactly once.
- **Concurrency is the leaderboard's.** Each submission takes the board's lock; each shard re-renders the board
  (under the lock) when it ends, so the last one to end renders every entry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .errors import BenchError


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"K/N"`` with ``1 <= K <= N``."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise BenchError(f"--shard expects K/N (for example 1/4), got {text!r}") from None
    if not 1 <= k <= n:
        raise BenchError(f"--shard {text}: K must be between 1 and N")
    return Shard(k, n)


def shard_from_environment(environ=os.environ) -> Shard | None:
    """The shard of a SLURM array task (``--array=0-3`` or ``1-4``: task ids counted from the array's first),
    or None outside one."""
    task, count = environ.get("SLURM_ARRAY_TASK_ID"), environ.get("SLURM_ARRAY_TASK_COUNT")
    if task is None or count is None:
        return None
    try:
        k = int(task) - int(environ.get("SLURM_ARRAY_TASK_MIN", "0")) + 1
        shard = Shard(k, int(count))
    except ValueError:
        raise BenchError(f"SLURM_ARRAY_TASK_ID={task!r} / SLURM_ARRAY_TASK_COUNT={count!r} are not numbers") from None
    if not 1 <= shard.index <= shard.count:
        raise BenchError(f"SLURM array task {task} is outside an array of {count} tasks; pass --shard K/N")
    return shard


def _depends_on(plan, run) -> list:
    """The runs of ``plan`` that ``run`` needs: its tuning runs (``lr_from``) and its sources (EigenLoRAx)."""
    from .sweep import tuning_runs

    needed = list(tuning_runs(plan, run))
    sources = {os.path.normpath(s) for s in run.config.sources}
    needed += [other for other in plan.runs if os.path.normpath(str(other.run_dir)) in sources]
    return needed


def components(plan) -> list[list[int]]:
    """The plan's runs (indices, file order) grouped by dependency, in order of their first run."""
    parent = list(range(len(plan.runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    position = {run.id: i for i, run in enumerate(plan.runs)}
    for i, run in enumerate(plan.runs):
        for other in _depends_on(plan, run):
            a, b = root(i), root(position[other.id])
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(plan.runs)):
        groups.setdefault(root(i), []).append(i)
    return [groups[r] for r in sorted(groups)]


def partition(plan, count: int) -> list[list[int]]:
    """Run indices of each of ``count`` shards (see the module docstring for the rule)."""
    shards: list[list[int]] = [[] for _ in range(count)]
    for group in sorted(components(plan), key=lambda g: (-len(g), g[0])):
        target = min(range(count), key=lambda k: (len(shards[k]), k))
        shards[target].extend(group)
    return [sorted(s) for s in shards]


def select(plan, shard: Shard):
    """The plan restricted to ``shard``'s runs (a :class:`~elsst_bench.sweep.Plan` of its own)."""
    keep = partition(plan, shard.count)[shard.index - 1]
    return replace(plan, runs=tuple(plan.runs[i] for i in keep))


__all__ = ["Shard", "components", "parse_shard", "partition", "select", "shard_from_environment"]
