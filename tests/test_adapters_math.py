"""The mathematics of each adapter, on small random layers (fast, no model download)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adapter_fixtures import max_diff, one_intra_op_thread, tiny_encoder
from elsst_bench.adapters import (
    adapted_layers,
    adapter_config,
    adapter_spectra,
    apply_adapter,
    apportion,
    available_adapters,
    available_methods,
    count_trainable,
    effective_rank,
    find_target_modules,
    get_method,
    load_adapter,
    load_adapter_weights,
    merge_adapter,
    method_info,
    save_adapter,
    trainable_parameters,
    twonn_dimension,
)
from elsst_bench.adapters.smoa import spectral_groups
from elsst_bench.errors import AdapterError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_intra_op_thread():
        yield


def single_linear(d_in: int, d_out: int, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, d_out))


# ----------------------------------------------------------------------------------------------------- targets


def test_default_targets_are_the_block_linears_and_selectors_work():
    model = tiny_encoder()
    assert list(find_target_modules(model)) == [
        f"layers.{b}.{n}" for b in range(2) for n in ("query", "value", "up", "down")
    ]
    assert list(find_target_modules(model, ["query", "down"])) == [
        "layers.0.query", "layers.0.down", "layers.1.query", "layers.1.down"
    ]
    assert list(find_target_modules(model, r"layers\.1\.(up|down)")) == ["layers.1.up", "layers.1.down"]
    with pytest.raises(AdapterError, match="match no linear layer"):
        find_target_modules(model, ["nonexistent"])
    with pytest.raises(AdapterError, match="match no linear layer"):
        find_target_modules(model, r"head2")


# ----------------------------------------------------------------------------------------------------- LoRA


def test_lora_equals_peft_lora_for_the_same_factors():
    from peft import LoraConfig, inject_adapter_in_model

    base = tiny_encoder()
    ours = copy.deepcopy(base)
    layers = apply_adapter(ours, "lora", rank=4)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in layers:
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator))
    theirs = copy.deepcopy(base)
    names = list(find_target_modules(base))
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, target_modules=names), theirs)
    with torch.no_grad():
        for name, layer in adapted_layers(ours).items():
            peft_layer = theirs.get_submodule(name)
            peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
            peft_layer.lora_B["default"].weight.copy_(layer.lora_B)
    x = torch.randn(32, 16)
    with torch.no_grad():
        a, b, plain = ours(x), theirs(x), base(x)
    assert max_diff(a, plain) > 1e-2  # the adapter does something
    assert max_diff(a, b) <= 1e-6
    expected = sum(4 * (m.in_features + m.out_features) for m in find_target_modules(base).values())
    assert count_trainable(ours) == expected


# ----------------------------------------------------------------------------------------------------- OrthoGeoLoRA


def test_orthogeolora_stays_on_the_stiefel_manifold_after_adam():
    model = single_linear(40, 30)
    (layer,) = apply_adapter(model, "orthogeolora", rank=4)
    x, y = torch.randn(64, 40), torch.randn(64, 30)
    optimizer = torch.optim.Adam(trainable_parameters(model), lr=0.1)
    for _ in range(50):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    u, v = layer.frames()
    eye = torch.eye(4)
    assert max_diff(u.T @ u, eye) <= 1e-5
    assert max_diff(v.T @ v, eye) <= 1e-5
    sigma = layer.sigma.detach()
    assert sigma.abs().min() > 1e-3  # trained away from 0
    s = torch.linalg.svdvals(layer.delta_weight().detach().double())
    expected = (sigma.double().abs() * layer.scaling).sort(descending=True).values
    assert max_diff(s[:4], expected) <= 1e-5
    assert float(s[4:].max()) <= 1e-5 * float(s[0])
    assert count_trainable(model) == 4 * (40 + 30) + 4


def test_orthogeolora_spectral_init_uses_top_singular_vectors():
    model = single_linear(24, 20)
    w0 = model[0].weight.detach().double().clone()
    (layer,) = apply_adapter(model, "orthogeolora", rank=3, init="spectral")
    u, v = layer.frames()
    u_ref, _, vh_ref = torch.linalg.svd(w0)
    assert max_diff((u.double().T @ u_ref[:, :3]).abs(), torch.eye(3)) <= 1e-5
    assert max_diff((v.double().T @ vh_ref[:3].T).abs(), torch.eye(3)) <= 1e-5
    x = torch.randn(5, 24)
    assert torch.equal(model(x), F.linear(x, model[0].weight, model[0].bias))  # σ = 0: exact no-op


# ----------------------------------------------------------------------------------------------------- SMoA


def test_smoa_k2_has_rank_above_r_with_lora_r_parameters():
    model = single_linear(48, 40)
    (layer,) = apply_adapter(model, "smoa", rank=4)
    with torch.no_grad():
        for b in layer.lora_B:
            b.normal_()
    delta = layer.delta_weight().detach().double()
    assert torch.linalg.matrix_rank(delta) > 4
    assert count_trainable(model) == 4 * (48 + 40)  # LoRA r=4's count
    assert layer.group_sizes[0] + layer.group_sizes[1] == 40
    x = torch.randn(6, 48)
    w0 = layer.base.weight
    assert max_diff(model(x), F.linear(x, w0 + layer.delta_weight(), layer.base.bias)) <= 1e-6


def test_smoa_k1_is_hadamard_modulation_of_w0():
    model = single_linear(32, 24)
    w0 = model[0].weight.detach().clone()
    (layer,) = apply_adapter(model, "smoa", rank=4, k=1)
    with torch.no_grad():
        layer.lora_B[0].normal_()
    expected = layer.scaling * w0 * (layer.lora_B[0] @ layer.lora_A[0]).detach()
    assert max_diff(layer.delta_weight(), expected) <= 1e-6
    x = torch.randn(5, 32)
    assert max_diff(model(x), F.linear(x, w0 + expected, layer.base.bias)) <= 1e-5


def test_smoa_groups_split_singular_value_mass_evenly():
    assert spectral_groups(torch.ones(10), 2) == [slice(0, 5), slice(5, 10)]
    assert spectral_groups(torch.tensor([4.0, 3.0, 2.0, 1.0]), 2) == [slice(0, 1), slice(1, 4)]
    groups = spectral_groups(torch.linspace(5, 1, 12), 3)
    assert [g.stop - g.start for g in groups] and all(g.stop > g.start for g in groups)
    with pytest.raises(AdapterError):
        spectral_groups(torch.ones(2), 3)


# ----------------------------------------------------------------------------------------------------- PiCa


def test_pica_shares_m_per_module_type_and_its_gradient_is_the_projected_weight_gradient():
    base = tiny_encoder(d=12, f=20)
    model = copy.deepcopy(base)
    layers = apply_adapter(model, "pica", rank=3)
    ms = {id(layer.M) for layer in layers}
    assert len(ms) == 4  # query, value, up, down: one M each, shared by both blocks
    by_name = adapted_layers(model)
    for kind in ("query", "value", "up", "down"):
        assert by_name[f"layers.0.{kind}"].M is by_name[f"layers.1.{kind}"].M
        assert not torch.equal(by_name[f"layers.0.{kind}"].P, by_name[f"layers.1.{kind}"].P)
    assert count_trainable(model) == 3 * (12 + 12 + 20 + 12)  # Σ_types r·d_out
    # P holds the top-r right singular vectors of W0
    for name, layer in by_name.items():
        _, _, vh = torch.linalg.svd(base.get_submodule(name).weight.detach().double())
        assert max_diff((layer.P.double() @ vh[:3].T).abs(), torch.eye(3)) <= 1e-5

    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in layers:
            if layer.M.abs().sum() == 0:
                layer.M.copy_(torch.randn(layer.M.shape, generator=generator))
    x, target = torch.randn(10, 12, generator=generator), torch.randn(10, 12, generator=generator)
    ((model(x) - target) ** 2).sum().backward()

    # the same function with plain weights W = W0 + M P, differentiated w.r.t. the full weights
    reference = copy.deepcopy(base)
    for name, layer in by_name.items():
        linear = reference.get_submodule(name)
        with torch.no_grad():
            linear.weight.copy_(layer.base.weight + layer.M @ layer.P)
    out = reference(x)
    assert max_diff(out, model(x)) <= 1e-5
    ((out - target) ** 2).sum().backward()
    for kind in ("query", "value", "up", "down"):
        expected = sum(
            reference.get_submodule(f"layers.{b}.{kind}").weight.grad @ by_name[f"layers.{b}.{kind}"].P.T
            for b in range(2)
        )
        got = by_name[f"layers.0.{kind}"].M.grad
        assert max_diff(got, expected) <= 1e-5 * max(1.0, float(expected.abs().max()))


def test_pica_unshared_has_one_m_per_layer():
    model = tiny_encoder(d=12, f=20)
    layers = apply_adapter(model, "pica", rank=2, shared=False)
    assert len({id(layer.M) for layer in layers}) == len(layers)
    assert count_trainable(model) == 2 * 2 * (12 + 12 + 20 + 12)


# ----------------------------------------------------------------------------------------------------- EigenLoRAx


def _subspace_sources(tmp_path, base, k=3, n_sources=3, rank=2, seed=0):
    """LoRA adapters whose A and B columns lie in known k-dimensional subspaces."""
    generator = torch.Generator().manual_seed(seed)
    targets = find_target_modules(base)
    bases = {
        name: (
            torch.linalg.qr(torch.randn(m.in_features, k, generator=generator, dtype=torch.float64))[0],
            torch.linalg.qr(torch.randn(m.out_features, k, generator=generator, dtype=torch.float64))[0],
        )
        for name, m in targets.items()
    }
    dirs = []
    for i in range(n_sources):
        model = copy.deepcopy(base)
        apply_adapter(model, "lora", rank=rank)
        with torch.no_grad():
            for name, layer in adapted_layers(model).items():
                qa, qb = bases[name]
                layer.lora_A.copy_((qa @ torch.randn(k, rank, generator=generator, dtype=torch.float64)).T)
                layer.lora_B.copy_(qb @ torch.randn(k, rank, generator=generator, dtype=torch.float64))
        dirs.append(save_adapter(model, tmp_path / f"source{i}"))
    return dirs, bases


def _largest_principal_angle(q: torch.Tensor, v: torch.Tensor) -> float:
    residual = v.double() - q @ (q.T @ v.double())
    return math.asin(min(1.0, float(torch.linalg.matrix_norm(residual, ord=2))))


def test_eigenlorax_recovers_the_sources_subspace(tmp_path):
    base = tiny_encoder()
    sources, bases = _subspace_sources(tmp_path, base)
    model = copy.deepcopy(base)
    layers = apply_adapter(model, "eigenlorax", rank=2, sources=sources, k=3)
    for name, layer in adapted_layers(model).items():
        qa, qb = bases[name]
        assert _largest_principal_angle(qa, layer.V_A) < 1e-4
        assert _largest_principal_angle(qb, layer.V_B) < 1e-4
    assert count_trainable(model) == 2 * 3 * 2 * len(layers)
    assert adapter_config(model)["sources"][0]["method"] == "lora"
    x = torch.randn(4, 16)
    assert torch.equal(model(x), base(x))  # α_B = 0

    augmented = copy.deepcopy(base)
    apply_adapter(augmented, "eigenlorax", rank=2, sources=sources, k=3, k_gs=2)
    for name, layer in adapted_layers(augmented).items():
        v = layer.V_A.double()
        assert max_diff(v.T @ v, torch.eye(5)) <= 1e-5
        assert _largest_principal_angle(bases[name][0], v[:, :3]) < 1e-4
    assert count_trainable(augmented) == 2 * 5 * 2 * 8


def test_eigenlorax_rejects_bad_sources(tmp_path):
    base = tiny_encoder()
    sources, _ = _subspace_sources(tmp_path, base)
    with pytest.raises(AdapterError, match="at least 2 source"):
        apply_adapter(copy.deepcopy(base), "eigenlorax", sources=sources[:1])
    with pytest.raises(AdapterError, match="needs sources"):
        apply_adapter(copy.deepcopy(base), "eigenlorax")
    other = tiny_encoder(seed=1)  # same architecture, other weights
    apply_adapter(other, "lora", rank=2)
    foreign = save_adapter(other, tmp_path / "foreign")
    with pytest.raises(AdapterError, match="another base model"):
        apply_adapter(copy.deepcopy(base), "eigenlorax", rank=2, sources=[sources[0], foreign])
    pica = copy.deepcopy(base)
    apply_adapter(pica, "pica", rank=2)
    with pytest.raises(AdapterError, match="recycles"):
        apply_adapter(copy.deepcopy(base), "eigenlorax", sources=[sources[0], save_adapter(pica, tmp_path / "pica")])
    with pytest.raises(AdapterError, match="principal directions"):
        apply_adapter(copy.deepcopy(base), "eigenlorax", rank=2, sources=sources[:2], k=4)


# ----------------------------------------------------------------------------------------------------- GeLoRA


def test_twonn_recovers_known_intrinsic_dimensions():
    generator = torch.Generator().manual_seed(0)
    frame, _ = torch.linalg.qr(torch.randn(100, 2, generator=generator, dtype=torch.float64))
    plane = torch.randn(1000, 2, generator=generator, dtype=torch.float64) @ frame.T
    assert twonn_dimension(plane) == pytest.approx(2, abs=0.3)
    cube = torch.rand(10000, 10, generator=generator, dtype=torch.float64)
    assert twonn_dimension(cube) == pytest.approx(10, abs=1.5)
    duplicated = torch.cat([plane[:300], plane[:300]])
    assert twonn_dimension(duplicated) == pytest.approx(twonn_dimension(plane[:300]))


def test_apportion_is_proportional_with_a_floor_of_one():
    assert apportion(12, [1, 1, 4]) == [2, 2, 8]
    assert apportion(8, [1, 5]) == [1, 7]
    assert apportion(6, [0.01, 10, 10]) == [1, 3, 2] or apportion(6, [0.01, 10, 10]) == [1, 2, 3]
    spread = apportion(48, [1, 1.5, 20, 1, 1, 1])
    assert sum(spread) == 48 and min(spread) >= 1 and spread.index(max(spread)) == 2
    with pytest.raises(AdapterError):
        apportion(2, [1, 1, 1])


def _levels(dims, n=600, d=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    out = []
    for k in dims:
        frame, _ = torch.linalg.qr(torch.randn(d, k, generator=generator))
        out.append(torch.randn(n, k, generator=generator) @ frame.T)
    return out


def test_gelora_ranks_follow_intrinsic_dimension_gaps():
    base = tiny_encoder()
    states = _levels([2, 2, 6])
    model = copy.deepcopy(base)
    apply_adapter(model, "gelora", rank=4, hidden_states=states)
    config = adapter_config(model)
    dims = config["intrinsic_dims"]
    for got, true in zip(dims, [2, 2, 6]):
        assert got == pytest.approx(true, rel=0.15)
    ranks = {int(k): v for k, v in config["layer_ranks"].items()}
    assert sum(ranks.values()) == 8 and ranks[1] > ranks[0] >= 1
    bounds = [max(dims[1] - dims[0], 0), max(dims[2] - dims[1], 0)]
    assert [ranks[0], ranks[1]] == apportion(8, [b + 1 for b in bounds])
    for name, layer in adapted_layers(model).items():
        assert layer.rank == ranks[int(name.split(".")[1])]
    lora = copy.deepcopy(base)
    apply_adapter(lora, "lora", rank=4)
    assert count_trainable(model) == count_trainable(lora)  # identical blocks: exactly LoRA r's budget

    bound = copy.deepcopy(base)
    apply_adapter(bound, "gelora", rank=4, hidden_states=states, mode="bound")
    ranks = {int(k): v for k, v in adapter_config(bound)["layer_ranks"].items()}
    assert ranks == {0: max(1, math.ceil(bounds[0])), 1: max(1, math.ceil(bounds[1]))}
    with pytest.raises(AdapterError, match="sample texts"):
        apply_adapter(copy.deepcopy(base), "gelora")


# ----------------------------------------------------------------------------------------------------- diagnostics


def test_effective_rank_definition():
    assert effective_rank([3.0, 1.0, 0.0]) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))
    assert effective_rank([2.0, 2.0, 2.0, 2.0]) == pytest.approx(4.0)
    assert effective_rank([0.0, 0.0]) == 0.0


def test_spectra_match_the_merged_weight_change():
    base = tiny_encoder()
    model = copy.deepcopy(base)
    apply_adapter(model, "lora", rank=3)
    with torch.no_grad():
        for layer in adapted_layers(model).values():
            layer.lora_B.normal_(0, 0.1)
    spectra = adapter_spectra(model)
    x = torch.randn(7, 16)
    with torch.no_grad():
        before = model(x)
    merge_adapter(model)
    with torch.no_grad():
        assert max_diff(model(x), before) <= 1e-5
    for name, info in spectra.items():
        delta = model.get_submodule(name).weight.double() - base.get_submodule(name).weight.double()
        s = torch.linalg.svdvals(delta)
        assert max_diff(torch.tensor(info["singular_values"]), s) <= 1e-5
        assert info["effective_rank"] == pytest.approx(effective_rank(s), rel=1e-4)
        assert 1.0 < info["effective_rank"] <= 3.0 + 1e-6
        assert type(model.get_submodule(name)) is nn.Linear


# ----------------------------------------------------------------------------------------------------- every adapter


def _tiny_inputs(name, tmp_path, base):
    """The apply-time inputs a method declares (its config's ``inputs``), made for the tiny encoder."""
    inputs = method_info(name).config_class.inputs
    if "hidden_states" in inputs:
        return {"hidden_states": _levels([2, 2, 6])}
    if "sources" in inputs:
        return {"sources": _subspace_sources(tmp_path, base)[0]}
    return {}


@pytest.mark.parametrize("name", available_adapters())
def test_every_adapter_on_the_tiny_encoder(name, tmp_path):
    """Identity at init, only the adapter trains, save/load and checkpoint reload reproduce, merging is exact."""
    base = tiny_encoder()
    inputs = _tiny_inputs(name, tmp_path, base)
    generator = torch.Generator().manual_seed(0)
    x, target = torch.randn(8, 16, generator=generator), torch.randn(8, 16, generator=generator)
    with torch.no_grad():
        reference = base(x)
    model = copy.deepcopy(base)
    layers = apply_adapter(model, name, rank=4, **inputs)
    assert len(layers) == 8
    with torch.no_grad():
        assert max_diff(model(x), reference) <= 1e-5

    method = get_method(name)
    adapter_params = {id(p) for layer in layers for p in method.layer_trainable(layer)}
    assert {id(p) for p in trainable_parameters(model)} == adapter_params
    frozen = [(p, p.detach().clone()) for p in model.parameters() if id(p) not in adapter_params]
    optimizer = torch.optim.Adam(trainable_parameters(model), lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        F.mse_loss(model(x), target).backward()
        optimizer.step()
    assert all(torch.equal(p, old) for p, old in frozen)
    with torch.no_grad():
        trained = model(x)
    assert max_diff(trained, reference) > 1e-6

    directory = save_adapter(model, tmp_path / "adapter")
    loaded = copy.deepcopy(base)
    load_adapter(loaded, directory)
    again = copy.deepcopy(base)  # a checkpoint reload: the same adapter applied afresh, then its tensors
    apply_adapter(again, name, rank=4, **inputs)
    load_adapter_weights(again, directory)
    with torch.no_grad():
        assert max_diff(loaded(x), trained) <= 1e-6
        assert max_diff(again(x), trained) <= 1e-6

    merge_adapter(model)
    with torch.no_grad():
        assert max_diff(model(x), trained) <= 1e-5
    assert all(type(m) is nn.Linear for m in find_target_modules(model).values())


# ----------------------------------------------------------------------------------------------------- bad input


BASELINES = [name for name in available_methods() if not method_info(name).is_adapter]


@pytest.mark.parametrize("name", ["foo", "LoRA", ""])
def test_unknown_adapter_lists_the_known_ones(name):
    with pytest.raises(AdapterError) as err:
        apply_adapter(tiny_encoder(), name)
    message = str(err.value)
    assert f"unknown adapter {name!r}" in message
    for known in available_adapters():
        assert known in message
    assert "\n" not in message


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_are_not_adapters(name):
    assert BASELINES == ["none", "full"]
    with pytest.raises(AdapterError, match=f"'{name}' is a baseline that the training layer handles, not an adapter"):
        apply_adapter(tiny_encoder(), name)
    with pytest.raises(AdapterError, match="training layer"):
        get_method(name)


@pytest.mark.parametrize("rank", [0, -3, True, 2.5, "8", 17])
def test_bad_ranks_are_rejected(rank):
    with pytest.raises(AdapterError, match="rank"):
        apply_adapter(tiny_encoder(), "lora", rank=rank)  # 17 > min(d_in, d_out) = 16


@pytest.mark.parametrize("name, kwargs, message", [
    ("lora", {"colour": "red"}, "unknown option colour for adapter 'lora'; known: alpha"),
    ("gelora", {"colour": "red"}, "known: alpha, hidden_states, layer_ranks, max_tokens, mode, seed, texts"),
    ("hra", {"rank": 3}, "even rank"),
    ("hra", {"apply_gs": "yes"}, "option apply_gs of adapter 'hra' must be true or false"),
    ("smoa", {"rank": 2, "k": 3}, "rank ≥ k"),
    ("smoa", {"k": 17}, r"option k of adapter 'smoa' \(17\) exceeds min\(d_in, d_out\) = 16"),
    ("lora", {"alpha": -1}, "option alpha of adapter 'lora' must be a positive number, got -1"),
    ("dora", {"alpha": float("nan")}, "option alpha of adapter 'dora' must be a positive number"),
    ("orthogeolora", {"init": "cayley"}, "option init of adapter 'orthogeolora' must be one of haar, spectral"),
    ("gelora", {"mode": "max"}, "option mode of adapter 'gelora' must be one of budget, bound"),
    ("pica", {"shared": 1}, "option shared of adapter 'pica' must be true or false, got 1"),
    ("dora", {"rank_pattern": {"layers.*.nope": 2}}, "names 'layers.*.nope', which is not a target module type"),
    ("dora", {"rank_pattern": {"layers.*.query": 17}}, "dora rank 17 of layers.*.query is larger than"),
    ("vera", {"d_initial": "big"}, "option d_initial of adapter 'vera' must be a number"),
    ("lora", {"budget": "eight"}, "lora-rN"),
    ("gelora", {"budget": "lora-r2", "mode": "bound", "layer_ranks": {0: 1, 1: 1}}, "mode=bound chooses its own"),
])
def test_bad_options_are_rejected(name, kwargs, message):
    model = tiny_encoder()
    with pytest.raises(AdapterError, match=message):
        apply_adapter(model, name, **kwargs)
    assert count_trainable(model) == sum(p.numel() for p in model.parameters())  # nothing was applied
    assert all(type(m) is nn.Linear for m in find_target_modules(model).values())


def test_an_adapter_goes_on_once_and_comes_off_once():
    model = tiny_encoder()
    apply_adapter(model, "lora", rank=2)
    with pytest.raises(AdapterError, match="already has a 'lora' adapter"):
        apply_adapter(model, "pica")
    merge_adapter(model)
    with pytest.raises(AdapterError, match="no adapter"):
        merge_adapter(model)


def test_orthogeolora_batched_frames_give_the_same_gradients(monkeypatch):
    from elsst_bench.adapters import orthogeolora

    model = tiny_encoder()
    layers = apply_adapter(model, "orthogeolora", rank=3)
    with torch.no_grad():
        for layer in layers:
            layer.sigma.normal_()
    x = torch.randn(6, 16)
    calls = []
    real = orthogeolora.stiefel_frame
    monkeypatch.setattr(orthogeolora, "stiefel_frame", lambda raw: calls.append(raw.shape) or real(raw))

    def grads():
        for p in trainable_parameters(model):
            p.grad = None
        (model(x) ** 2).sum().backward()
        return [p.grad.clone() for p in trainable_parameters(model)]

    cached = grads()
    assert sorted(tuple(c) for c in calls) == [(4, 24, 3), (12, 16, 3)]  # one batched QR per frame shape
    copied = copy.deepcopy(model)  # no cached tensors are left on the modules
    orthogeolora.FrameCache.remove(model)
    calls.clear()
    direct = grads()
    assert len(calls) == 2 * len(layers)
    for a, b in zip(cached, direct):
        assert max_diff(a, b) <= 1e-5
    assert max_diff(copied(x), model(x)) <= 1e-6


def test_lora_options_rslora_and_gaussian():
    """rsLoRA's scale α/√r equals PEFT's use_rslora; the Gaussian init is PEFT's N(0, 1/r); both start at ΔW = 0
    (the other inits: tests/test_lora_inits.py)."""
    from peft import LoraConfig, inject_adapter_in_model

    model = tiny_encoder()
    layers = apply_adapter(model, "lora", rank=4, rslora=True, init="gaussian")
    reference = tiny_encoder()
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, use_rslora=True, init_lora_weights="gaussian",
                                       target_modules=[n for n in find_target_modules(reference)]), reference)
    peft_layer = next(m for m in reference.modules() if hasattr(m, "scaling") and isinstance(m.scaling, dict))
    assert layers[0].scaling == peft_layer.scaling["default"] == 8 / 2
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, generator=generator)
    with torch.no_grad():
        assert torch.equal(model(x), tiny_encoder()(x))  # B = 0: the identity at init
    stds = torch.cat([layer.lora_A.detach().flatten() for layer in layers]).std()
    assert abs(float(stds) - 1 / 4) < 0.03
