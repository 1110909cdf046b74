"""The registry and the typed configs: what every method is, its options and default learning rate, the inputs
training hands it — all without importing torch."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from import_graph import graph

from elsst_bench import adapters
from elsst_bench.adapters import (
    EigenLoRAxConfig,
    GeLoRAConfig,
    LoRAConfig,
    MethodConfig,
    available_adapters,
    available_methods,
    describe_adapters,
    method_info,
)
from elsst_bench.errors import AdapterError, BenchError

PACKAGE = Path(adapters.__file__).parent
#: the published order (``elsst-bench adapters`` and every table list the methods in it); new methods go after
PUBLISHED = ["lora", "orthogeolora", "gelora", "smoa", "eigenlorax", "pica", "dora", "pissa", "vera", "hra",
             "oft", "boft", "psoft", "osf", "delora", "gralora", "randlora", "miss", "c3a", "road", "fourierft", "loha",
             "lokr", "adalora", "ia3"]


def test_torch_free_api_does_not_import_torch(tmp_path):
    script = f"""
import json, sys
import elsst_bench.adapters as a
from elsst_bench.errors import AdapterError
assert a.available_adapters() and a.available_methods() and a.describe_adapters()
for name in a.available_methods():
    info = a.method_info(name)
    info.default_lr, info.trains, info.is_adapter, info.source, info.formula, info.knob, info.summary
    config = info.config_class()
    config.options(), info.config_class.defaults()
    info.training_inputs(["a", "b"], [{str(tmp_path)!r}, {str(tmp_path)!r}], options={{"texts": []}}) \\
        if name == "eigenlorax" else info.training_inputs(["a", "b"], [])
a.LoRAConfig(alpha=4).resolve(8, {{"m.0.q": (16, 16)}})
try:
    a.SMoAConfig(k=0)
except AdapterError:
    pass
else:
    raise SystemExit("SMoAConfig(k=0) was accepted")
a.parse_budget("lora-r8")
a.read_adapter_config({str(tmp_path)!r})
heavy = [m for m in ("torch", "transformers", "peft", "sentence_transformers") if m in sys.modules]
print(json.dumps(heavy))
"""
    (tmp_path / "adapter_config.json").write_text(json.dumps(
        {"method": "lora", "rank": 8, "options": {}, "target_modules": [], "base_fingerprint": "0"}))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_adapter_library_does_not_know_the_packaged_model():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
                assert not (node.level == 2 and "models" in names), path.name
                assert node.module != "elsst_bench.models", path.name


def test_the_adapter_library_imports_nothing_above_itself_even_transitively():
    """Issue 30's loop (adapters -> runs -> models -> adapters) cannot come back: everything the adapter package
    reaches, following every import of every module it reaches (function-level ones included), is the package
    itself or one of the base modules below it."""
    base = {"elsst_bench", "elsst_bench.errors", "elsst_bench.jsontypes", "elsst_bench.atomic", "elsst_bench.lazy",
            "elsst_bench.outputs", "elsst_bench.paths"}
    edges = graph()
    todo = [name for name in edges if name.startswith("elsst_bench.adapters")]
    seen = set(todo)
    while todo:
        name = todo.pop()
        for target in edges[name] - seen:
            assert target.startswith("elsst_bench.adapters") or target in base, f"{name} reaches {target}"
            seen.add(target)
            todo.append(target)


def test_every_module_has_one_idea_and_stays_small():
    assert not (PACKAGE / "base.py").exists()
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 400, path.name


def test_methods_in_published_order_then_baselines():
    assert available_adapters()[: len(PUBLISHED)] == PUBLISHED
    assert available_methods() == [*available_adapters(), "none", "full"]
    rows = describe_adapters()
    assert [row["name"] for row in rows] == available_methods()
    assert all(list(row) == ["name", "source", "params", "knob", "summary"] for row in rows)
    assert "BASELINES" not in adapters.__all__ and "twonn_dimension" not in adapters.__all__  # internals stay out
    assert [(r["name"], r["source"], r["knob"]) for r in rows[-2:]] == [("none", "baseline", "-"),
                                                                       ("full", "baseline", "-")]


def test_every_method_has_its_own_colour_in_the_registry():
    from elsst_bench.adapters.registry import METHOD_COLORS

    assert list(METHOD_COLORS) != [] and set(METHOD_COLORS) == set(available_methods())
    assert len(set(METHOD_COLORS.values())) == len(METHOD_COLORS)
    assert method_info("orthogeolora").color == METHOD_COLORS["orthogeolora"]


def test_default_learning_rates_and_what_each_entry_is():
    lrs = {name: method_info(name).default_lr for name in available_methods()}
    assert lrs == {"full": 2e-5, "lora": 3e-3, "orthogeolora": 1e-2, "gelora": 3e-3, "smoa": 3e-3,
                   "eigenlorax": 1e-2, "pica": 3e-3, "dora": 3e-3, "pissa": 1e-3, "vera": 1e-2, "hra": 3e-3,
                   **{name: 3e-3 for name in ("oft", "boft", "psoft", "osf", "delora", "gralora", "randlora", "miss",
                                              "c3a", "road", "fourierft", "loha", "lokr", "adalora")},
                   "ia3": 3e-2, "none": None}
    for name in available_adapters():
        info = method_info(name)
        assert info.trains and info.is_adapter and info.source in ("native", "peft") and info.implementation
    assert not method_info("none").trains and not method_info("none").is_adapter
    assert method_info("full").trains and not method_info("full").is_adapter
    assert {method_info(name).source for name in ("none", "full")} == {"baseline"}


@pytest.mark.parametrize("name", [3, None, "foo", "LoRA"])
def test_unknown_names_are_refused(name):
    with pytest.raises(AdapterError, match=f"unknown adapter {name!r}; known: lora, orthogeolora"):
        method_info(name)


def test_saved_option_order_is_the_config_field_order():
    """The fields, defaults and their order are what ``adapter_config.json`` saves under ``"options"``."""
    defaults = {name: method_info(name).config_class.defaults() for name in available_methods()}
    assert {k: list(v.items()) for k, v in defaults.items()} == {
        "lora": [("alpha", None), ("init", "default"), ("rslora", False)],
        "orthogeolora": [("alpha", None), ("init", "haar")],
        "gelora": [("alpha", None), ("mode", "budget"), ("max_tokens", 5000), ("seed", 0)],
        "smoa": [("alpha", None), ("k", 2)],
        "eigenlorax": [("alpha", None), ("k", None), ("k_gs", 0), ("seed", 0)],
        "pica": [("shared", True)],
        "dora": [("alpha", None), ("rank_pattern", {})],
        "pissa": [("alpha", None)],
        "vera": [("d_initial", 0.1), ("projection_prng_key", 0)],
        "hra": [("apply_gs", False)],
        "oft": [("block_share", False), ("use_cayley_neumann", True)],
        "boft": [("butterfly_factor", 1)],
        "psoft": [("alpha", None), ("orthogonal", True)],
        "osf": [],
        "delora": [("delora_lambda", 15.0)],
        "gralora": [("alpha", None), ("k", 2)],
        "randlora": [("alpha", None), ("projection_prng_key", 0)],
        "miss": [],
        "c3a": [],
        "road": [("variant", 1), ("group_size", None)],
        "fourierft": [("scaling", 150.0), ("random_loc_seed", 777)],
        "loha": [("alpha", None)],
        "lokr": [("alpha", None), ("decompose_factor", -1)],
        "adalora": [("alpha", None), ("init_r", None), ("tinit", 0), ("tfinal", 0), ("delta_t", 1), ("beta1", 0.85),
                    ("beta2", 0.85), ("orth_reg_weight", 0.5), ("total_step", None)],
        "ia3": [],
        "none": [],
        "full": [],
    }
    for name in available_methods():
        cls = method_info(name).config_class
        assert issubclass(cls, MethodConfig) and dataclasses.is_dataclass(cls) and cls.method == name
        with pytest.raises(dataclasses.FrozenInstanceError):
            cls().method_option = 1


SHAPES = {"layers.0.query": (16, 16), "layers.0.up": (24, 16), "layers.1.query": (16, 16), "layers.1.up": (24, 16)}


def test_resolve_fills_rank_dependent_defaults():
    assert LoRAConfig().resolve(8, SHAPES).options() == {"alpha": 16, "init": "default", "rslora": False}
    assert LoRAConfig(alpha=3.0).resolve(8, SHAPES).alpha == 3.0
    assert GeLoRAConfig().resolve(8, SHAPES).alpha is None  # per-block α = 2·r_ℓ
    assert EigenLoRAxConfig().resolve(2, SHAPES).k == EigenLoRAxConfig.default_k == 8
    dora = method_info("dora").config_class(rank_pattern={"layers.*.up": 3, "layers.*.query": 2})
    assert list(dora.resolve(2, SHAPES).rank_pattern) == ["layers.*.query", "layers.*.up"]


@pytest.mark.parametrize("name, options, message", [
    ("lora", {"alpha": 0}, "option alpha of adapter 'lora' must be a positive number, got 0"),
    ("lora", {"alpha": True}, "option alpha of adapter 'lora' must be a positive number, got True"),
    ("lora", {"colour": 1}, "unknown option colour for adapter 'lora'; known: alpha"),
    ("orthogeolora", {"init": "cayley"}, "option init of adapter 'orthogeolora' must be one of haar, spectral"),
    ("gelora", {"mode": "max"}, "option mode of adapter 'gelora' must be one of budget, bound, got 'max'"),
    ("gelora", {"max_tokens": 0}, "option max_tokens of adapter 'gelora' must be a positive integer, got 0"),
    ("gelora", {"seed": 1.5}, "option seed of adapter 'gelora' must be an integer, got 1.5"),
    ("smoa", {"k": 0}, "option k of adapter 'smoa' must be a positive integer, got 0"),
    ("eigenlorax", {"k": -1}, "option k of adapter 'eigenlorax' must be a positive integer, got -1"),
    ("eigenlorax", {"k_gs": -1}, "option k_gs of adapter 'eigenlorax' must be an integer ≥ 0, got -1"),
    ("eigenlorax", {"seed": "0"}, "option seed of adapter 'eigenlorax' must be an integer, got '0'"),
    ("pica", {"shared": "yes"}, "option shared of adapter 'pica' must be true or false, got 'yes'"),
    ("dora", {"rank_pattern": [1]}, "option rank_pattern of adapter 'dora' must map module types to ranks"),
    ("vera", {"d_initial": None}, "option d_initial of adapter 'vera' must be a number, got None"),
    ("vera", {"projection_prng_key": 1.0}, "option projection_prng_key of adapter 'vera' must be an integer"),
    ("hra", {"apply_gs": 1}, "option apply_gs of adapter 'hra' must be true or false, got 1"),
])
def test_configs_validate_their_options(name, options, message):
    with pytest.raises(AdapterError) as err:
        method_info(name).config_class.from_options(options)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("name, options, rank, message", [
    ("smoa", {"k": 17}, 17, r"option k of adapter 'smoa' \(17\) exceeds min\(d_in, d_out\) = 16"),
    ("eigenlorax", {"k": 10, "k_gs": 7}, 2, "eigenlorax basis size k \\+ k_gs = 17 exceeds min\\(d_in, d_out\\) = 16"),
    ("dora", {"rank_pattern": {"layers.*.key": 2}}, 2, "names 'layers.*.key', which is not a target module type"),
    ("dora", {"rank_pattern": {"layers.*.up": 0}}, 2, "dora rank of layers.*.up must be a positive integer"),
    ("dora", {"rank_pattern": {"layers.*.up": 17}}, 2, r"dora rank 17 of layers.\*.up is larger than min"),
])
def test_configs_check_the_target_shapes(name, options, rank, message):
    with pytest.raises(AdapterError, match=message):
        method_info(name).config_class.from_options(options).resolve(rank, SHAPES)


@pytest.mark.parametrize("name, options, rank, message", [
    ("smoa", {"k": 3}, 2, "smoa needs rank ≥ k .*got rank 2 and k 3"),
    ("hra", {}, 3, "hra needs an even rank"),
])
def test_configs_check_the_rank(name, options, rank, message):
    config = method_info(name).config_class.from_options(options)
    with pytest.raises(AdapterError, match=message):
        config.check_rank(rank)
    config.check_rank(rank + 1)


def test_gelora_gets_an_even_spread_of_the_training_texts():
    anchors = [f"text {i:05d}" for i in range(1700)] * 2  # duplicates count once
    texts = sorted(set(anchors))
    assert method_info("gelora").training_inputs(anchors, []) == {"texts": texts[::3][:512]}
    assert method_info("gelora").training_inputs(["b", "a", "b"], [])["texts"] == ["a", "b"]
    assert method_info("gelora").training_inputs(anchors, [], options={"texts": ["mine"]}) == {}


def test_eigenlorax_resolves_run_and_adapter_directories(tmp_path):
    run, plain = tmp_path / "run", tmp_path / "plain"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    plain.mkdir()
    (plain / "adapter_config.json").write_text("{}")
    from elsst_bench.runs import adapter_dir

    sources = [str(adapter_dir(run)), str(adapter_dir(plain))]  # what the training layer hands the method
    inputs = method_info("eigenlorax").training_inputs(["a"], sources)
    assert inputs == {"sources": [str(run / "adapter"), str(plain)]}
    with pytest.raises(AdapterError, match=r"^eigenlorax needs --sources RUN_DIR\.\.\. : two or more LoRA runs"):
        method_info("eigenlorax").training_inputs(["a"], [])
    with pytest.raises(BenchError, match=f"eigenlorax source {tmp_path} is neither a LoRA run directory nor an "
                                         "adapter directory"):
        method_info("eigenlorax").training_inputs(["a"], [str(adapter_dir(run)), str(tmp_path)])


@pytest.mark.parametrize("name", [n for n in available_methods() if n not in ("gelora", "eigenlorax")])
def test_other_methods_need_no_training_inputs(name):
    assert method_info(name).training_inputs(["a", "b"], ["somewhere"]) == {}
