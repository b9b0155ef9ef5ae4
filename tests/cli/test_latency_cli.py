"""`supernet latency ...` and `supernet cost`: help, exact error messages, a small end-to-end."""

from __future__ import annotations

import json
import re

import pytest
import torch
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.space import SearchSpace, StageSpec, list_spaces, register_space

runner = CliRunner()
TINY = "cli-lut-tiny"
FAST = ["--repeats", "2", "--warmup", "1", "--threads", "1"]


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_space_name():
    if TINY not in list_spaces():
        register_space(TINY, lambda: SearchSpace(
            name=TINY, input_channels=1, num_classes=3, resolutions=(8, 12), kernel_sizes=(3, 5),
            expand_ratios=(2, 3), depths=(1, 2),
            stages=(StageSpec(8, 2, 2, "relu", False), StageSpec(16, 2, 1, "h_swish", True)),
            stem_width=8, stem_stride=2, first_block_width=8, final_expand_width=32,
            feature_mix_width=24,
        ))  # fmt: skip
    return TINY


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "cost" in result.output and "latency" in result.output
    result = runner.invoke(app, ["latency", "--help"])
    assert result.exit_code == 0
    for command in ("build", "validate", "measure"):
        assert command in result.output
    build_help = runner.invoke(app, ["latency", "build", "--help"]).output
    for option in ("--out", "--space", "--runtime", "--device", "--threads", "--repeats"):
        assert option in build_help
    assert "--plot" in runner.invoke(app, ["latency", "validate", "--help"]).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["latency", "build", "--space", "nope", "--out", "x.json"],
         "error: unknown space 'nope'; choose from"),
        (["latency", "build", "--runtime", "tvm", "--out", "x.json"],
         "error: runtime = 'tvm' is not allowed; choose from ('torch', 'onnxruntime')"),
        (["latency", "build", "--device", "gpu9", "--out", "x.json"],
         "error: unknown device 'gpu9'; choose from ['cpu-ort', 'cpu-torch'] or give a YAML/JSON"),
        (["latency", "build", "--threads", "0", "--out", "x.json"],
         "error: threads = 0 must be an integer >= 1"),
        (["latency", "validate", "--lut", "missing.json"],
         "error: latency table 'missing.json' does not exist"),
        (["latency", "measure", "--runtime", "tvm"],
         "error: runtime = 'tvm' is not allowed; choose from ('torch', 'onnxruntime', 'both')"),
        (["latency", "measure", "--config", "huge"],
         "error: config = 'huge' is not one of ('largest', 'middle', 'smallest'), a JSON file"),
        (["cost", "--config", '{"resolution": 28}'],
         "error: arch config keys: missing ['kernel_size', 'expand_ratio', 'depth']; an arch "
         "config has all of"),
        (["cost", "--space", "mbv3-tiny", "--config",
          '{"resolution": 29, "kernel_size": [3], "expand_ratio": [3], "depth": [2]}'],
         "error: resolution = 29 is not allowed in space 'mbv3-tiny'; choose from (20, 24, 28,"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_device_file_with_unknown_field(tmp_path):
    path = tmp_path / "dev.yaml"
    path.write_text("name: x\nruntime: torch\ngpu: true\n")
    result = runner.invoke(app, ["latency", "build", "--device", str(path), "--out", "x.json"])
    assert result.exit_code == 2
    assert "unknown field(s) ['gpu']; known fields: ['name', 'runtime', 'threads'," in result.output


def test_cost_prints_every_cost(tmp_path):
    result = runner.invoke(app, ["cost", "--space", "mbv3-tiny", "--config", "smallest"])
    assert result.exit_code == 0, result.output
    for row in ("MACs", "params", "peak memory fp32", "peak memory int8", "model size fp32",
                "model size int8"):  # fmt: skip
        assert row in result.output
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"resolution": 20, "kernel_size": [3] * 20,
                                  "expand_ratio": [3] * 20, "depth": [2] * 5}))  # fmt: skip
    from_file = runner.invoke(app, ["cost", "--config", str(config)])
    assert from_file.exit_code == 0 and from_file.output == result.output


def test_measure_prints_both_runtimes_and_their_ratio(tiny_space_name):
    result = runner.invoke(app, ["latency", "measure", "--space", tiny_space_name,
                                 "--config", "smallest", *FAST])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "torch" in result.output and "onnxruntime" in result.output
    assert "onnxruntime / eager latency ratio:" in result.output


def test_build_then_validate_with_a_plot(tmp_path, tiny_space_name):
    lut = tmp_path / "luts" / "tiny.json"
    args = [
        "--space",
        tiny_space_name,
        "--runtime",
        "torch",
        "--out",
        str(lut),
        "--fit-subnets",
        "2",
    ]
    result = runner.invoke(app, ["latency", "build", *args, *FAST])
    assert result.exit_code == 0, result.output
    assert "36 entries" in result.output and lut.is_file()
    assert json.loads(lut.read_text())["device"]["name"] == "cpu-torch"
    plot = tmp_path / "scatter.png"
    result = runner.invoke(app, ["latency", "validate", "--lut", str(lut), "--n", "3",
                                 "--repeats", "2", "--plot", str(plot)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "MAPE (%)" in result.output and "Kendall τ" in result.output
    assert re.search(r"fit subnets take \d+\.\d{3}x their build-time", result.output)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = runner.invoke(app, ["latency", "validate", "--lut", str(lut), "--n", "3",
                                 "--repeats", "2", "--no-drift-check"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "MAPE (%)" in result.output and "build-time" not in result.output
