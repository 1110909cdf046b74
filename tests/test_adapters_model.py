"""Every adapter of the registry: identity at init, training touches only the adapter, save/load round trip, merge
equivalence (the lifecycle, on the tests' tiny random BERT, as PEFT's own matrix runs on tiny random models), and
on all-MiniLM-L6-v2, whose numbers are known: parameter counts, budgets, equality with PEFT, bad adapter files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from adapter_fixtures import (
    PAIRS,
    TEXTS,
    default_model,
    encode,
    features,
    fresh_default,
    fresh_tiny,
    max_diff,
    one_intra_op_thread,
    random_lora_sources,
    tiny_encoder,
    tiny_model,
    train_steps,
)
from tiny_model import LINEAR_LAYERS
from elsst_bench.adapters import (
    adapted_layers,
    adapter_config,
    adapter_spectra,
    apply_adapter,
    available_adapters,
    budget_params,
    count_trainable,
    find_target_modules,
    get_method,
    inner_model,
    load_adapter,
    load_adapter_weights,
    merge_adapter,
    method_info,
    read_adapter_config,
    save_adapter,
    trainable_parameters,
)
from elsst_bench.adapters.configs import LORA_INIT_NAMES
from elsst_bench.adapters.budget import solve_budget
from elsst_bench.errors import AdapterError
from elsst_bench.models import infer_base_identity


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_intra_op_thread():
        yield


METHODS = available_adapters()  # every registered adapter; a new one is covered here without editing this file
# PiSSA (W0 − sB0A0 + sB0A0), HRA ((I − 2uuᵀ)² = I), OSF (U S Vᵀ split in two) are the identity only up to rounding
ROUNDED_AT_INIT = {name for name in METHODS if not method_info(name).exact_at_init}


@pytest.fixture(scope="module")
def base():
    return default_model()


@pytest.fixture(scope="module")
def identity(base):
    """The base model identity the training layer records (the adapter library does not infer it)."""
    return infer_base_identity(base)


@pytest.fixture(scope="module")
def feats(base):
    return features(base)


@pytest.fixture(scope="module")
def reference(base, feats):
    return encode(base, feats)


@pytest.fixture(scope="module")
def shapes(base):
    return {n: (m.out_features, m.in_features) for n, m in find_target_modules(base).items()}


@pytest.fixture(scope="module")
def lora_sources(tmp_path_factory):
    """Two saved LoRA adapters of the default model with random B (EigenLoRAx sources)."""
    return random_lora_sources(tmp_path_factory.mktemp("sources"), fresh_default)


@pytest.fixture(scope="module")
def tiny():
    """The lifecycle's base, the tiny random BERT: its identity, features, outputs, target shapes and two random
    LoRA sources, as the fixtures above give them for all-MiniLM-L6-v2."""
    import tempfile
    from types import SimpleNamespace

    base = tiny_model()
    feats = features(base)
    sources = random_lora_sources(Path(tempfile.mkdtemp(prefix="tiny-sources-")), fresh_tiny)
    return SimpleNamespace(base=base, identity=infer_base_identity(base), feats=feats, reference=encode(base, feats),
                           shapes={n: (m.out_features, m.in_features) for n, m in find_target_modules(base).items()},
                           sources=sources)


def extra_options(name, lora_sources, options=None):
    """The options and what the training layer hands the method with them (GeLoRA and LoRA's EVA and CorDA inits:
    sample texts; EigenLoRAx: its source adapters)."""
    options = dict(options or {})
    anchors = TEXTS + [t for pair in PAIRS for t in pair]
    positives = anchors[1:] + anchors[:1]  # each text paired with the next (LoRA-GA's gradient reads pairs)
    return {**options, **method_info(name).training_inputs(anchors, lora_sources, options, positives=positives)}


def peft_own_count(name, rank, config, fresh=fresh_default):
    """What PEFT itself trains with the tuner's config on the whole bare transformer of ``fresh()``, built by one
    ``get_peft_model`` call: another path than the adapter library's count, which builds one module per shape."""
    import warnings

    from peft import get_peft_model

    from elsst_bench.adapters.peft_tuners import PeftTuner

    method = get_method(name)
    assert isinstance(method, PeftTuner)
    bare = fresh()[0].auto_model
    shapes = {n: (m.out_features, m.in_features) for n, m in find_target_modules(bare).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(bare, method.config_for(rank, config["options"], shapes))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def expected_count(name, shapes, rank=8, config=None, fresh=fresh_default):
    """Independent parameter formulas (docs/methods.md) over the target shapes of ``fresh()``; PEFT's own count for
    the tuners of .peft_tuners."""
    from elsst_bench.adapters.peft_tuners import PeftTuner

    if isinstance(get_method(name), PeftTuner):
        return peft_own_count(name, rank, config, fresh)
    if name in ("lora", "smoa", "pissa"):
        return sum(rank * (o + i) for o, i in shapes.values())
    if name == "orthogeolora":
        return sum(rank * (o + i) + rank for o, i in shapes.values())
    if name == "gelora":
        ranks = {int(k): v for k, v in config["layer_ranks"].items()}
        return sum(ranks[int(n.split(".")[2])] * (o + i) for n, (o, i) in shapes.items())
    if name == "eigenlorax":
        kp = config["options"]["k"] + config["options"]["k_gs"]
        return sum(2 * kp * rank for _ in shapes)
    if name == "pica":
        per_type = {}
        for n, (o, _) in shapes.items():
            per_type[n.split(".", 3)[3]] = o
        return sum(rank * o for o in per_type.values())
    if name == "dora":
        return sum(rank * (o + i) + o for o, i in shapes.values())
    if name == "vera":
        return sum(rank + o for o, _ in shapes.values())
    if name == "hra":
        return sum(rank * i for _, i in shapes.values())
    raise AssertionError(f"no independent parameter formula for adapter {name!r}: add one to expected_count")


def test_trainable_counts_at_rank_8(base):
    counts = {}
    for name in ("lora", "orthogeolora", "pica"):
        model = fresh_default()
        layers = apply_adapter(model, name, rank=8)
        counts[name] = count_trainable(model)
    assert len({id(layer.M) for layer in layers}) == 6  # PiCa: one M per module type (q, k, v, o, ffn in, out)
    assert counts == {"lora": 331_776, "orthogeolora": 332_064, "pica": 27_648}
    assert budget_params(base, "lora-r8") == 331_776


#: Variants that are options of a method, not methods (LoRA's initialisations, rsLoRA): each gets the same lifecycle.
VARIANTS = [("lora", {"init": init}) for init in LORA_INIT_NAMES if init != "default"] + [("lora", {"rslora": True})]


@pytest.mark.matrix("name", "options")
@pytest.mark.parametrize("name, options", [(m, {}) for m in METHODS] + VARIANTS,
                         ids=list(METHODS) + [f"lora-{k}={v}" for _, o in VARIANTS for k, v in o.items()])
def test_lifecycle(name, options, tiny, tmp_path):
    """Every method (and LoRA variant) on the tiny random BERT: identity at initialisation, only the adapter
    trains, save/load and a checkpoint reload reproduce the outputs, the ΔW spectra, merging."""
    feats, reference, lora_sources = tiny.feats, tiny.reference, tiny.sources
    model = fresh_tiny()
    before = {id(p): p.detach().clone() for p in model.parameters()}
    layers = apply_adapter(model, name, rank=8, base_model=tiny.identity, **extra_options(name, lora_sources, options))
    assert len(layers) == LINEAR_LAYERS and all(callable(layer.delta_weight) for layer in layers)
    config = adapter_config(model)
    assert count_trainable(model) == expected_count(name, tiny.shapes, 8, config, fresh_tiny) == config[
        "trainable_params"]

    # 1. identity at initialisation
    out = encode(model, feats)
    assert max_diff(out["sentence"], reference["sentence"]) <= 1e-6
    if name in ROUNDED_AT_INIT:
        assert max_diff(out["token"], reference["token"]) <= 1e-4
    else:
        assert torch.equal(out["token"], reference["token"])
        for layer in layers:
            assert float(layer.delta_weight().detach().abs().max()) == 0.0

    # 2. only the adapter trains; the base weights stay bit-identical
    method = get_method(name)
    adapter_params = {id(p) for layer in layers for p in method.layer_trainable(layer)}
    trainable = trainable_parameters(model)
    assert {id(p) for p in trainable} == adapter_params
    snapshot = [(p, p.detach().clone()) for p in model.parameters()]
    snapshot += [(b, b.detach().clone()) for layer in layers for b in layer.buffers()]
    train_steps(model, trainable)
    changed = 0
    for tensor, old in snapshot:
        if id(tensor) in adapter_params:
            changed += not torch.equal(tensor, old)
        else:
            assert torch.equal(tensor, old)
    assert changed > 0
    if name != "pissa":  # PiSSA's base is W0 − s·B0A0 by design; all others leave W0 untouched
        for p in model.parameters():
            if id(p) in before:
                assert torch.equal(p, before[id(p)])
    adapted = encode(model, feats)
    assert max_diff(adapted["sentence"], reference["sentence"]) > 1e-6  # training moved the encoder

    # 3. save / load into a fresh base model reproduces the outputs
    directory = save_adapter(model, tmp_path / "adapter")
    saved = json.loads((directory / "adapter_config.json").read_text())
    assert saved["method"] == name and saved["rank"] == 8 and len(saved["target_modules"]) == LINEAR_LAYERS
    assert saved["base_model"] == tiny.identity and saved["base_model"]["sha256"]
    assert saved["trainable_params"] == count_trainable(model)
    reloaded = fresh_tiny()
    load_adapter(reloaded, directory)
    assert max_diff(encode(reloaded, feats)["sentence"], adapted["sentence"]) <= 1e-6
    assert adapter_config(reloaded)["options"] == saved["options"]
    assert count_trainable(reloaded) == count_trainable(model)
    resumed = fresh_tiny()  # checkpoint reload (what training's --resume does): the same adapter, then its tensors
    apply_adapter(resumed, name, rank=8, **extra_options(name, lora_sources, options))
    load_adapter_weights(resumed, directory)
    assert max_diff(encode(resumed, feats)["sentence"], adapted["sentence"]) <= 1e-6

    # 4. diagnostics: singular values of ΔW (checked against the merged weights below)
    probe = [saved["target_modules"][i] for i in (0, 4, 11)]  # q of block 0, its FFN-in, FFN-out of block 1
    spectra = adapter_spectra(model, probe)
    assert list(spectra) == probe
    originals = {n: m.weight.detach().clone() for n, m in find_target_modules(tiny.base).items()}

    # 5. merging: same outputs, plain nn.Linear layers, ΔW = W_merged − W0
    merge_adapter(model)
    assert max_diff(encode(model, feats)["sentence"], adapted["sentence"]) <= 1e-5
    root = inner_model(model)
    for layer_name, info in spectra.items():
        merged = root.get_submodule(layer_name)
        assert type(merged) is nn.Linear
        s = torch.linalg.svdvals(merged.weight.double() - originals[layer_name].double())
        assert max_diff(torch.tensor(info["singular_values"]), s) <= 1e-5
    assert all(p.requires_grad for p in model.parameters())  # original flags restored


def test_lora_equals_peft_lora_on_the_default_model(base, feats):
    from peft import LoraConfig, inject_adapter_in_model

    ours = fresh_default()
    apply_adapter(ours, "lora", rank=8)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in adapted_layers(ours).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.02)
    theirs = fresh_default()
    names = list(find_target_modules(theirs))
    inject_adapter_in_model(LoraConfig(r=8, lora_alpha=16, target_modules=names), theirs[0].auto_model)
    with torch.no_grad():
        for name, layer in adapted_layers(ours).items():
            peft_layer = theirs[0].auto_model.get_submodule(name)
            peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
            peft_layer.lora_B["default"].weight.copy_(layer.lora_B)
    a, b = encode(ours, feats), encode(theirs, feats)
    assert max_diff(a["token"], encode(base, feats)["token"]) > 1e-3
    assert max_diff(a["token"], b["token"]) <= 1e-6
    assert max_diff(a["sentence"], b["sentence"]) <= 1e-6


@pytest.mark.slow  # every method budget-solved
def test_budget_solver_matches_lora_r8(shapes, lora_sources, tmp_path):
    target = 331_776
    for name in METHODS:
        method = get_method(name)
        options = method.resolve_options(8, {"k": 8} if name == "eigenlorax" else {}, shapes)
        rank, options, info = solve_budget(method, shapes, "lora-r8", 8, options)
        count = method.count(shapes, rank, options)
        assert info["target_params"] == target and info["planned_params"] == count
        if not method_info(name).reaches_budget:  # their knobs top out far below (or step past) LoRA r=8's count
            assert abs(count / target - 1) > 0.05 and info["within_tolerance"] is False
            assert ("below" if count < target else "above") in info["note"]
        else:
            assert abs(count / target - 1) <= 0.05, (name, count)
            assert info["within_tolerance"] is True
    # applied for real: the solved knob is used and the achieved count is the planned one
    for name, knob in (("pica", {"rank": 96}), ("dora", {}), ("hra", {"rank": 16})):
        model = fresh_default()
        apply_adapter(model, name, budget="lora-r8")
        config = adapter_config(model)
        assert config["budget"]["achieved_params"] == count_trainable(model) == config["budget"]["planned_params"]
        assert abs(count_trainable(model) / target - 1) <= 0.05
        for key, value in knob.items():
            assert config[key] == value
        if name == "dora":  # the solver raised some module types by one rank; a reload rebuilds exactly that
            assert config["options"]["rank_pattern"]
            reloaded = fresh_default()
            load_adapter(reloaded, save_adapter(model, tmp_path / "dora"))
            assert count_trainable(reloaded) == count_trainable(model)
            assert adapter_config(reloaded)["budget"] == config["budget"]
    assert adapter_config(model)["trainable_params"] == 16 * sum(i for _, i in shapes.values())


@pytest.mark.matrix("name")
@pytest.mark.parametrize("name", METHODS)
def test_the_budget_search_stops_early_exactly_where_counts_are_monotone_and_picks_what_the_full_one_picks(
        name, shapes, monkeypatch):
    """A method declares its budget counts monotone (``budget_monotone``) exactly when they are, on MiniLM's shapes
    and a tiny encoder's; where it does, the solver stops once it is past the best candidate and settles on the same
    knob, count and note as the search over every candidate, for budgets on both sides of most knobs' range."""
    method = get_method(name)
    monotone = []
    for where in (shapes, {n: (m.out_features, m.in_features) for n, m in find_target_modules(tiny_encoder()).items()}):
        options = method.resolve_options(8, {"k": 2} if name == "eigenlorax" else {}, where)
        full = list(method.budget_candidates(where, 8, options))
        counts = [count for count, _, _ in full]
        monotone.append(counts == sorted(counts) or counts == sorted(counts, reverse=True))
        read = []

        def replay(*args, full=full, read=read):
            for candidate in full:
                read.append(candidate)
                yield candidate

        monkeypatch.setattr(method, "budget_candidates", replay)
        for n in (1, 4, 8, 16, 64):
            read.clear()
            early = solve_budget(method, where, f"lora-r{n}", 8, options)
            stopped = len(read)
            assert early == solve_budget(method, where, f"lora-r{n}", 8, options, exhaustive=True), (name, n)
            target = early[2]["target_params"]
            distance = [abs(count - target) for count in counts]
            over = [count > target for count in counts]
            # the rule, over the whole list: stop after the first candidate on the budget, past it (the other side
            # from the first), or farther from it than the one before; where counts are monotone, none after wins
            ends = [j for j in range(len(full)) if distance[j] == 0 or (j and (over[j] != over[0]
                                                                                or distance[j] > distance[j - 1]))]
            assert stopped == (ends[0] + 1 if method.budget_monotone and ends else len(full)), (name, n)
        monkeypatch.undo()
    assert method.budget_monotone == all(monotone)


def test_gelora_records_ids_and_ranks_and_reloads_without_texts(tmp_path, feats):
    model = fresh_default()
    texts = ["household survey on income", "migration and citizenship", "health inequalities"] * 4
    apply_adapter(model, "gelora", budget="lora-r8", texts=texts)
    config = adapter_config(model)
    assert len(config["intrinsic_dims"]) == 7 and all(d > 0 for d in config["intrinsic_dims"])
    ranks = {int(k): v for k, v in config["layer_ranks"].items()}
    assert sorted(ranks) == list(range(6)) and sum(ranks.values()) == 48 and min(ranks.values()) >= 1
    for name, layer in adapted_layers(model).items():
        assert layer.rank == ranks[int(name.split(".")[2])]
    assert abs(count_trainable(model) / 331_776 - 1) <= 0.05
    directory = save_adapter(model, tmp_path / "gelora")
    reloaded = fresh_default()
    load_adapter(reloaded, directory)
    assert adapter_config(reloaded)["layer_ranks"] == config["layer_ranks"]
    assert adapter_config(reloaded)["intrinsic_dims"] == config["intrinsic_dims"]


def test_eigenlorax_refuses_sources_of_another_base_model(lora_sources, tmp_path):
    other = fresh_default()
    with torch.no_grad():
        inner_model(other).encoder.layer[0].attention.self.query.weight.add_(1e-3)
    apply_adapter(other, "lora")
    foreign = save_adapter(other, tmp_path / "foreign")
    with pytest.raises(AdapterError, match="another base model"):
        apply_adapter(fresh_default(), "eigenlorax", sources=[lora_sources[0], str(foreign)])
    with pytest.raises(AdapterError, match="at least 2"):
        apply_adapter(fresh_default(), "eigenlorax", sources=lora_sources[:1])


# ------------------------------------------------------------------------------------------- bad adapter files


@pytest.fixture(scope="module")
def saved_lora(tmp_path_factory, identity):
    model = fresh_default()
    apply_adapter(model, "lora", rank=4, target_modules=["query", "value"], base_model=identity)
    return save_adapter(model, tmp_path_factory.mktemp("saved") / "lora")


def _copy(directory, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(directory, target)
    return target


def _assert_untouched(model, base):
    assert getattr(inner_model(model), "_elsst_adapter", None) is None
    assert all(type(m) is nn.Linear for m in find_target_modules(model).values())
    assert count_trainable(model) == count_trainable(base)


def _edit_tensors(change):
    def edit(directory):
        from safetensors.torch import load_file, save_file

        tensors = load_file(directory / "adapter.safetensors")
        change(tensors, sorted(tensors)[0])
        save_file(tensors, directory / "adapter.safetensors")
    return edit


def _edit_config(change):
    def edit(directory):
        config = json.loads((directory / "adapter_config.json").read_text())
        (directory / "adapter_config.json").write_text(json.dumps(change(config)))
    return edit


BAD_FILES = [
    pytest.param(lambda d: (d / "adapter.safetensors").write_bytes(b"\x00\x01not a safetensors file"),
                 r"adapter file .* is corrupt", id="safetensors-bytes"),
    pytest.param(lambda d: (d / "adapter.safetensors").unlink(), "is missing", id="no-safetensors"),
    pytest.param(_edit_tensors(lambda t, key: t.pop(key)), r"mismatched \(missing tensor", id="missing-tensor"),
    pytest.param(_edit_tensors(lambda t, key: t.update({"x.lora_A": t[key].clone()})), r"mismatched \(unexpected tensor",
                 id="unexpected-tensor"),
    pytest.param(_edit_tensors(lambda t, key: t.update({key: torch.zeros(3, 3)})), "mismatched: tensor .* has shape",
                 id="misshapen-tensor"),
    pytest.param(lambda d: (d / "adapter_config.json").write_text("{not json"), r"adapter_config.json is not valid JSON \(JSONDecodeError",
                 id="config-not-json"),
    pytest.param(lambda d: (d / "adapter_config.json").write_text("[]"), "corrupt", id="config-not-an-object"),
    pytest.param(lambda d: (d / "adapter_config.json").unlink(), "not an adapter directory", id="no-config"),
    pytest.param(_edit_config(lambda c: {**c, "rank": "4"}), "field 'rank' missing or of the wrong type",
                 id="config-field-type"),
    pytest.param(_edit_config(lambda c: {**c, "rank": True}), "field 'rank' missing or of the wrong type",
                 id="config-rank-true"),  # issue 30: JSON's true is not a rank (jsontypes' rule)
    pytest.param(_edit_config(lambda c: {**c, "method": "foo"}), "unknown adapter 'foo'", id="unknown-method"),
    pytest.param(_edit_config(lambda c: {**c, "method": "full"}), "'full' is a baseline", id="baseline-method"),
    pytest.param(_edit_config(lambda c: {**c, "options": {"colour": "red"}}), "unknown option colour",
                 id="unknown-option"),
    pytest.param(_edit_config(lambda c: {**c, "target_modules": [*c["target_modules"], "encoder.nowhere"]}),
                 "the model has no linear layer encoder.nowhere", id="unknown-module"),
]


@pytest.mark.parametrize("corrupt, message", BAD_FILES)
def test_bad_adapter_files_are_refused_and_leave_the_model_untouched(corrupt, message, saved_lora, tmp_path, base):
    directory = _copy(saved_lora, tmp_path)
    corrupt(directory)
    model = fresh_default()
    with pytest.raises(AdapterError, match=message):
        load_adapter(model, directory)
    _assert_untouched(model, base)


def test_adapter_of_another_base_model(saved_lora, base):
    model = fresh_default()
    with torch.no_grad():
        inner_model(model).encoder.layer[3].attention.self.value.weight.mul_(1.001)
    message = "mismatched: it was trained on base model sentence-transformers/all-MiniLM-L6-v2"
    with pytest.raises(AdapterError, match=message):
        load_adapter(model, saved_lora)
    _assert_untouched(model, base)


def test_without_base_model_only_what_the_module_tells_is_recorded(base, identity, tmp_path):
    model = fresh_default()
    apply_adapter(model, "lora", rank=2, target_modules=["query"])
    location = str(Path(inner_model(base).config._name_or_path).resolve())
    assert adapter_config(model)["base_model"] == {"name": location, "location": location, "sha256": None}
    directory = save_adapter(model, tmp_path / "plain", base_model=identity)  # the caller knows more: it wins
    assert read_adapter_config(directory)["base_model"] == identity
    assert identity["name"] == "sentence-transformers/all-MiniLM-L6-v2" and identity["sha256"]
    assert infer_base_identity(nn.Linear(2, 2)) is None  # no weights directory: nothing to tell


def test_adapters_load_only_into_the_model_they_fit(saved_lora):
    assert read_adapter_config(saved_lora)["base_model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    model = fresh_default()
    apply_adapter(model, "lora")
    with pytest.raises(AdapterError, match="fresh base model"):
        load_adapter(model, saved_lora)
    with pytest.raises(AdapterError, match="mismatched"):
        load_adapter_weights(model, saved_lora)  # rank 4 on q,v vs rank 8 on all


def test_load_adapter_weights_reloads_a_checkpoint(saved_lora, feats):
    model = fresh_default()
    load_adapter(model, saved_lora)
    with torch.no_grad():
        for layer in adapted_layers(model).values():
            layer.lora_B.fill_(0.01)
    changed = encode(model, feats)
    load_adapter_weights(model, saved_lora)
    fresh = fresh_default()
    load_adapter(fresh, saved_lora)
    assert max_diff(encode(model, feats)["sentence"], encode(fresh, feats)["sentence"]) == 0.0
    assert max_diff(changed["sentence"], encode(fresh, feats)["sentence"]) > 1e-6
