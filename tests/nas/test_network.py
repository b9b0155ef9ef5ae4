"""ProxylessNAS over-parameterized network, binary gates, α gradient estimate, expected latency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from supernet.errors import ConfigError, LatencyTableError
from supernet.nas import (
    SKIP,
    LatencyModel,
    MixedOp,
    ProxylessSupernet,
    candidate_ops,
    latency_loss,
    ops_to_config,
    skippable_slots,
)
from supernet.space import get_space

SPACE = get_space("mbv3-tiny")


@pytest.fixture(scope="module")
def net() -> ProxylessSupernet:
    torch.manual_seed(0)
    return ProxylessSupernet(SPACE, generator=torch.Generator().manual_seed(0))


def test_every_slot_has_every_mbconv_and_skip_only_beyond_the_smallest_depth(net):
    n_mb = len(SPACE.kernel_sizes) * len(SPACE.expand_ratios)
    skippable = skippable_slots(SPACE)
    assert skippable == [p >= 2 for _ in SPACE.stages for p in range(4)]
    for m, can_skip in zip(net.blocks, skippable, strict=True):
        assert m.num_ops == n_mb + can_skip
        assert (SKIP in m.ops) == can_skip
        kinds = {(p.depthwise[0].kernel_size[0], p.expand[0].out_channels) for p in m.paths
                 if not isinstance(p, nn.Identity)}  # fmt: skip
        assert len(kinds) == n_mb  # distinct kernel x width
    assert len(net.arch_parameters()) == SPACE.num_blocks
    n_weights = sum(1 for _ in net.weight_parameters())
    assert n_weights + SPACE.num_blocks == len(list(net.parameters()))


def test_weight_step_runs_exactly_one_path_per_slot(net):
    gen = torch.Generator().manual_seed(1)
    net.train()
    net.zero_grad(set_to_none=True)
    net.sample_one(gen)
    net(torch.randn(4, 1, 28, 28)).sum().backward()
    for m in net.blocks:
        with_grad = [i for i, p in enumerate(m.paths)
                     if any(q.grad is not None for q in p.parameters())]  # fmt: skip
        assert with_grad == ([] if m.is_skip(m.active) else [m.active])
        assert m.alpha.grad is None  # α is not trained by the weight step
    net.zero_grad(set_to_none=True)


def test_architecture_step_gates_are_binary_and_the_output_is_the_active_path(net):
    gen = torch.Generator().manual_seed(2)
    net.eval()
    x = torch.randn(2, 1, 28, 28)
    net.sample_two(gen)
    m = net.blocks[0]
    assert m.active != m.inactive
    h = net.first_block(net.stem(x))
    out = m(h)
    assert m.gates.tolist() == [1.0, 0.0]
    torch.testing.assert_close(out, m.paths[m.active](h), rtol=0, atol=0)
    # the inactive path holds no activations for backward
    out.sum().backward()
    assert all(q.grad is None for q in m.paths[m.inactive].parameters())
    assert m.gates.grad is not None and m.gates.grad[1] != 0
    net.zero_grad(set_to_none=True)


def test_sampling_follows_softmax_alpha():
    ops = [(3, 3), (5, 3), (7, 3)]
    m = MixedOp(ops, [nn.Identity() for _ in ops])
    with torch.no_grad():
        m.alpha.copy_(torch.tensor([0.0, 1.0, 2.0]))
    gen = torch.Generator().manual_seed(0)
    counts = np.zeros(3)
    for _ in range(3000):
        m.sample_one(gen)
        counts[m.active] += 1
    np.testing.assert_allclose(counts / 3000, torch.softmax(m.alpha, 0).detach(), atol=0.03)


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return self.factor * x


def _toy_alpha_grad(steps: int = 400) -> torch.Tensor:
    """Mean estimated α gradient on a toy problem: fit y = x; path 0 computes x (perfect),
    path 1 computes -x, path 2 computes 0.5 x."""
    torch.manual_seed(0)
    m = MixedOp([(3, 3), (5, 3), (7, 3)], [_Scale(1.0), _Scale(-1.0), _Scale(0.5)])
    gen = torch.Generator().manual_seed(0)
    total = torch.zeros(3)
    for _ in range(steps):
        x = torch.randn(8, 4)
        m.alpha.grad = None
        m.sample_two(gen)
        ((m(x) - x) ** 2).mean().backward()
        m.set_alpha_grad()
        total += m.alpha.grad
    return total / steps


def test_alpha_gradient_estimate_favours_the_better_op():
    grad = _toy_alpha_grad()
    assert grad[0] < 0  # descending raises α of the op that fits
    assert grad[1] > 0  # and lowers the worst one's
    assert grad[1] > grad[2]


def test_a_few_adam_steps_make_the_better_op_most_likely_and_keep_others():
    m = MixedOp([(3, 3), (5, 3), (7, 3)], [_Scale(1.0), _Scale(-1.0), _Scale(0.5)])
    opt = torch.optim.Adam([m.alpha], lr=0.05, betas=(0.0, 0.999))
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        x = torch.randn(8, 4)
        opt.zero_grad()
        m.sample_two(gen)
        before = torch.softmax(m.alpha.detach(), 0)
        ((m(x) - x) ** 2).mean().backward()
        m.set_alpha_grad()
        opt.step()
        m.rescale_alpha()
        after = torch.softmax(m.alpha.detach(), 0)
        untouched = ({0, 1, 2} - {m.active, m.inactive}).pop()
        torch.testing.assert_close(after[untouched], before[untouched])  # rescaled
    assert m.chosen() == 0
    assert torch.softmax(m.alpha, 0)[0] > 0.6


def test_skip_active_leaves_alpha_without_gradient():
    m = MixedOp([(3, 3), SKIP], [_Scale(2.0), nn.Identity()])
    with torch.no_grad():
        m.alpha.copy_(torch.tensor([-30.0, 30.0]))  # skip is (almost) certain to be active
    m.sample_two(torch.Generator().manual_seed(0))
    assert m.is_skip(m.active)
    x = torch.randn(3, 2, requires_grad=True)
    m(x).sum().backward()
    m.set_alpha_grad()
    assert m.alpha.grad is None


def test_set_alpha_grad_needs_an_architecture_step():
    m = MixedOp([(3, 3), (5, 3)], [_Scale(1.0), _Scale(2.0)])
    m.sample_one(torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="sample_two"):
        m.set_alpha_grad()


# --- derived config and latency -------------------------------------------------------------------
def _random_ops(seed: int) -> list:
    rng = np.random.default_rng(seed)
    ops, skippable = candidate_ops(SPACE), skippable_slots(SPACE)
    return [ops[rng.integers(len(ops) - (not s))] for s in skippable]


def test_derived_config_keeps_the_order_of_the_kept_blocks():
    ops = [(3, 3), (5, 4), SKIP, (7, 6)] + [(3, 3)] * 4 + [(5, 6), (5, 6), SKIP, SKIP] + [
        (7, 4)] * 8  # fmt: skip
    config = ops_to_config(SPACE, ops, 28)
    assert config.depth == (3, 4, 2, 4, 4)
    assert config.kernel_size[:4] == (3, 5, 7, 3)  # the padded slot is inactive
    assert config.expand_ratio[:3] == (3, 4, 6)
    assert config.kernel_size[8:10] == (5, 5)
    with pytest.raises(ConfigError, match="smallest depth"):
        ops_to_config(SPACE, [SKIP] * 20, 28)


@pytest.mark.parametrize("seed", range(4))
def test_expected_latency_of_one_hot_probabilities_is_the_table_prediction(table, net, seed):
    model = LatencyModel.from_table(table, SPACE, 28)
    ops = _random_ops(seed)
    all_ops = candidate_ops(SPACE)
    one_hot = torch.zeros(SPACE.num_blocks, len(all_ops), dtype=torch.float64)
    for s, op in enumerate(ops):
        one_hot[s, all_ops.index(op)] = 1.0
    expected = float(model.expected_ms(one_hot))
    [predicted] = table.predict([ops_to_config(SPACE, ops, 28)])
    assert expected == pytest.approx(predicted, rel=1e-12)


def test_expected_latency_of_the_network_is_differentiable_and_matches_argmax(table):
    net = ProxylessSupernet(SPACE)
    with torch.no_grad():
        for m in net.blocks:
            m.alpha.zero_()
            m.alpha[torch.randint(m.num_ops, ())] = 60.0  # softmax is one-hot to 1e-26
    model = LatencyModel.from_table(table, SPACE, 24)
    e = model.expected_ms(net.probs_matrix())
    e.backward()
    assert all(m.alpha.grad is not None for m in net.blocks)
    [predicted] = table.predict([net.derive_config(24)])
    assert float(e.detach()) == pytest.approx(predicted, rel=1e-6)  # float32 probabilities


def test_bad_targets_name_both_bounds(table):
    model = LatencyModel.from_table(table, SPACE, 28)
    lo, hi = model.bounds_ms()
    assert lo < hi
    model.check_target(lo)
    model.check_target((lo + hi) / 2)
    for bad in (lo * 0.99, hi * 1.01, float("nan"), -1.0):
        with pytest.raises(ConfigError) as info:
            model.check_target(bad)
        assert f"fastest path {lo:.4f} ms" in str(info.value)
        assert f"slowest path {hi:.4f} ms" in str(info.value)


def test_a_table_of_another_space_is_refused(make_table):
    other = make_table("proxyless-tiny")
    with pytest.raises(LatencyTableError, match="built for space 'proxyless-tiny'"):
        LatencyModel.from_table(other, SPACE, 28)
    with pytest.raises(ConfigError, match="resolution = 30"):
        LatencyModel.from_table(make_table(), SPACE, 30)


def test_latency_loss_forms():
    ce, e = torch.tensor(2.0), torch.tensor(3.0, requires_grad=True)
    assert float(latency_loss(ce, e, 2.0).detach()) == pytest.approx(2.0 + 0.1 * 0.5)
    mul = latency_loss(ce, e, 2.0, kind="mul#log")
    assert float(mul.detach()) == pytest.approx(0.2 * 2.0 * (np.log(3.0) / np.log(2.0)) ** 0.3)
    mul.backward()
    assert e.grad > 0  # slower costs more
    with pytest.raises(ConfigError, match="needs a target > 1 ms"):
        latency_loss(ce, e, 0.5, kind="mul#log")
    with pytest.raises(ConfigError, match="choose from"):
        latency_loss(ce, e, 2.0, kind="square")
