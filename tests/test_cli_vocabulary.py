"""One vocabulary of options (``elsst_bench.cli.common.VOCABULARY``) across every command: an idea has one spelling,
and a spelling means one idea (``--out`` is what the command writes, never the parent of a run)."""

from __future__ import annotations

import pytest

from elsst_bench.cli.common import VOCABULARY


def _options():
    """``(command path, click option)`` for every visible option of every visible command."""
    import typer.main

    from elsst_bench.cli import app, reference

    root = typer.main.get_command(app)
    for path in reference.commands():
        command = root
        for name in path:
            command = command.commands[name]
        for param in command.params:
            if getattr(param, "opts", None) and not getattr(param, "hidden", False) and param.opts[0].startswith("-"):
                yield " ".join(path), param


OPTIONS = list(_options())
SPELLING = {spelling: idea for idea, spellings in VOCABULARY.items() for spelling in spellings}


def test_the_vocabulary_reaches_every_command():
    ideas = {param.name for _, param in OPTIONS}
    assert set(VOCABULARY) <= ideas, set(VOCABULARY) - ideas  # every idea is used somewhere
    assert len(OPTIONS) > 100


@pytest.mark.parametrize("idea", sorted(VOCABULARY))
def test_an_idea_has_its_spellings_in_every_command(idea):
    wrong = {command: param.opts for command, param in OPTIONS
             if param.name == idea and not set(VOCABULARY[idea]) <= set(param.opts)}
    assert not wrong, f"{idea} must be spelled {VOCABULARY[idea]}: {wrong}"


def test_a_spelling_means_one_idea_in_every_command():
    wrong = {(command, spelling): param.name for command, param in OPTIONS for spelling in param.opts
             if spelling in SPELLING and SPELLING[spelling] != param.name}
    assert not wrong, f"a vocabulary spelling used for another option: {wrong}"


def test_the_old_spelling_of_runs_dir_still_works_and_both_at_once_are_refused(tmp_path, cli):
    from conftest import assert_one_line_error

    assert_one_line_error(cli("train", "--adapter", "lora", "--out", tmp_path / "a", "--runs-dir", tmp_path / "b"),
                          "give --runs-dir only")


def test_the_old_spelling_names_the_same_directory():
    from pathlib import Path

    from elsst_bench.cli.common import runs_dir_from

    assert runs_dir_from(Path("runs"), Path("elsewhere")) == Path("elsewhere")
    assert runs_dir_from(Path("mine"), None) == Path("mine")


@pytest.mark.parametrize("args, needle", [
    (("leaderboard", "--task", "broader", "--tasks", "synonym"), "give --tasks only (--task is its old spelling)"),
    (("search", "x", "--lang", "de", "--languages", "fr"), "give --languages only (--lang is its old spelling)")])
def test_old_spellings_are_hidden_and_not_given_twice(cli, args, needle):
    from conftest import assert_one_line_error

    assert_one_line_error(cli(*args), needle)
    help_text = cli(args[0], "--help").stdout
    assert f"{args[1]} " not in help_text and f"{args[1]}," not in help_text  # hidden
