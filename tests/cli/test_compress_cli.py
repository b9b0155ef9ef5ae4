"""`supernet compress`: Deep Compression end to end on a tiny run, and its error messages."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.compress import load_dc

runner = CliRunner()


def _text(result):
    return " ".join(result.output.split())


def test_unknown_method_and_subnet_name_the_allowed_ones(trained_run, tmp_path):
    result = runner.invoke(app, ["compress", "--run-dir", str(trained_run), "--method", "zip"])
    assert result.exit_code == 2
    assert "method = 'zip' is not known; choose from ('deep-compression', 'amc', 'haq')" in _text(
        result
    )
    result = runner.invoke(app, ["compress", "--run-dir", str(trained_run), "--subnet", "phone",
                                 "--out-dir", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2
    assert "subnet = 'phone' is not known; choose 'largest'" in _text(result)


@pytest.mark.slow
def test_deep_compression_writes_subnet_dc_and_a_table(trained_run, tmp_path):
    out = tmp_path / "dc"
    args = ["compress", "--run-dir", str(trained_run), "--subnet", "largest",
            "--method", "deep-compression", "--budget", "4x",
            "--finetune-steps", "4", "--bits", "4", "--out-dir", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    md = (out / "compress.md").read_text()
    for stage in ("fp32 subnet", "pruned", "4-bit weight sharing", "Huffman (subnet.dc)"):
        assert stage in md
    model = load_dc(out / "subnet.dc")
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(int((w == 0).sum()) for w in weights) > 0  # pruned
    assert all(len(torch.unique(w)) <= 17 for w in weights)  # 16 centroids + zero


def test_a_budget_beyond_reach_gives_the_smallest_reached(trained_run, tmp_path):
    result = runner.invoke(app, ["compress", "--run-dir", str(trained_run), "--budget", "5000x",
                                 "--out-dir", str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2
    text = _text(result)
    assert "budget 5000x is below what deep-compression reaches with 5-bit weights" in text
    assert "the smallest reached is" in text
