"""No import loop anywhere in the package (issue 30: adapters -> runs -> models -> adapters was one, and the
command modules importing the package that imports them another), function-level imports included."""

from __future__ import annotations

from import_graph import graph, loops, modules, package_imports


def test_no_module_of_the_package_imports_itself_back():
    assert loops(graph()) == []


def test_the_loop_finder_finds_every_loop_and_only_loops():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"a"}}
    assert loops(edges) == [["a", "b", "c"], ["e", "f"]]
    assert loops({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_function_level_imports_and_leaves_type_checking_out():
    known = modules()
    diagnostics = package_imports(known["elsst_bench.diagnostics"], known)
    assert "elsst_bench.models" in diagnostics  # imported inside run_spectra only
    registry = package_imports(known["elsst_bench.adapters.registry"], known)
    assert "elsst_bench.adapters.method" not in registry  # only under `if TYPE_CHECKING:`
    assert "elsst_bench.cli.root" in package_imports(known["elsst_bench.cli.prepare"], known)
    assert "elsst_bench.cli" not in package_imports(known["elsst_bench.cli.prepare"], known)
