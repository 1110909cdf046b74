"""``elsst-bench adapters``: every method, where it comes from, its parameter formula, and its count at a budget."""

from __future__ import annotations

from typing import Optional

import typer

from .root import app
from .common import print_json, print_table


def budget_counts(model: str | None, budget: str, names: list[str]) -> tuple[str, dict[str, str]]:
    """``(model name, {method: its trainable parameters at budget on model's linears})``, counted on the model's
    structure (built on the ``meta`` device: nothing is read) as ``train --budget`` would settle it: a range where
    data the listing does not have decide (GeLoRA's texts)."""
    from ..adapters import method_info, parse_budget, planned_counts
    from ..errors import AdapterError
    from ..leaderboard.params import Bases
    from ..models import model_identity

    parse_budget(budget)  # one line for a malformed budget, before the model is built
    identity = model_identity(model)
    structure = Bases().structure(identity)
    counts = {}
    for name in names:
        info = method_info(name)
        if not info.is_adapter:
            counts[name] = f"{sum(p.numel() for p in structure.parameters()) if info.trains else 0:,}"
            continue
        try:
            found = planned_counts(structure, name, budget=budget)
        except AdapterError as err:
            counts[name] = f"– ({err})"
            continue
        counts[name] = f"{found[0]:,}" if len(found) == 1 else f"{min(found):,}–{max(found):,}"
    return identity["name"], counts


@app.command("adapters")
def adapters(
    name: Optional[str] = typer.Argument(None, help="Show one adapter only."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Count on this base model's linears "
                                        "(default: multilingual-e5-small, or $ELSST_BENCH_MODEL)."),
    budget: str = typer.Option("lora-r8", help="The budget to count at: lora-rN."),
    counts: bool = typer.Option(True, "--counts/--no-counts", help="Count every method at the budget (builds "
                                "the model's structure, ~10 s); --no-counts lists the formulas only."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every adapter (native or from PEFT) and baseline: its source, trainable-parameter formula per module,
    size knob, and its trainable parameters when its knob is solved to the budget on the base model."""
    from ..adapters import describe_adapters, get_method

    rows = describe_adapters()
    if name is not None:
        if name not in {row["name"] for row in rows}:
            get_method(name)  # raises AdapterError: unknown adapter ...; known: ...
        rows = [row for row in rows if row["name"] == name]
    column = None
    if counts:
        base, found = budget_counts(model, budget, [row["name"] for row in rows])
        column = f"params at {budget}"
        for row in rows:
            row["budget_params"] = found[row["name"]]
    if as_json:
        print_json(rows)
        return
    headers = ["adapter", "source", "trainable params per module", "size knob"]
    print_table(headers + ([column] if column else []) + ["what"],
                [[r["name"], r["source"], r["params"], r["knob"], *([r["budget_params"]] if column else []),
                  r["summary"]] for r in rows])
    if column:
        print(f"\n{column}: the trainable parameters with the size knob solved to {budget}'s count on the linears "
              f"of {base} (train --budget {budget})")
