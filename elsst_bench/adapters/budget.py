"""Parameter budgets: ``budget="lora-r8"`` means "as many trainable parameters as LoRA r=8 on the same modules".

Every method enumerates the values of its size knob with their exact (analytic) parameter counts
(:meth:`~.method.Method.budget_candidates`) and the closest one wins (ties: the one under the budget). Where the
counts are monotone in that order (``Method.budget_monotone``), the search stops at the first count past the
budget or farther from it than the one before: every later count is at least as far on that same side, so it
cannot win. For PEFT's tuners, whose counts come from building their layers, that is a few builds, not hundreds.
Within ±5 % is the goal; when a knob cannot get there the closest value is taken and the config records
``within_tolerance: false`` with a note (the solver never fails).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

from ..errors import AdapterError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .method import Method

BUDGET_TOLERANCE = 0.05


def parse_budget(budget: str) -> int:
    """``"lora-r8"`` -> 8."""
    match = re.fullmatch(r"lora-r(\d+)", str(budget).strip())
    if not match or int(match.group(1)) <= 0:
        raise AdapterError(f"budget {budget!r} is not of the form lora-rN (e.g. lora-r8)")
    return int(match.group(1))


def lora_count(shapes: dict[str, tuple[int, int]], rank: int) -> int:
    return sum(rank * (d_out + d_in) for d_out, d_in in shapes.values())


def budget_params(model: "nn.Module", budget: str = "lora-r8", target_modules: str | Iterable[str] | None = None) -> int:
    """Trainable parameters of LoRA rank N (``budget="lora-rN"``) on ``target_modules`` of ``model``."""
    from .method import get_state
    from .targets import find_target_modules, shapes_of

    rank = parse_budget(budget)
    state = get_state(model)
    if state is not None and target_modules is None:
        shapes = {n: (l.out_features, l.in_features) for n, l in state.layers.items()}
    else:
        shapes = shapes_of(find_target_modules(model, target_modules))
    return lora_count(shapes, rank)


def solve_budget(
    method: "Method", shapes: dict[str, tuple[int, int]], budget: str, rank: int, options: dict,
    exhaustive: bool = False,
) -> tuple[int, dict, dict]:
    """Pick the method's knob whose exact parameter count is closest to the budget; returns (rank, options, info).
    ``exhaustive``: try every value of the knob even where the counts are monotone (what the tests compare to)."""
    target = lora_count(shapes, parse_budget(budget))
    best = previous = None
    for count, r, updates in method.budget_candidates(shapes, rank, options):
        key = (abs(count - target), count > target)  # ties: prefer staying under the budget
        if best is None or key < best[0]:
            best = (key, count, r, updates)
        if exhaustive or not method.budget_monotone:
            continue
        if key[0] == 0 or (previous is not None and (key[1] != previous[1] or key[0] > previous[0])):
            break  # on the budget, past it, or moving away from it: every later count is as far or farther
        previous = key
    if best is None:
        raise AdapterError(f"adapter '{method.name}' has no setting of its {method.knob} that fits these modules")
    _, count, r, updates = best
    ratio = count / target
    info = {
        "spec": budget,
        "target_params": target,
        "planned_params": count,
        "ratio": round(ratio, 6),
        "tolerance": BUDGET_TOLERANCE,
        "within_tolerance": abs(ratio - 1) <= BUDGET_TOLERANCE,
        "knob": method.knob,
        "rank": r,
    }
    info.update({f"knob_{k}": v for k, v in updates.items() if not isinstance(v, dict)})
    if not info["within_tolerance"]:
        side = "below" if count < target else "above"
        info["note"] = (
            f"{method.name}'s {method.knob} cannot reach the budget on these modules; the closest setting is "
            f"{100 * abs(ratio - 1):.1f}% {side} it"
        )
    new_options = dict(options)
    new_options.update(updates)
    return r, new_options, info


def record_achieved(info: dict, achieved: int) -> dict:
    """Update a solver ``info`` with the count the applied adapter really has (what the config records)."""
    ratio = achieved / info["target_params"]
    info.update(achieved_params=achieved, ratio=round(ratio, 6), within_tolerance=abs(ratio - 1) <= BUDGET_TOLERANCE)
    if info["within_tolerance"]:
        info.pop("note", None)
    elif "note" not in info:
        side = "below" if ratio < 1 else "above"
        info["note"] = f"the achieved count is {100 * abs(ratio - 1):.1f}% {side} the budget"
    return info
