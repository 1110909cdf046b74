"""Run directories: the one reader of config.json, and the package versions every record carries."""

from __future__ import annotations

import json

import pytest

from elsst_bench import runs
from elsst_bench.errors import BenchError, DataError


def test_read_config_returns_the_object(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"adapter": "lora", "status": "complete"}))
    assert runs.read_config(tmp_path) == {"adapter": "lora", "status": "complete"}
    assert runs.is_complete(tmp_path)


@pytest.mark.parametrize("content, fragment", [
    (None, "is not a run directory: it has no config.json; do this instead"),
    ("{not json", "config.json is not valid JSON"),
    (b"\xff\xfe", "config.json is not valid JSON"),
    ("[1, 2]", "config.json is not a run configuration (a JSON object)"),
    ('"complete"', "config.json is not a run configuration (a JSON object)"),
])
def test_read_config_refuses_with_one_line(tmp_path, content, fragment):
    if isinstance(content, bytes):
        (tmp_path / "config.json").write_bytes(content)
    elif content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(DataError) as err:
        runs.read_config(tmp_path, hint="do this instead")
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert not runs.is_complete(tmp_path)


def test_read_config_of_a_missing_directory_or_a_file(tmp_path):
    with pytest.raises(BenchError, match=f"run directory {tmp_path / 'nope'} does not exist"):
        runs.read_config(tmp_path / "nope")
    (tmp_path / "file").write_text("{}")
    with pytest.raises(BenchError, match="is not a directory"):
        runs.read_config(tmp_path / "file")


def test_versions_name_every_package_that_determines_a_result():
    found = runs.versions()
    assert set(found) == {"python", "elsst-bench", "torch", "transformers", "sentence-transformers", "peft",
                          "faiss", "ranx", "numpy"}
    assert all(isinstance(v, str) and v for v in found.values())  # all installed here


def test_runs_record_paths_inside_the_checkout_relatively_and_the_program_by_name(tmp_path, monkeypatch):
    from elsst_bench.runs import recorded_command, recorded_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "src").mkdir(parents=True)
    assert recorded_path(tmp_path / "results" / "src") == "results/src"
    assert recorded_path("results/src") == "results/src"
    outside = tmp_path.parent / "elsewhere"
    assert recorded_path(outside) == str(outside.resolve())  # outside the working directory: where it is
    assert recorded_command(["/opt/venv/bin/elsst-bench", "sweep", "plan.toml"]) == "elsst-bench sweep plan.toml"
    assert recorded_command([]) == ""
