"""LoRA's initialisations (``lora`` option ``init``): each factor pair against an independent computation (PEFT's own
initialisation where PEFT's arithmetic can be reproduced, numpy on inputs this test collects itself otherwise); the
lifecycle of each (identity at init, save/load, merge, only A and B train) is tests/test_adapters_model.py's matrix,
the PEFT export of a residual init tests/test_peft_export.py's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adapter_fixtures import PAIRS, TEXTS, fresh_default, one_intra_op_thread, tiny_encoder
from elsst_bench.adapters import adapted_layers, apply_adapter, method_info
from elsst_bench.adapters.configs import LORA_INIT_NAMES, LORA_INITS_READING_PAIRS, LORA_INITS_READING_TEXTS
from elsst_bench.adapters.lora_inits import LORA_INITS, LOSS_SCALE, TOKENS
from elsst_bench.adapters.targets import find_target_modules, inner_model
from elsst_bench.errors import AdapterError

SAMPLE = TEXTS + [t for pair in PAIRS for t in pair]
PROBE = ("encoder.layer.0.attention.self.query", "encoder.layer.3.output.dense")  # d_in 384 and 1536


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_intra_op_thread():
        yield


def test_the_init_names_are_the_classes():
    from elsst_bench.training.recipes import SCALE

    assert tuple(LORA_INITS) == LORA_INIT_NAMES
    assert tuple(n for n, cls in LORA_INITS.items() if cls.reads == "inputs") == LORA_INITS_READING_TEXTS
    assert tuple(n for n, cls in LORA_INITS.items() if cls.reads == "gradients") == LORA_INITS_READING_PAIRS
    assert LOSS_SCALE == SCALE  # LoRA-GA's gradient is the plain recipe's loss's


def test_only_the_inits_that_read_the_data_are_handed_texts():
    info = method_info("lora")
    anchors = [f"query {i:04d}" for i in range(2000)]
    positives = [f"concept {i:04d}" for i in range(2000)]
    for init in LORA_INIT_NAMES:
        given = info.training_inputs(anchors, [], {"init": init}, positives=positives)
        assert (init in LORA_INITS_READING_TEXTS + LORA_INITS_READING_PAIRS) == bool(given)
    pairs = info.training_inputs(anchors, [], {"init": "lora-ga"}, positives=positives)["pairs"]
    assert pairs == list(zip(anchors, positives))[::7][:256]  # an even spread of aligned pairs
    texts = info.training_inputs(anchors, [], {"init": "eva"})["texts"]
    assert texts == sorted(set(anchors))[::3][:512]  # the even spread GeLoRA gets too
    assert info.training_inputs(anchors, [], {"init": "eva", "texts": ["mine"]}) == {}  # the caller's own


def _inputs_by_hand(model, names) -> dict[str, np.ndarray]:
    """Each probed layer's inputs over the real tokens of SAMPLE, collected with this test's own hooks."""
    root = inner_model(model)
    got: dict[str, list] = {n: [] for n in names}
    handles = [root.get_submodule(n).register_forward_hook(
        lambda module, args, output, n=n: got[n].append(args[0].detach())) for n in names]
    features = model.preprocess(list(SAMPLE))
    with torch.no_grad():
        root(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
             **({"token_type_ids": features["token_type_ids"]} if "token_type_ids" in features else {}))
    for h in handles:
        h.remove()
    mask = features["attention_mask"].bool()
    assert int(mask.sum()) < TOKENS  # every token is in the statistics
    return {n: torch.cat(got[n])[mask].double().numpy() for n in names}


def test_olora_factors_are_peft_olora_init():
    from peft import LoraConfig, inject_adapter_in_model

    ours = apply_adapter(tiny_encoder(), "lora", rank=4, init="olora")
    reference = tiny_encoder()
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=8, init_lora_weights="olora",
                                       target_modules=list(find_target_modules(reference))), reference)
    peft_layers = [m for m in reference.modules() if hasattr(m, "lora_A") and isinstance(m.scaling, dict)]
    assert len(peft_layers) == len(ours)
    for layer, peft_layer in zip(ours, peft_layers):
        assert torch.equal(layer.lora_A0, peft_layer.lora_A["default"].weight)
        assert torch.equal(layer.lora_B0, peft_layer.lora_B["default"].weight)
        with torch.no_grad():  # the same trained A, B: our W0 + s(BA − B0A0) is PEFT's (W0 − sB0A0) + sBA
            layer.lora_A.add_(0.01)
            peft_layer.lora_A["default"].weight.add_(0.01)
        x = torch.randn(5, layer.in_features, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            assert (layer(x) - peft_layer(x)).abs().max() <= 1e-5


def test_eva_takes_the_top_principal_directions_of_each_layers_inputs():
    model = fresh_default()
    inputs = _inputs_by_hand(model, PROBE)
    apply_adapter(model, "lora", rank=8, init="eva", texts=SAMPLE)
    layers = adapted_layers(model)
    for name in PROBE:
        a = layers[name].lora_A.detach().double().numpy()
        x = inputs[name] - inputs[name].mean(0)
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        overlap = np.abs(a @ vt[:8].T)  # rows equal up to sign: |cos| = 1 on the diagonal
        np.testing.assert_allclose(overlap, np.eye(8), atol=1e-4)
        assert float(layers[name].lora_B.detach().abs().max()) == 0.0


def test_corda_factors_follow_the_covariance_of_each_layers_inputs():
    """A0, B0 from the SVD of W0 C (C the inputs' second moment, damped), recomputed with numpy; the product B0 A0
    does not depend on the singular vectors' signs."""
    model = fresh_default()
    inputs = _inputs_by_hand(model, PROBE)
    weights = {n: inner_model(model).get_submodule(n).weight.detach().double().numpy() for n in PROBE}
    apply_adapter(model, "lora", rank=8, init="corda", texts=SAMPLE)
    layers = adapted_layers(model)
    for name in PROBE:
        x = inputs[name]
        cov = x.T @ x / len(x)
        damp = 0.01
        while True:
            fixed = cov + np.eye(len(cov)) * np.mean(np.diag(cov)) * damp
            inverse = np.linalg.inv(fixed)
            if np.linalg.norm(fixed @ inverse - np.eye(len(cov))) < 0.05:
                break
            damp *= 2
        u, s, vt = np.linalg.svd(weights[name] @ fixed, full_matrices=False)
        v = (vt @ inverse).T
        scaling = layers[name].scaling
        expected = (u[:, :8] * (s[:8] / scaling)) @ v[:, :8].T  # B0 A0 = U_r diag(S_r / s) V_rᵀ
        got = (layers[name].lora_B0 @ layers[name].lora_A0).double().numpy()
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
        assert torch.equal(layers[name].lora_A0, layers[name].lora_A.detach())  # training starts at A0, B0


def test_lora_ga_factors_come_from_the_svd_of_the_losss_gradient():
    """G recomputed through sentence-transformers' own MultipleNegativesRankingLoss (scale 20, one batch, eval mode):
    A0's rows are G's first r right singular vectors, B0's columns the next r left ones times σ · d_out^¼ / 4."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    reference = fresh_default()
    reference.eval()
    weights = {n: inner_model(reference).get_submodule(n).weight for n in PROBE}
    for p in reference.parameters():
        p.requires_grad_(False)
    for w in weights.values():
        w.requires_grad_(True)
    queries = dict(reference.preprocess([q for q, _ in PAIRS]))
    documents = dict(reference.preprocess([d for _, d in PAIRS]))
    MultipleNegativesRankingLoss(reference, scale=LOSS_SCALE)([queries, documents], torch.zeros(len(PAIRS))).backward()
    model = fresh_default()
    apply_adapter(model, "lora", rank=4, init="lora-ga", pairs=PAIRS)
    layers = adapted_layers(model)
    assert all(p.grad is None for p in model.parameters())  # nothing left behind
    for name in PROBE:
        u, s, vt = np.linalg.svd(weights[name].grad.double().numpy(), full_matrices=False)
        a = layers[name].lora_A0.double().numpy()
        b = layers[name].lora_B0.double().numpy()
        np.testing.assert_allclose(np.abs(a @ vt[:4].T), np.eye(4), atol=1e-3)
        d_out = b.shape[0]
        np.testing.assert_allclose(np.linalg.norm(b, axis=0), s[4:8] * d_out ** 0.25 / 4, rtol=1e-3)
        np.testing.assert_allclose(np.abs((b / np.linalg.norm(b, axis=0)).T @ u[:, 4:8]), np.eye(4), atol=1e-3)


def test_the_training_layer_hands_lora_ga_pairs_with_the_models_prompts():
    from elsst_bench.training.run import adapter_inputs

    class Prompted:
        prompts = {"query": "query: ", "passage": "passage: "}

    got = adapter_inputs(Prompted(), method_info("lora"), {"init": "lora-ga"}, ["a", "b"], ["x", "y"], [], None)
    assert got == {"pairs": [("query: a", "passage: x"), ("query: b", "passage: y")]}
    assert adapter_inputs(Prompted(), method_info("lora"), {"init": "eva"}, ["a", "b"], ["x", "y"], [], None) == \
        {"texts": ["a", "b"]}  # EVA reads the queries as they are (as GeLoRA does)


@pytest.mark.parametrize("init, needle", [
    ("loftq", "quantised base model"), ("pissa", "--adapter pissa"),
    ("kaiming", "must be one of default, gaussian, olora, eva, corda, lora-ga")])
def test_inits_not_offered_are_refused_with_the_reason(init, needle):
    with pytest.raises(AdapterError, match=needle):
        apply_adapter(tiny_encoder(), "lora", rank=4, init=init)


def test_an_init_that_reads_the_data_without_texts_is_refused():
    with pytest.raises(AdapterError, match="lora init 'eva' reads the layers' inputs over sample texts"):
        apply_adapter(fresh_default(), "lora", rank=8, init="eva")
    with pytest.raises(AdapterError, match="can read texts only through a SentenceTransformer"):
        apply_adapter(tiny_encoder(), "lora", rank=4, init="corda", texts=SAMPLE)
    with pytest.raises(AdapterError, match="lora init 'lora-ga' reads the loss's gradient over training pairs"):
        apply_adapter(fresh_default(), "lora", rank=8, init="lora-ga")
