"""The model catalog: every architecture x every dataset shape it claims to fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nbaimaas.engine.models import (
    ARCHITECTURES, Catalog, create_model, list_architectures, summary, wrap_module,
)
from nbaimaas.engine.types import DataInfo
from nbaimaas.errors import IncompatibleError, SpecError, UnknownNameError
from nbaimaas.results import ArchInfo, ModelSummary
from nbaimaas.specs import ModelSpec

INFOS = {
    "image8": DataInfo("digits", "image", "classification", [1, 8, 8], 10),
    "image28": DataInfo("mnist", "image", "classification", [1, 28, 28], 10),
    "image32": DataInfo("cifar", "image", "classification", [3, 32, 32], 10),
    "tab_cls": DataInfo("iris", "tabular", "classification", [4], 3),
    "tab_reg": DataInfo("diabetes", "tabular", "regression", [10], 1),
    "series": DataInfo("airline", "series", "forecast", [24, 1], 3),
    "text": DataInfo("news", "text", "classification", [48], 4, vocab_size=500),
}

# arch="layers" needs a layer list; one example per modality keeps it in the catalog-wide tests.
LAYERS = {
    "image": [{"type": "conv2d", "out": 8, "kernel": 3, "padding": 1}, {"type": "relu"},
              {"type": "maxpool2d", "kernel": 2}, {"type": "batchnorm2d"}, {"type": "flatten"},
              {"type": "linear", "out": 32}, {"type": "relu"}, {"type": "dropout", "p": 0.1},
              {"type": "linear"}],
    "tabular": [{"type": "linear", "out": 16}, {"type": "batchnorm1d"}, {"type": "gelu"},
                {"type": "linear"}],
    "series": [{"type": "permute", "dims": [0, 2, 1]}, {"type": "conv1d", "out": 4, "kernel": 3},
               {"type": "tanh"}, {"type": "permute", "dims": [0, 2, 1]},
               {"type": "gru", "out": 8}, {"type": "layernorm"}, {"type": "linear"}],
    "text": [{"type": "embedding", "out": 16}, {"type": "lstm", "out": 16},
             {"type": "sigmoid"}, {"type": "linear"}],
}


def spec_for(arch: str, info: DataInfo) -> ModelSpec:
    if arch == "layers":
        return ModelSpec("layers", layers=LAYERS[info.modality])
    return ModelSpec(arch)


def batch(info: DataInfo, n: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if info.modality == "text":
        x = torch.randint(2, info.vocab_size, (n, *info.input_shape), generator=g)
        lengths = torch.randint(1, info.input_shape[0] + 1, (n,), generator=g)
        x[torch.arange(info.input_shape[0])[None, :] >= lengths[:, None]] = 0  # right padding
    else:
        x = torch.randn(n, *info.input_shape, generator=g)
    if info.task == "classification":
        y = torch.randint(0, info.n_outputs, (n,), generator=g)
    else:
        y = torch.randn(n, info.n_outputs, generator=g)
    return x, y


def loss_of(model, info, x, y):
    out = model(x)
    if info.task == "classification":
        return nn.functional.cross_entropy(out, y)
    return nn.functional.mse_loss(out, y)


COMBOS = [pytest.param(e.name, key, id=f"{e.name}-{key}")
          for e in ARCHITECTURES for key, info in INFOS.items() if e.fits(info)]


def test_every_architecture_is_tested_and_every_info_has_a_model():
    assert {c.values[0] for c in COMBOS} == set(ARCHITECTURES.names())
    assert {c.values[1] for c in COMBOS} == set(INFOS)


@pytest.mark.parametrize("arch,key", COMBOS)
def test_builds_with_the_right_output_shape(arch, key):
    info = INFOS[key]
    x, _ = batch(info)
    model = create_model(spec_for(arch, info), info)
    assert model(x).shape == (8, info.n_outputs)


@pytest.mark.parametrize("arch,key", COMBOS)
def test_a_few_adam_steps_lower_the_loss(arch, key):
    info = INFOS[key]
    torch.manual_seed(0)
    model = create_model(spec_for(arch, info), info)
    x, y = batch(info)

    def measured():
        # train mode (batch-norm uses this batch) with a fixed dropout mask, no update
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(1)
            return loss_of(model.train(), info, x, y).item()

    before = measured()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        loss_of(model.train(), info, x, y).backward()
        opt.step()
    assert measured() < before


@pytest.mark.parametrize("arch,key", COMBOS)
def test_state_dict_loads_into_a_fresh_build(arch, key):
    info = INFOS[key]
    spec = spec_for(arch, info)
    trained = create_model(spec, info)
    with torch.no_grad():  # make the weights differ from any fresh build
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    fresh = create_model(ModelSpec.from_json(spec.to_json()), DataInfo.from_dict(info.to_dict()))
    fresh.load_state_dict(trained.state_dict())
    x, _ = batch(info)
    with torch.no_grad():
        assert torch.equal(trained.eval()(x), fresh.eval()(x))


@pytest.mark.parametrize("arch,key", COMBOS)
def test_summary_counts_every_parameter_once(arch, key):
    info = INFOS[key]
    model = create_model(spec_for(arch, info), info)
    s = summary(model, info)
    assert isinstance(s, ModelSummary)
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.trainable_params == s.total_params
    assert sum(r["params"] for r in s.rows) == s.total_params
    assert model.training  # summary leaves the mode as it found it


def test_summary_rows_shapes_and_rendering():
    info = INFOS["image8"]
    model = create_model(ModelSpec("lenet"), info)
    model.features[0].weight.requires_grad_(False)
    s = summary(model, info)
    first = s.rows[0]
    assert first == {"layer": "features.0", "type": "Conv2d", "output": [6, 8, 8], "params": 156}
    assert s.rows[-1]["output"] == [10]
    assert s.trainable_params == s.total_params - 150
    text = str(s)
    assert "features.0" in text and "(N, 6, 8, 8)" in text and f"{s.total_params:,}" in text
    assert "<table" in s._repr_html_()
    assert ModelSummary.from_dict(s.to_dict()) == s


def test_incompatible_architecture_says_what_fits():
    with pytest.raises(IncompatibleError) as e:
        create_model(ModelSpec("lstm"), INFOS["tab_cls"])
    msg = str(e.value)
    assert "architecture 'lstm' fits series/text data" in msg
    assert "dataset 'iris' is tabular classification" in msg
    assert "try: mlp" in msg
    with pytest.raises(IncompatibleError, match="try: .*lenet"):
        create_model(ModelSpec("transformer"), INFOS["image8"])


def test_unknown_architecture_and_option():
    with pytest.raises(UnknownNameError, match="did you mean 'lenet'"):
        create_model(ModelSpec("lenett"), INFOS["image8"])
    with pytest.raises(SpecError, match="did you mean 'hidden'.*valid options: activation, dropout"):
        create_model(ModelSpec("mlp", options={"hiden": [64]}), INFOS["tab_cls"])
    with pytest.raises(SpecError, match="option 'dropout'"):
        create_model(ModelSpec("mlp", options={"dropout": "lots"}), INFOS["tab_cls"])
    with pytest.raises(UnknownNameError, match="activation 'relu6'"):
        create_model(ModelSpec("mlp", options={"activation": "relu6"}), INFOS["tab_cls"])
    with pytest.raises(SpecError, match="divisible"):
        create_model(ModelSpec("transformer", options={"nhead": 5}), INFOS["text"])
    with pytest.raises(SpecError, match="only used with arch 'layers'"):
        create_model(ModelSpec("mlp", layers=[{"type": "linear"}]), INFOS["tab_cls"])


def test_options_override_defaults():
    info = INFOS["tab_cls"]
    model = create_model(ModelSpec("mlp", options={"hidden": [32, 16], "dropout": 0.2,
                                                   "activation": "tanh"}), info)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [32, 16, 3]
    assert any(isinstance(m, nn.Tanh) for m in model.modules())
    wide = create_model(ModelSpec("resnet", options={"width": 8, "blocks": 2}), INFOS["image32"])
    assert wide(batch(INFOS["image32"], 2)[0]).shape == (2, 10)
    lstm = create_model(ModelSpec("lstm", options={"hidden": 16, "layers": 2}), INFOS["series"])
    assert lstm.rnn.num_layers == 2 and lstm.rnn.hidden_size == 16


def test_catalog_listing_and_registration():
    names = ARCHITECTURES.names()
    assert {"mlp", "lenet", "resnet", "lstm", "gru", "embedding_bag", "bilstm", "transformer",
            "layers"} <= set(names)
    text = list_architectures(task="classification", modality="text")
    assert all(isinstance(a, ArchInfo) for a in text)
    assert {a.name for a in text} == {"lstm", "gru", "embedding_bag", "bilstm", "transformer",
                                      "layers"}
    assert "<table" in text._repr_html_()
    assert {a.name for a in list_architectures(task="forecast")} == {"mlp", "lstm", "gru", "layers"}
    assert len(list_architectures()) == len(names)
    with pytest.raises(UnknownNameError, match="did you mean 'forecast'"):
        list_architectures(task="forcast")

    cat = Catalog()

    @cat.register("tiny", family="mlp", modalities=("tabular",), tasks=("regression",),
                  description="one linear layer")
    def tiny(info, *, bias: bool = True):
        return nn.Linear(info.input_shape[0], info.n_outputs, bias=bias)

    assert cat.names() == ["tiny"] and cat.get("tiny").options() == {"bias": True}
    with pytest.raises(ValueError, match="registered twice"):
        cat.register("tiny", family="mlp", modalities=("tabular",), tasks=("regression",),
                     description="")(tiny)
    with pytest.raises(UnknownNameError, match="did you mean 'tiny'"):
        cat.get("tin")


def test_text_models_ignore_padding_and_survive_all_pad_rows():
    info = INFOS["text"]
    x = torch.zeros(3, 48, dtype=torch.int64)
    x[0, :5] = torch.tensor([5, 6, 7, 8, 9])
    x[1, :5] = torch.tensor([5, 6, 7, 8, 9])
    x[1, 5:] = 0                                     # same tokens, same padding
    for arch in ("lstm", "gru", "embedding_bag", "bilstm", "transformer"):
        torch.manual_seed(0)
        model = create_model(ModelSpec(arch), info).eval()
        with torch.no_grad():
            out = model(x)                           # row 2 is all padding
            short = model(x[:1, :10])                # same text, less padding
        assert torch.isfinite(out).all(), arch
        assert torch.allclose(out[0], short[0], atol=1e-5), arch


def test_lenet_and_resnet_shapes_across_image_sizes():
    for key in ("image8", "image28", "image32"):
        info = INFOS[key]
        for arch in ("lenet", "resnet"):
            assert create_model(ModelSpec(arch), info)(batch(info, 2)[0]).shape == (2, 10)
    with pytest.raises(IncompatibleError, match="at least 4x4"):
        create_model(ModelSpec("lenet"), DataInfo("tiny", "image", "classification", [1, 3, 3], 2))


# --- arch="layers" -----------------------------------------------------------------------

def layers_model(layers, key):
    return create_model(ModelSpec("layers", layers=layers), INFOS[key])


def test_layers_infer_sizes_without_lazy_modules():
    model = layers_model(LAYERS["image"], "image28")
    assert not any(isinstance(m, nn.modules.lazy.LazyModuleMixin) for m in model.modules())
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears[0].in_features == 8 * 14 * 14 and linears[-1].out_features == 10
    assert isinstance(model[6], nn.ReLU) and isinstance(model[7], nn.Dropout)


@pytest.mark.parametrize("layers,key,match", [
    ([{"type": "linear", "outt": 4}, {"type": "linear"}], "tab_cls",
     r"layer 0 \(linear\): unknown key 'outt' \(did you mean 'out'\?\)"),
    ([{"type": "linear"}, {"type": "relu"}, {"type": "linear"}], "tab_cls",
     r"layer 0 \(linear\): needs 'out' \(only the last linear may omit it\)"),
    ([{"type": "conv2d", "out": 4}, {"type": "linear"}], "tab_cls",
     r"layer 0 \(conv2d\) on input \(N, 4\): expects \[N, C, H, W\] input"),
    ([{"type": "conv2d", "out": 4, "kernel": 3}, {"type": "relu"}], "image8",
     r"the layers end with shape \(N, 4, 6, 6\); this data needs \(N, 10\)"),
    ([{"type": "linear", "out": 8}, {"type": "linear"}], "text",
     "start the layers with {'type': 'embedding'"),
    ([{"type": "embedding"}, {"type": "flatten"}, {"type": "linear"}], "tab_cls",
     r"layer 0 \(embedding\).*needs text"),
    ([{"type": "maxpool2d", "kernel": 16}, {"type": "flatten"}, {"type": "linear"}], "image8",
     r"layer 0 \(maxpool2d\) on input \(N, 1, 8, 8\)"),
    ([{"type": "linear", "out": -3}, {"type": "linear"}], "tab_cls",
     r"layer 0 \(linear\): 'out' must be a positive integer"),
    (["relu", {"type": "linear"}], "tab_cls", r"layer 0: needs a mapping with a 'type'"),
])
def test_layers_errors_point_at_the_layer(layers, key, match):
    with pytest.raises(SpecError, match=match):
        layers_model(layers, key)


def test_layers_unknown_type_suggests_the_closest():
    with pytest.raises(UnknownNameError,
                       match=r"layer 1: unknown layer type 'lineer' \(did you mean 'linear'\?\)"):
        layers_model([{"type": "flatten"}, {"type": "lineer", "out": 3}], "tab_cls")


# --- wrap_module -------------------------------------------------------------------------

def test_wrap_module_accepts_a_fitting_module():
    info = INFOS["image8"]
    mine = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert wrap_module(mine, info) is mine


def test_wrap_module_rejects_wrong_shapes_and_failures():
    info = INFOS["image8"]
    with pytest.raises(IncompatibleError, match=r"returns shape \(2, 5\); this data needs \(2, 10\)"):
        wrap_module(nn.Sequential(nn.Flatten(), nn.Linear(64, 5)), info)
    with pytest.raises(IncompatibleError, match=r"fails on a batch shaped \(2, 1, 8, 8\)"):
        wrap_module(nn.Linear(3, 10), info)
    with pytest.raises(IncompatibleError, match="expected a torch.nn.Module"):
        wrap_module(lambda x: x, info)


# --- quality bar ------------------------------------------------------------------------

@pytest.mark.slow
def test_lenet_reaches_95_percent_on_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    idx = np.arange(len(x))
    train, rest = train_test_split(idx, test_size=0.3, stratify=y, random_state=0)
    _, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=0)
    mean, std = x[train].mean(), x[train].std()

    def tensors(i):
        return (torch.tensor((x[i] - mean) / std, dtype=torch.float32).view(-1, 1, 8, 8),
                torch.tensor(y[i]))

    (xtr, ytr), (xte, yte) = tensors(train), tensors(test)
    torch.manual_seed(0)
    model = create_model(ModelSpec("lenet"), INFOS["image8"])
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        for start in range(0, len(perm), 64):
            j = perm[start:start + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xtr[j]), ytr[j]).backward()
            opt.step()
    with torch.no_grad():
        accuracy = (model.eval()(xte).argmax(1) == yte).float().mean().item()
    assert accuracy >= 0.95
