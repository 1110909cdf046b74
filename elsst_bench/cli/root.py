"""The root of the ``elsst-bench`` command: the typer app every command module registers its commands on. A module
of its own, so that the command modules import it and not the package that imports them (no import loop)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="elsst-bench",
    help="Benchmark multilingual concept retrieval over ELSST and parameter-efficient adapters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[defaults] and [[runs]] blocks" must print as written
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Benchmark multilingual concept retrieval over ELSST and parameter-efficient adapters."""
