"""AMC: channel pruning (MACs bookkeeping, least-squares refit), the budget-clipped environment,
budget parsing, and run_amc end to end on a tiny MobileNetV3."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from supernet.compress.amc import parse_macs_budget, run_amc, uniform_policy
from supernet.compress.amc_env import ChannelPruningEnv, clip_channels, min_channels
from supernet.compress.channel_prune import (
    PrunableBlock,
    collect_features,
    find_prunable_blocks,
    policy_macs,
    prune_subnet,
)
from supernet.cost import measure_macs
from supernet.errors import ConfigError
from supernet.nn import ConvBNAct, MBConv, MobileNetV3

RES, CLASSES = 12, 4


def tiny_mobilenet(seed: int = 0) -> MobileNetV3:
    """Three prunable blocks (SE, stride 2, residual) plus a first block without expand conv."""
    torch.manual_seed(seed)
    blocks = [
        MBConv(8, 8, kernel_size=3, stride=1, mid_channels=8, act="relu", expand=False),
        MBConv(8, 8, kernel_size=3, stride=1, mid_channels=24, act="relu", se_mid_channels=8),
        MBConv(8, 16, kernel_size=5, stride=2, mid_channels=32, act="h_swish"),
        MBConv(16, 16, kernel_size=3, stride=1, mid_channels=48, act="h_swish", se_mid_channels=8),
    ]
    model = MobileNetV3(
        ConvBNAct(1, 8, 3, stride=2, act="h_swish"),
        blocks,
        ConvBNAct(16, 32, 1, act="h_swish"),
        nn.Sequential(nn.Conv2d(32, 48, 1, bias=False), nn.Hardswish()),
        nn.Linear(48, CLASSES),
    )
    for m in model.modules():  # BN statistics that are not the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def batches(n: int, seed: int, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Class k = a bright blob in image quadrant k, plus noise."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = torch.randint(0, CLASSES, (size,), generator=g)
        x = 0.5 * torch.randn(size, 1, RES, RES, generator=g)
        for i, k in enumerate(y.tolist()):
            r, c = divmod(k, 2)
            x[i, 0, r * 6 : r * 6 + 6, c * 6 : c * 6 + 6] += 1.5
        out.append((x, y))
    return out


def top1(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in data)
    return 100.0 * hits / sum(len(y) for _, y in data)


def finetune(model: nn.Module, steps: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for x, y in batches(steps, seed=99):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()


def tiny_context(tmp_path, model: nn.Module | None = None) -> SimpleNamespace:
    val, test = batches(2, seed=1), batches(2, seed=2)
    return SimpleNamespace(
        model=model if model is not None else tiny_mobilenet(),
        arch={"resolution": RES},
        resolution=RES,
        in_channels=1,
        num_classes=CLASSES,
        train_batches=lambda n: iter(batches(n, seed=3)),
        calib_images=torch.cat([x for x, _ in batches(2, seed=4)]),
        evaluate=lambda m: top1(m, val),
        test=lambda m: top1(m, test),
        finetune=finetune,
        out_dir=tmp_path / "out",
        seed=0,
        lut_path=None,
        progress=None,
    )


def test_policy_macs_match_pytorch_flop_counter():
    model = tiny_mobilenet()
    shape = (1, 1, RES, RES)
    blocks, fixed = find_prunable_blocks(model, shape)
    assert [b.mid_channels for b in blocks] == [24, 32, 48]
    assert [b.has_se for b in blocks] == [True, False, True]
    assert policy_macs(blocks, fixed, [24, 32, 48]) == measure_macs(model, shape)
    for kept in ([5, 7, 11], [24, 1, 30]):
        pruned = prune_subnet(model, blocks, kept)
        assert policy_macs(blocks, fixed, kept) == measure_macs(pruned, shape)
        assert pruned(torch.zeros(2, 1, RES, RES)).shape == (2, CLASSES)


def test_unpruned_policy_gives_the_same_outputs():
    model = tiny_mobilenet()
    blocks, _ = find_prunable_blocks(model, (1, 1, RES, RES))
    x = torch.randn(4, 1, RES, RES)
    same = prune_subnet(model, blocks, [b.mid_channels for b in blocks])
    torch.testing.assert_close(same(x), model(x))


@torch.no_grad()
def _project_error(model: nn.Module, pruned: nn.Module, name: str, images: torch.Tensor) -> float:
    """Mean squared difference of block ``name``'s project conv outputs (before BN), both
    blocks fed the unpruned network's input to that block."""
    feeds: list[torch.Tensor] = []
    hook = model.get_submodule(name).register_forward_pre_hook(lambda _m, i: feeds.append(i[0]))
    model(images)
    hook.remove()

    def project_out(block: MBConv) -> torch.Tensor:
        return block.project[0](block.se(block.depthwise(block.expand(feeds[0]))))

    a, b = project_out(model.get_submodule(name)), project_out(pruned.get_submodule(name))
    return float((a - b).pow(2).mean())


def test_least_squares_refit_reduces_reconstruction_error():
    model = tiny_mobilenet()
    blocks, _ = find_prunable_blocks(model, (1, 1, RES, RES))
    features = collect_features(model, blocks, torch.randn(64, 1, RES, RES), seed=0)
    fresh = torch.randn(16, 1, RES, RES)  # held-out images
    for t, block in enumerate(blocks):
        kept = [b.mid_channels for b in blocks]
        kept[t] = block.mid_channels // 3
        plain = prune_subnet(model, blocks, kept)
        refit = prune_subnet(model, blocks, kept, features)
        e_plain = _project_error(model, plain, block.name, fresh)
        e_refit = _project_error(model, refit, block.name, fresh)
        assert e_refit < 0.9 * e_plain, (block.name, e_refit, e_plain)


def _fake_blocks(per_channel: list[int], mids: list[int]) -> list[PrunableBlock]:
    return [
        PrunableBlock(i, f"b{i}", 8, m, 8, 3, 1, 8, 8, False, c)
        for i, (c, m) in enumerate(zip(per_channel, mids, strict=True))
    ]


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 8),
    min_keep=st.floats(0.05, 1.0),
    fixed=st.integers(0, 10**6),
)
def test_budget_clipping_always_meets_the_budget(data, n, min_keep, fixed):
    per_channel = data.draw(st.lists(st.integers(1, 5000), min_size=n, max_size=n))
    mids = data.draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    blocks = _fake_blocks(per_channel, mids)
    lowest = min_channels(blocks, min_keep)
    least = policy_macs(blocks, fixed, lowest)
    full = policy_macs(blocks, fixed, mids)
    target = data.draw(st.floats(least, full)) if full > least else float(least)
    chosen: list[int] = []
    for t in range(n):
        wanted = data.draw(st.integers(-5, 400))
        chosen.append(clip_channels(wanted, t, chosen, blocks, lowest, target - fixed))
    assert policy_macs(blocks, fixed, chosen) <= target
    assert all(lo <= k <= m for lo, k, m in zip(lowest, chosen, mids, strict=True))


def test_environment_episodes_meet_the_budget_for_random_actions():
    model = tiny_mobilenet()
    blocks, fixed = find_prunable_blocks(model, (1, 1, RES, RES))
    target = 0.5 * policy_macs(blocks, fixed, [b.mid_channels for b in blocks])
    seen: list[list[int]] = []
    env = ChannelPruningEnv.make(blocks, fixed, target, lambda kept: seen.append(kept) or 50.0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        env.reset()
        done = False
        while not done:
            obs, reward, done, _, _ = env.step(rng.random(1).astype(np.float32))
            assert obs.shape == (12,) and np.all((obs >= 0) & (obs <= 1))
        assert reward == pytest.approx(0.5)
    assert len(seen) == 30
    assert all(policy_macs(blocks, fixed, k) <= target for k in seen)
    assert len({tuple(k) for k in seen}) > 1  # actions matter


def test_uniform_policy_is_the_widest_that_fits():
    blocks, fixed = find_prunable_blocks(tiny_mobilenet(), (1, 1, RES, RES))
    full = policy_macs(blocks, fixed, [b.mid_channels for b in blocks])
    kept = uniform_policy(blocks, fixed, 0.6 * full)
    assert policy_macs(blocks, fixed, kept) <= 0.6 * full
    wider = [k + 1 for k in kept]  # one more channel everywhere breaks the budget
    assert policy_macs(blocks, fixed, wider) > 0.6 * full


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ("macs:0.5", 500.0),
        ("macs:1", 1000.0),
        (" macs:250 ", 250.0),
        ("macs:40%", 400.0),
        ("25%", 250.0),
        (None, 500.0),
    ],
)
def test_parse_macs_budget(budget, expected):
    assert parse_macs_budget(budget, 1000) == pytest.approx(expected)


@pytest.mark.parametrize(
    "budget",
    ["flops:0.5", "macs:", "macs:-1", "macs:nan", "macs:2000", "0.5", "macs:150%", "x:5%", ""],
)
def test_parse_macs_budget_rejects_bad_values(budget):
    with pytest.raises(ConfigError, match="macs:F"):
        parse_macs_budget(budget, 1000)


def test_budget_below_the_smallest_reachable_names_it():
    blocks, fixed = find_prunable_blocks(tiny_mobilenet(), (1, 1, RES, RES))
    least = policy_macs(blocks, fixed, min_channels(blocks, 0.2))
    with pytest.raises(ConfigError, match=f"{least:,} MACs"):
        ChannelPruningEnv.make(blocks, fixed, least - 1, lambda k: 0.0)


def test_a_model_without_mbconv_blocks_is_named():
    with pytest.raises(ConfigError, match=r"Sequential has no prunable layer.*Conv2d"):
        find_prunable_blocks(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()), (1, 1, RES, RES))


@pytest.mark.slow
def test_run_amc_returns_rows_and_writes_files(tmp_path):
    ctx = tiny_context(tmp_path)
    result = run_amc(ctx, budget="macs:0.5", episodes=2, finetune_steps=2)
    assert set(result) == {"rows", "artifacts", "plots"}
    rows = {r["method"]: r for r in result["rows"]}
    assert list(rows) == ["amc:untouched", "amc:uniform", "amc:amc"]
    full = rows["amc:untouched"]["macs"]
    assert full == measure_macs(ctx.model, (1, 1, RES, RES))
    for name in ("amc:uniform", "amc:amc"):
        assert rows[name]["macs"] <= 0.5 * full
        assert 0.0 <= rows[name]["test_acc_after"] <= 100.0
        assert rows[name]["params"] < rows["amc:untouched"]["params"]
    for path in result["artifacts"] + result["plots"]:
        assert path.is_file() and path.stat().st_size > 0 and path.parent == ctx.out_dir
    doc = json.loads((ctx.out_dir / "amc_policy.json").read_text())
    assert len(doc["episodes"]) == 2
    assert max(e["val_acc"] for e in doc["episodes"]) == rows["amc:amc"]["val_acc_before"]
    import onnxruntime as ort

    session = ort.InferenceSession(str(ctx.out_dir / "amc_subnet.onnx"))
    (logits,) = session.run(None, {"input": np.zeros((3, 1, RES, RES), np.float32)})
    assert logits.shape == (3, CLASSES) and math.isfinite(float(logits.sum()))
