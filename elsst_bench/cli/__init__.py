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
from . import serve  # noqa: E402,F401


def main() -> None:
    """Console-script entry point: bad input (a :class:`BenchError` or a usage error such as ``--lr abc``) -> one
    line on stderr, exit status 2; an interrupt -> one line, exit status 130."""
    from typer import Abort
    from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer 0.29 vendors click (pinned)

    from ..errors import BenchError

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError:  # the help is already printed
        sys.exit(2)
    except ClickException as err:
        print(f"elsst-bench: error: {_one_line(err.format_message())}", file=sys.stderr)
        sys.exit(err.exit_code)
    except BenchError as err:
        print(f"elsst-bench: error: {err}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, Abort):
        code = 130
    if code == 130:  # typer turns Ctrl-C into exit status 130
        print("elsst-bench: interrupted", file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(message: str) -> str:
    return " ".join(message.split())
