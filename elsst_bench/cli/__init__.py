"""The ``elsst-bench`` command: a thin typer app. Each layer's commands live in a module of this package."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(
    name="elsst-bench",
    help="Benchmark multilingual concept retrieval over ELSST and parameter-efficient adapters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



@app.callback()
def _root() -> None:
    """Benchmark multilingual concept retrieval over ELSST and parameter-efficient adapters."""


# Command modules register themselves on ``app`` when imported (one module per layer).
from . import prepare  # noqa: E402,F401
from . import adapters  # noqa: E402,F401
from . import evaluate  # noqa: E402,F401
from . import train  # noqa: E402,F401
from . import leaderboard  # noqa: E402,F401
from . import sweep  # noqa: E402,F401


def main() -> None:
    """Console-script entry point: bad input -> one line on stderr, exit status 2."""
    from ..errors import BenchError

    try:
        app()
    except BenchError as err:
        print(f"elsst-bench: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("elsst-bench: interrupted", file=sys.stderr)
        sys.exit(130)
