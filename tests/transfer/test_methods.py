"""Transfer methods: trainable sets by name, new classifier, frozen BN statistics, bad input,
and a few Adam steps of every method reduce the loss."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from tests.transfer.helpers import NUM_CLASSES, RESOLUTION, make_subnet
from torch import nn

from supernet.errors import ConfigError
from supernet.nn import OFAMobileNetV3
from supernet.space import get_space
from supernet.transfer import (
    METHODS,
    FrozenBatchNorm2d,
    LiteResidualMBConv,
    build_transfer_model,
    trainable_parameter_names,
)

# parameter names of the conftest subnet (same for BN and GN: the norm is child 1 of ConvBNAct)
NORM_LAYERS = [
    "stem.1",
    "blocks.0.depthwise.1",
    "blocks.0.project.1",
    *[f"blocks.{i}.{part}.1" for i in (1, 2, 3) for part in ("expand", "depthwise", "project")],
    "final_expand.1",
]
NORM_WEIGHTS = [f"{n}.weight" for n in NORM_LAYERS]
NORM_BIASES = [f"{n}.bias" for n in NORM_LAYERS]
SE_BIASES = ["blocks.2.se.reduce.bias", "blocks.2.se.expand.bias"]
CLASSIFIER = ["classifier.weight", "classifier.bias"]
LITE = [
    f"blocks.{i}.lite_residual.{p}"
    for i in (1, 2, 3)
    for p in ("conv.weight", "norm.weight", "norm.bias", "project.weight", "final_norm.weight",
              "final_norm.bias")
]  # fmt: skip
LITE_FINAL_BIASES = [f"blocks.{i}.lite_residual.final_norm.bias" for i in (1, 2, 3)]

EXPECTED = {
    "last": CLASSIFIER,
    "norm+last": NORM_WEIGHTS + NORM_BIASES + CLASSIFIER,
    "bias+last": NORM_BIASES + SE_BIASES + CLASSIFIER,
    "tinytl-l": LITE + CLASSIFIER,
    "tinytl-l+b": [n for n in LITE if n not in LITE_FINAL_BIASES]
    + NORM_BIASES
    + SE_BIASES
    + CLASSIFIER,
}
EXPECTED_COUNTS = {"last": 2, "norm+last": 28, "bias+last": 17, "tinytl-l": 20, "tinytl-l+b": 32}


def build(subnet, method, **kw):
    kw.setdefault("generator", torch.Generator().manual_seed(0))
    return build_transfer_model(subnet, NUM_CLASSES, method, resolution=RESOLUTION, **kw)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "full"])
@pytest.mark.parametrize("efficient", [False, True])
def test_trainable_parameters_by_name(subnet, method, efficient):
    names = trainable_parameter_names(build(subnet, method, efficient=efficient))
    assert sorted(names) == sorted(EXPECTED[method])
    assert len(names) == EXPECTED_COUNTS[method]


def test_full_trains_everything(subnet):
    model = build(subnet, "full")
    names = trainable_parameter_names(model)
    assert names == [n for n, _ in model.named_parameters()]
    assert len(names) == 46  # 16 conv weights, 2 SE biases, 13 norms x 2, classifier x 2


def test_tinytl_lb_on_an_extracted_subnet():
    space = get_space("mbv3-tiny")
    subnet = OFAMobileNetV3(space).get_subnet(space.smallest())
    model = build_transfer_model(subnet, 3, "tinytl-l+b", resolution=20)
    wrapped = [b for b in model.blocks if isinstance(b, LiteResidualMBConv)]
    assert len(wrapped) == len(model.blocks) - 1 and not isinstance(
        model.blocks[0], type(wrapped[0])
    )
    expected = {
        n
        for n, _ in model.named_parameters()
        if n.startswith("classifier.")
        or (".lite_residual." in n and not n.endswith("final_norm.bias"))
        or (n.endswith(".bias") and ".lite_residual." not in n)
    }
    assert set(trainable_parameter_names(model)) == expected
    assert model(torch.randn(2, 1, 20, 20)).shape == (2, 3)


def test_new_classifier_and_dropout(subnet):
    model = build(subnet, "last", dropout=0.2)
    assert model.classifier.out_features == NUM_CLASSES
    assert model.classifier.in_features == subnet.classifier.in_features
    assert model.dropout.p == 0.2
    assert torch.all(model.classifier.bias == 0)
    assert model.classifier.weight.std().item() == pytest.approx(0.01, rel=0.3)


def test_subnet_is_not_changed(subnet):
    before = copy.deepcopy(subnet.state_dict())
    types = [type(m) for m in subnet.modules()]
    build(subnet, "tinytl-l+b", quantize_frozen=True)
    assert [type(m) for m in subnet.modules()] == types
    assert all(p.requires_grad for p in subnet.parameters())
    after = subnet.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_batch_norm_statistics_stay_frozen_in_train_mode(images):
    model = build(make_subnet("bn"), "norm+last", dropout=0.0)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(isinstance(m, FrozenBatchNorm2d) and not m.training for m in bns)
    stats = [m.running_mean.clone() for m in bns]
    model.train()
    train_out = model(images)
    assert all(not m.training for m in bns)
    assert all(torch.equal(s, m.running_mean) for s, m in zip(stats, bns, strict=True))
    torch.testing.assert_close(train_out, model.eval()(images), rtol=0, atol=0)


def test_unknown_method_lists_the_known_ones(subnet):
    with pytest.raises(ConfigError, match=r"'tinytl'.*full.*last.*norm\+last.*tinytl-l\+b"):
        build(subnet, "tinytl")


@pytest.mark.parametrize("num_classes", [1, 0, -3])
def test_too_few_classes(subnet, num_classes):
    with pytest.raises(ConfigError, match=rf"num_classes = {num_classes}\b"):
        build_transfer_model(subnet, num_classes, "last", resolution=RESOLUTION)


def test_wrong_input_channels(subnet):
    with pytest.raises(ConfigError, match=r"input channels = 3 .* 1-channel"):
        build(subnet, "last", input_channels=3)
    build(subnet, "last", input_channels=1)


@pytest.mark.parametrize("resolution", [0, 2.5])
def test_bad_resolution(subnet, resolution):
    with pytest.raises(ConfigError, match=f"resolution = {resolution}"):
        build_transfer_model(subnet, NUM_CLASSES, "last", resolution=resolution)


def _adam_losses(model, images, labels, steps=6, lr=1e-2):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    before = F.cross_entropy(model.eval()(images), labels).item()
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        opt.step()
    return before, F.cross_entropy(model.eval()(images), labels).item()


@pytest.mark.parametrize("method", METHODS)
def test_a_few_adam_steps_reduce_the_loss(subnet, images, labels, method):
    torch.manual_seed(0)  # dropout
    before, after = _adam_losses(build(subnet, method), images, labels)
    assert after < before - 0.05
