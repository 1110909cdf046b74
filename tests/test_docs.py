"""The manual: the command-line reference is the commands' own help, and the site builds with no broken link."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_the_command_line_reference_is_the_commands_own_help():
    from elsst_bench.cli import reference

    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert page == reference.render(), "docs/cli.md is stale: python -m elsst_bench.cli.reference docs/cli.md"
    for path in reference.commands():  # every visible command has its section, with its own options
        assert f"## elsst-bench {' '.join(path)}\n" in page
    assert "--adapter" in page.split("## elsst-bench train\n")[1].split("## ")[0]


def test_the_reference_lists_subcommands_and_leaves_out_hidden_aliases():
    from elsst_bench.cli import reference

    paths = reference.commands()
    assert ("track1", "check") in paths and ("train",) in paths and ("serve",) in paths
    import typer.main

    from elsst_bench.cli import app

    hidden = [name for name, cmd in typer.main.get_command(app).commands.items() if cmd.hidden]
    assert not any(path[0] in hidden for path in paths)


def test_the_manual_builds_strictly(tmp_path):
    """mkdocs comes with the test extra; ``--strict`` turns a link to a missing page into a failure."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for page in ("index.html", "cli.html", "methods.html", "serve.html"):
        assert (tmp_path / page).is_file(), page
