"""``elsst-bench adapters``: the registered adapters, their parameter formula and where they come from."""

from __future__ import annotations

from typing import Optional

import typer

from . import app
from .common import print_json, print_table


@app.command("adapters")
def adapters(
    name: Optional[str] = typer.Argument(None, help="Show one adapter only."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every adapter (native or from PEFT) and baseline with its trainable-parameter formula per module."""
    from ..adapters import describe_adapters, get_method

    rows = describe_adapters()
    if name is not None:
        if name not in {row["name"] for row in rows}:
            get_method(name)  # raises AdapterError: unknown adapter ...; known: ...
        rows = [row for row in rows if row["name"] == name]
    if as_json:
        print_json(rows)
        return
    print_table(["adapter", "source", "trainable params per module", "size knob", "what"],
                [[r["name"], r["source"], r["params"], r["knob"], r["summary"]] for r in rows])
