"""The DLG attack: gradient matching recovers the input of a model where it is exactly
recoverable, iDLG reads the label, bad input is refused with clear messages, runs are seeded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from supernet.errors import ConfigError
from supernet.privacy import (
    MAX_BATCH_SIZE,
    dlg_attack,
    make_lenet,
    recover_label,
    shared_gradient,
    soft_cross_entropy,
)


def _linear(seed: int = 0) -> nn.Module:
    """[1, 1, 4, 4] → 3 logits: with a bias, dL/dW = (p − y) xᵀ and dL/db = p − y, so the input
    is exactly x = dW[i] / db[i] (the case DLG's Sec. 3 argues from)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()


def test_gradient_matching_recovers_the_input_of_a_linear_model():
    model = _linear()
    x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    shared = shared_gradient(model, x, torch.tensor([2]))
    for seed in range(3):
        result = dlg_attack(
            model,
            shared,
            input_shape=x.shape,
            num_classes=3,
            iterations=5,
            label_strategy="idlg",
            seed=seed,
        )
        assert result.distances[result.best_iteration] < 1e-6 * result.distances[0]
        assert torch.allclose(result.images, x, atol=1e-3)
        assert result.labels.tolist() == [2]
        assert not result.diverged


def test_dlg_with_soft_labels_drives_the_distance_down():
    """Without the label, a linear model's input is recoverable only up to scale (soft labels
    trade off against the input's norm); the distance still falls by far."""
    model = _linear()
    x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    shared = shared_gradient(model, x, torch.tensor([2]))
    result = dlg_attack(model, shared, input_shape=x.shape, num_classes=3, iterations=20, seed=1)
    assert result.distances[result.best_iteration] < 0.2 * result.distances[0]


def test_soft_cross_entropy_of_one_hot_targets_is_cross_entropy():
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 3, 4, 1])
    expected = F.cross_entropy(logits, y)
    assert torch.allclose(soft_cross_entropy(logits, F.one_hot(y, 5).float()), expected)


def test_shared_gradient_is_the_gradient_of_the_trainable_parameters():
    model = _linear()
    model[1].weight.requires_grad_(False)
    x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
    shared = shared_gradient(model, x, y)
    assert list(shared) == ["1.bias"]
    probs = F.softmax(model(x), dim=-1)
    expected = (probs - F.one_hot(y, 3)).mean(0)
    assert torch.allclose(shared["1.bias"], expected, atol=1e-6)
    assert not model[1].weight.requires_grad  # left as it was


@pytest.mark.parametrize("label", [0, 4, 9])
@pytest.mark.parametrize("share", [("fc.weight", "fc.bias"), ("fc.weight",)])
def test_idlg_reads_the_label_from_the_classifier_gradient(label, share):
    model = make_lenet(in_channels=1, num_classes=10, image_size=8, seed=label)
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(label))
    shared = shared_gradient(model, x, torch.tensor([label]), share)
    assert recover_label(model, shared).tolist() == [label]


def test_idlg_attack_optimises_the_image_with_the_recovered_label():
    model = make_lenet(in_channels=1, num_classes=10, image_size=8, seed=2)
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    shared = shared_gradient(model, x, torch.tensor([7]))
    result = dlg_attack(
        model, shared, input_shape=x.shape, num_classes=10, iterations=2, label_strategy="idlg"
    )
    assert result.labels.tolist() == [7]
    assert result.label_probs.sum().item() == pytest.approx(1.0)


def test_the_attack_is_seeded():
    model = make_lenet(in_channels=1, num_classes=10, image_size=8, seed=0)
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    shared = shared_gradient(model, x, torch.tensor([1]))
    runs = [
        dlg_attack(model, shared, input_shape=x.shape, num_classes=10, iterations=2, seed=s)
        for s in (5, 5, 6)
    ]
    assert torch.equal(runs[0].images, runs[1].images)
    assert runs[0].distances == runs[1].distances
    assert not torch.equal(runs[0].images, runs[2].images)


def test_patience_stops_an_attack_that_no_longer_improves():
    model = _linear()
    x = torch.rand(1, 1, 4, 4)
    shared = shared_gradient(model, x, torch.tensor([0]))
    result = dlg_attack(
        model, shared, input_shape=x.shape, num_classes=3, iterations=500, patience=3
    )
    assert len(result.distances) < 501
    assert len(result.distances) - 1 - result.best_iteration <= 3


def test_shared_parameters_not_in_the_model_are_named():
    model = _linear()
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(
        ConfigError,
        match=r"shared parameter\(s\) \['head.weight'\] are not in "
        r"the model; its parameters are: 1.weight, 1.bias",
    ):
        shared_gradient(model, x, torch.tensor([0]), ["head.weight"])
    shared = {"head.weight": torch.zeros(3, 16)}
    with pytest.raises(ConfigError, match=r"'head\.weight'"):
        dlg_attack(model, shared, input_shape=x.shape, num_classes=3, iterations=1)


def test_a_shared_tensor_of_the_wrong_shape_is_refused():
    model = _linear()
    with pytest.raises(ConfigError, match=r"'1.bias' has shape \(4,\), the parameter \(3,\)"):
        dlg_attack(model, {"1.bias": torch.zeros(4)}, input_shape=(1, 1, 4, 4), num_classes=3)


def test_batch_sizes_above_the_supported_one_are_refused():
    model = _linear()
    big = MAX_BATCH_SIZE + 1
    message = f"batch size = {big} is not supported by the attack; allowed: 1..{MAX_BATCH_SIZE}"
    with pytest.raises(ConfigError, match=message):
        shared_gradient(model, torch.rand(big, 1, 4, 4), torch.zeros(big, dtype=torch.int64))
    shared = shared_gradient(model, torch.rand(1, 1, 4, 4), torch.tensor([0]))
    with pytest.raises(ConfigError, match=message):
        dlg_attack(model, shared, input_shape=(big, 1, 4, 4), num_classes=3)
    with pytest.raises(ConfigError, match="'idlg' recovers the label of a batch of 1, not 2"):
        dlg_attack(model, shared, input_shape=(2, 1, 4, 4), num_classes=3, label_strategy="idlg")
    with pytest.raises(ConfigError, match=r"label strategy = 'guess' is not known; choose from"):
        dlg_attack(model, shared, input_shape=(1, 1, 4, 4), num_classes=3, label_strategy="guess")
