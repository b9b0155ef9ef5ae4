"""Options that follow the Once-for-All reference training code: constant-LR warm-up, weight decay
on the kernel transformation matrices, a frozen teacher normalizing with batch statistics."""

from __future__ import annotations

import pytest
import torch

from supernet.errors import ConfigError
from supernet.nn import create_supernet
from supernet.train import trainer as trainer_module
from supernet.train.rundir import config_digest
from supernet.train.schedule import lr_at


def test_constant_warmup_holds_the_lr_then_runs_the_cosine():
    lrs = [lr_at(s, 10, 0.4, 4, "constant") for s in range(10)]
    assert lrs[:4] == [0.4] * 4
    assert lrs[4] == pytest.approx(0.4)  # cosine over the 6 remaining steps starts at the top
    assert lrs[5] == pytest.approx(0.2 * (1 + torch.cos(torch.tensor(torch.pi / 6)).item()))
    assert lr_at(0, 10, 0.4, 4) == pytest.approx(0.1)  # linear (default) starts at base/4


def test_new_options_are_validated_and_keep_old_digests(tiny_config):
    base = tiny_config()
    assert config_digest(base) == config_digest(tiny_config(warmup="linear", teacher_norm="eval"))
    assert config_digest(base) != config_digest(tiny_config(warmup="constant"))
    with pytest.raises(ConfigError, match=r"warmup = 'cosine'; choose from \('linear', 'const"):
        tiny_config(warmup="cosine")
    with pytest.raises(ConfigError, match="teacher_norm"):
        tiny_config(teacher_norm="train")


def _decayed_names(config, model):
    opt = trainer_module._optimizer(model, config, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}


def test_kernel_transforms_are_decayed_only_when_asked(tiny_config):
    model = create_supernet("mbv3-tiny")
    transforms = {n for n, _ in model.named_parameters() if "transforms" in n}
    assert transforms
    assert not transforms & _decayed_names(tiny_config(), model)
    assert transforms <= _decayed_names(tiny_config(decay_kernel_transforms=True), model)


def test_batch_norm_teacher_uses_batch_statistics_without_dropout():
    torch.manual_seed(0)
    model = create_supernet("mbv3-tiny", dropout=0.5)
    with torch.no_grad():  # running stats far from any batch's
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.fill_(3.0)
    x = torch.randn(8, model.space.input_channels, 32, 32)
    eval_t = trainer_module._teacher(model)
    batch_t = trainer_module._teacher(model, "batch")
    with torch.no_grad():
        a, b, b2 = eval_t(x), batch_t(x), batch_t(x)
    assert not torch.allclose(a, b)  # batch statistics differ from the running ones
    torch.testing.assert_close(b, b2)  # no dropout: deterministic
    assert not any(m.training for m in batch_t.modules() if isinstance(m, torch.nn.Dropout))
