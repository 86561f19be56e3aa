"""Parameter initialisation: each scheme's statistics, biases, norms, recurrent gates, seeds."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nbaimaas.engine.init import initialize
from nbaimaas.engine.models import create_model
from nbaimaas.engine.types import DataInfo
from nbaimaas.specs import INIT_SCHEMES, InitSpec, ModelSpec

from .test_models import COMBOS, INFOS, batch, spec_for


def big_linear() -> nn.Linear:
    return nn.Linear(400, 300)                 # fan_in 400, fan_out 300: 120k samples


def weight_after(scheme: str, layer: nn.Module | None = None, seed: int = 0) -> torch.Tensor:
    layer = layer or big_linear()
    initialize(layer, InitSpec(scheme=scheme), seed)
    return layer.weight.detach()


def test_xavier_uniform_bound_and_spread():
    w = weight_after("xavier_uniform")
    bound = math.sqrt(6 / (400 + 300))
    assert w.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound                      # fills the whole range
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_xavier_normal_std():
    assert weight_after("xavier_normal").std().item() == pytest.approx(
        math.sqrt(2 / (400 + 300)), rel=0.03)


def test_kaiming_schemes_use_fan_in_and_relu_gain():
    std = math.sqrt(2 / 400)
    assert weight_after("kaiming_normal").std().item() == pytest.approx(std, rel=0.03)
    w = weight_after("kaiming_uniform")
    assert w.abs().max() <= math.sqrt(3) * std and w.abs().max() > 0.99 * math.sqrt(3) * std


def test_kaiming_on_conv_counts_the_kernel_in_fan_in():
    conv = nn.Conv2d(32, 64, 5)                               # fan_in 32 * 25
    w = weight_after("kaiming_normal", conv)
    assert w.std().item() == pytest.approx(math.sqrt(2 / (32 * 25)), rel=0.05)


def test_orthogonal_rows_are_orthonormal():
    w = weight_after("orthogonal")                            # [300, 400]: rows orthonormal
    assert torch.allclose(w @ w.T, torch.eye(300), atol=1e-4)


def test_default_keeps_torch_init_but_reproducibly():
    a, b = weight_after("default", seed=3), weight_after("default", seed=3)
    assert torch.equal(a, b)
    bound = 1 / math.sqrt(400)                                # torch's Linear default
    assert a.abs().max() <= bound and a.abs().max() > 0.99 * bound


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_bias_zero_or_default(scheme):
    layer = big_linear()
    initialize(layer, InitSpec(scheme=scheme, bias="zero"), 0)
    assert torch.count_nonzero(layer.bias) == 0
    initialize(layer, InitSpec(scheme=scheme, bias="default"), 0)
    assert torch.count_nonzero(layer.bias) > 0


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
def test_same_seed_same_parameters_different_seed_different(scheme):
    info = INFOS["text"]
    spec = InitSpec(scheme=scheme)
    models = [create_model(ModelSpec("transformer"), info) for _ in range(3)]
    for model, seed in zip(models, (7, 7, 8)):
        initialize(model, spec, seed)
    same, other = (list(m.state_dict().values()) for m in models[1:])
    first = list(models[0].state_dict().values())
    assert all(torch.equal(a, b) for a, b in zip(first, same))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_global_rng_is_left_alone():
    model = create_model(ModelSpec("lstm"), INFOS["series"])
    state = torch.random.get_rng_state()
    initialize(model, InitSpec(scheme="default"), 0)
    initialize(model, InitSpec(scheme="xavier_uniform"), 0)
    assert torch.equal(state, torch.random.get_rng_state())


def test_recurrent_weights_per_gate_and_forget_bias():
    lstm = nn.LSTM(16, 32, num_layers=2)
    report = initialize(lstm, InitSpec(scheme="xavier_uniform", recurrent="orthogonal"), 0)
    assert report["layers"] == {"LSTM": 1}
    for layer in range(2):
        for gate in lstm.get_parameter(f"weight_hh_l{layer}").detach().chunk(4):
            assert torch.allclose(gate @ gate.T, torch.eye(32), atol=1e-4)
        bias_ih = lstm.get_parameter(f"bias_ih_l{layer}").detach()
        assert torch.equal(bias_ih.chunk(4)[1], torch.ones(32))          # forget gate
        assert torch.count_nonzero(torch.cat([bias_ih[:32], bias_ih[64:]])) == 0
        assert torch.count_nonzero(lstm.get_parameter(f"bias_hh_l{layer}")) == 0
    w_ih = lstm.weight_ih_l0.detach()                                    # [4*32, 16]
    assert w_ih.abs().max() <= math.sqrt(6 / (16 + 32))                  # per-gate fans
    gru = nn.GRU(8, 8)
    initialize(gru, InitSpec(recurrent="orthogonal"), 0)
    for gate in gru.weight_hh_l0.detach().chunk(3):
        assert torch.allclose(gate @ gate.T, torch.eye(8), atol=1e-4)
    assert torch.count_nonzero(gru.bias_ih_l0) == 0


def test_norms_embeddings_and_report():
    model = nn.Sequential(nn.Embedding(50, 8, padding_idx=0), nn.Flatten(),
                          nn.Linear(32, 16), nn.BatchNorm1d(16), nn.LayerNorm(16),
                          nn.Linear(16, 4))
    with torch.no_grad():
        model[3].weight.fill_(3.0)
        model[4].bias.fill_(2.0)
    report = initialize(model, InitSpec(scheme="kaiming_uniform"), 0)
    assert report["scheme"] == "kaiming_uniform"
    assert report["layers"] == {"BatchNorm1d": 1, "Embedding": 1, "LayerNorm": 1, "Linear": 2}
    assert torch.equal(model[3].weight, torch.ones(16)) and torch.equal(model[4].bias, torch.zeros(16))
    emb = model[0].weight.detach()
    assert torch.count_nonzero(emb[0]) == 0                           # pad row stays zero
    assert emb[1:].std().item() == pytest.approx(1.0, rel=0.25)


def test_report_counts_layers_of_a_catalog_model():
    model = create_model(ModelSpec("lenet"), INFOS["image8"])
    assert initialize(model, InitSpec(scheme="xavier_normal"), 0)["layers"] == {
        "Conv2d": 2, "Linear": 3}


@pytest.mark.parametrize("scheme", [s for s in INIT_SCHEMES if s != "default"])
@pytest.mark.parametrize("arch,key", COMBOS)
def test_every_catalog_model_stays_finite(arch, key, scheme):
    info: DataInfo = INFOS[key]
    model = create_model(spec_for(arch, info), info)
    initialize(model, InitSpec(scheme=scheme), 0)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(batch(info)[0])).all()
