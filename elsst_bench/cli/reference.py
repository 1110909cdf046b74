"""The command-line reference, ``docs/cli.md``: every command's own ``--help``, generated from the app, so the page
cannot drift from the commands (a test compares the committed page with :func:`render`).

    python -m elsst_bench.cli.reference docs/cli.md     # after changing a command's options or help

Help is rendered 80 columns wide (click's own maximum), whatever the terminal, so the page is the same everywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

WIDTH = "80"

HEADER = """# Command-line reference

Every command's `--help`, generated from the commands themselves by `python -m elsst_bench.cli.reference docs/cli.md`
(do not edit by hand; a test checks this page against the commands). The manual pages say what the options are for:
[prepare](prepare.md), [training](training.md), [evaluation](evaluation.md), [adapters](adapters.md),
[export](export.md), [leaderboard](leaderboard.md), [serve](serve.md), [Track 1](track1.md).
"""


def commands() -> list[tuple[str, ...]]:
    """Every visible command as its path of names (``("track1", "check")``), in the order ``--help`` lists them;
    hidden aliases are left out."""
    import typer.main

    from . import app

    def walk(group, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        out = []
        for name, command in group.commands.items():
            if command.hidden:
                continue
            path = (*prefix, name)
            out.append(path)
            if hasattr(command, "commands"):
                out.extend(walk(command, path))
        return out

    return walk(typer.main.get_command(app), ())


def help_text(path: tuple[str, ...]) -> str:
    """``elsst-bench <path> --help`` as the console script prints it."""
    from typer.testing import CliRunner

    from . import app

    result = CliRunner().invoke(app, [*path, "--help"], prog_name="elsst-bench", env={"COLUMNS": WIDTH})
    if result.exit_code != 0:  # pragma: no cover - a broken command definition
        raise RuntimeError(f"elsst-bench {' '.join(path)} --help failed: {result.output}")
    return result.output.rstrip() + "\n"


def render() -> str:
    sections = [HEADER, "## elsst-bench\n", "```text\n" + help_text(()) + "```\n"]
    for path in commands():
        sections += [f"## elsst-bench {' '.join(path)}\n", "```text\n" + help_text(path) + "```\n"]
    return "\n".join(sections)


def main(argv: list[str]) -> int:
    from .. import atomic

    if len(argv) != 1:
        print("usage: python -m elsst_bench.cli.reference PAGE.md", file=sys.stderr)
        return 2
    atomic.write_text(Path(argv[0]), render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
