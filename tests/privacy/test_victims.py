"""Victims: the LeNet of setting (a), and TinyTL updates of a trained run's subnet (setting b)
that share exactly what each method trains and survive the attack's double backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from supernet.errors import ConfigError
from supernet.nn.blocks import SqueezeExcite
from supernet.privacy import (
    MAX_BATCH_SIZE,
    dlg_attack,
    gradient_distance,
    lenet_victim,
    make_lenet,
    shared_gradient,
    soft_cross_entropy,
    transfer_victim,
)
from supernet.privacy.differentiable import ComposedHardswish, make_twice_differentiable
from supernet.train import load_run
from supernet.transfer import METHODS, build_transfer_model, prepare_subnet
from supernet.transfer.targets import load_target


def test_lenet_has_the_papers_layout_and_init():
    model = make_lenet(in_channels=3, num_classes=100, image_size=32, seed=0)
    assert model.fc.in_features == 768  # the authors' CIFAR LeNet
    assert sum(isinstance(m, nn.Sigmoid) for m in model.modules()) == 3
    for p in model.parameters():
        assert float(p.detach().min()) >= -0.5 and float(p.detach().max()) <= 0.5
    with pytest.raises(ConfigError, match="image_size = 30 must be a multiple of 4"):
        make_lenet(image_size=30)


def test_lenet_victim_draws_digits_at_32_pixels():
    victim = lenet_victim(seed=1, batch_size=2, dataset="digits")
    assert victim.images.shape == (2, 1, 32, 32)
    assert float(victim.images.min()) >= 0.0 and float(victim.images.max()) <= 1.0
    assert victim.shared_names == tuple(n for n, _ in victim.model.named_parameters())
    with pytest.raises(ConfigError, match=f"batch size = 9 .* allowed: 1..{MAX_BATCH_SIZE}"):
        lenet_victim(batch_size=9, dataset="digits")
    with pytest.raises(ConfigError, match=r"dataset = 'cifar' is not known"):
        lenet_victim(dataset="cifar")


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run, device="cpu")


@pytest.mark.slow
def test_each_method_shares_what_it_trains(run):
    config = run.space.smallest()
    source = run.splits.train
    target = load_target(
        "digits",
        input_size=run.splits.input_size,
        input_channels=1,
        mean=source.mean,
        std=source.std,
    )
    base = prepare_subnet(run.supernet, config, target.splits.train, calib_images=500)
    for method in ("full", "last", "bias+last", "tinytl-l", "tinytl-l+b"):
        victim = transfer_victim(run, method, seed=0)
        expected = build_transfer_model(
            base, 10, method, resolution=config.resolution, efficient=False, quantize_frozen=False
        )
        trained = [n for n, p in expected.named_parameters() if p.requires_grad]
        assert list(victim.shared_names) == trained, method
        assert victim.images.shape == (1, 1, config.resolution, config.resolution)
    assert set(METHODS) >= {"full", "last", "bias+last", "tinytl-l", "tinytl-l+b"}
    with pytest.raises(ConfigError, match="method = 'lora' is not known"):
        transfer_victim(run, "lora")


@pytest.mark.slow
def test_a_tinytl_update_survives_the_double_backward(run):
    """At the true batch the attack's objective is zero, and its double backward runs through
    the subnet's (composed) hard activations, SE gates and lite residuals."""
    victim = transfer_victim(run, "tinytl-l+b", seed=0, subnet="smallest")
    model, names = victim.model, victim.shared_names
    shared = shared_gradient(model, victim.images, victim.labels, names)
    params = [dict(model.named_parameters())[n] for n in names]
    x = victim.images.clone().requires_grad_(True)
    loss = soft_cross_entropy(model(x), F.one_hot(victim.labels, victim.num_classes).float())
    grads = torch.autograd.grad(loss, params, create_graph=True)
    distance = gradient_distance(grads, list(shared.values()))
    assert float(distance.detach()) < 1e-10
    (distance + (x * 0.5).square().sum()).backward()
    assert x.grad is not None
    result = dlg_attack(
        model,
        shared,
        input_shape=x.shape,
        num_classes=victim.num_classes,
        iterations=1,
        max_inner_iterations=2,
    )
    assert len(result.distances) == 2
    assert result.images.shape == x.shape


def test_composed_hard_activations_match_pytorchs():
    x = torch.linspace(-5, 5, 101)
    assert torch.allclose(ComposedHardswish()(x), nn.functional.hardswish(x), atol=1e-6)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.Hardswish(), SqueezeExcite(4, 2))
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    before = model(x)
    assert make_twice_differentiable(model) == 2
    assert torch.allclose(model(x), before, atol=1e-6)
    (g,) = torch.autograd.grad(model(x).square().sum(), x, create_graph=True)
    g.sum().backward()  # the double backward PyTorch's hardswish/hardsigmoid lack
    assert x.grad is not None


def test_attack_cost_bench_reports_times_and_ratio():
    from benches.privacy_attack import attack_cost

    r = attack_cost(iterations=1, image_size=8)
    assert r["iterations"] == 1
    assert r["attack_s"] > 0 and r["step_s"] > 0
    assert r["attack_over_step"] == pytest.approx(r["attack_s"] / r["step_s"])
