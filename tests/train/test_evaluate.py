import numpy as np
import torch
from torch import nn

from supernet.data import BatchLoader, load_digits
from supernet.nn import create_supernet
from supernet.space import get_space
from supernet.train import calibration_loader, evaluate_subnet, recalibrate_bn


def test_recalibrated_statistics_are_the_exact_batch_averages():
    bn = nn.BatchNorm2d(3)
    model = nn.Sequential(bn)
    batches = [torch.randn(4, 3, 5, 5) * (i + 1) + i for i in range(3)]
    seen = recalibrate_bn(model, batches)
    assert seen == 12 and not model.training
    means = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    assert torch.allclose(bn.running_mean, means, atol=1e-6)
    assert bn.momentum == 0.1  # restored after calibration


def test_calibration_subset_is_the_same_on_every_pass():
    splits = load_digits()
    loader = calibration_loader(splits.train, 100, 32, seed=0)
    first = torch.cat([x for x, _ in loader])
    second = torch.cat([x for x, _ in loader])
    assert first.shape[0] == 100 and torch.equal(first, second)
    other = torch.cat([x for x, _ in calibration_loader(splits.train, 100, 32, seed=1)])
    assert not torch.equal(first, other)


def test_evaluating_a_subnet_twice_gives_the_same_score_and_leaves_the_supernet_alone():
    splits = load_digits()
    space = get_space("mbv3-tiny", num_classes=10)
    torch.manual_seed(0)
    supernet = create_supernet(space)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    calib = calibration_loader(splits.train, 64, 64, seed=0)
    val = BatchLoader(splits.val, 64, shuffle=False, augment=False, limit=128)
    config = space.sample(np.random.default_rng(0))
    cpu = torch.device("cpu")
    a, _ = evaluate_subnet(supernet, config, calib=calib, data=val, device=cpu)
    b, subnet = evaluate_subnet(supernet, config, calib=calib, data=val, device=cpu)
    assert (a.accuracy, a.loss, a.images) == (b.accuracy, b.loss, 128)
    assert not subnet.training
    for k, v in supernet.state_dict().items():
        assert torch.equal(v, before[k]), k
