"""`supernet import-ofa`: a run directory from weights in the reference layout, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.nn import create_supernet
from supernet.nn.ofa_weights import to_reference_state_dict
from supernet.space import get_space
from supernet.train import load_run
from supernet.train.imported import IMAGENET_MEAN

runner = CliRunner()


def _weights(tmp_path, space="ofa-mbv3", classes=1000):
    torch.manual_seed(0)
    ours = create_supernet(get_space(space, num_classes=classes))
    path = tmp_path / "ofa.pth"
    torch.save({"state_dict": to_reference_state_dict(ours.state_dict())}, path)
    return path, ours.state_dict()


def _folder(root, classes=3, n=4):
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 255, (40, 50, 3)).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(root / f"class{c}" / f"{i}.jpg")
    return root


def _text(result):
    return " ".join(result.output.split())


@pytest.mark.slow
def test_import_makes_a_run_that_load_run_accepts(tmp_path):
    weights, state = _weights(tmp_path)
    images = _folder(tmp_path / "images")
    run_dir = tmp_path / "run"
    args = ["import-ofa", "--weights", str(weights), "--space", "ofa-mbv3", "--run-dir",
            str(run_dir), "--set", f"dataset=folder:{images}"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((run_dir / "dataset.json").read_text())
    assert record["mean"] == list(IMAGENET_MEAN) and record["classes"] == [
        "class0", "class1", "class2"
    ]  # fmt: skip
    run = load_run(run_dir, device="cpu")
    assert run.finished and run.space.name == "ofa-mbv3" and run.splits.input_size == 224
    loaded = run.supernet.state_dict()
    for key, value in state.items():  # the published features, bit for bit
        if not key.startswith("classifier."):
            assert torch.equal(loaded[key], value), key
    assert loaded["classifier.weight"].shape == (3, 1280)  # re-initialized for 3 classes
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "already holds a run" in _text(again)


def test_bad_imports_are_refused_with_the_reason(tmp_path):
    weights, _ = _weights(tmp_path)
    base = ["import-ofa", "--weights", str(weights), "--run-dir", str(tmp_path / "r")]
    result = runner.invoke(app, [*base, "--space", "mbv3-tiny"])
    assert result.exit_code != 0
    assert "space = 'mbv3-tiny'; the published Once-for-All weights fit ofa-mbv3, " in _text(result)
    result = runner.invoke(app, [*base, "--space", "ofa-mbv3-w1.2"])
    assert "has shape (16, 3, 3, 3), expected (24, 3, 3, 3)" in _text(result)
    result = runner.invoke(app, [*base, "--space", "ofa-mbv3"])  # default dataset: grey
    assert "takes 3-channel input, dataset 'fashion-mnist' has 1 channel" in _text(result)
    assert not (tmp_path / "r").exists()  # nothing written before the checks

    class Payload:  # a pickle that would run code on load
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": Payload()}, evil)
    result = runner.invoke(app, ["import-ofa", "--weights", str(evil), "--space", "ofa-mbv3",
                                 "--run-dir", str(tmp_path / "r2")])  # fmt: skip
    assert result.exit_code != 0 and "pwned" not in result.output
    assert "refused by the weights-only load" in _text(result)
    other = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(3), "classifier.linear.weight": torch.zeros(1000,
               1280)}, other)  # fmt: skip
    result = runner.invoke(app, ["import-ofa", "--weights", str(other), "--space", "ofa-mbv3",
                                 "--run-dir", str(tmp_path / "r3")])  # fmt: skip
    assert "unexpected key 'features.0.weight'" in _text(result)
