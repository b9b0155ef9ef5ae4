"""`supernet cost --int8` and `supernet tinynas`: tables, plots and the messages of bad input."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.cost.mcu_batch import sram_bytes
from supernet.space import get_space

runner = CliRunner()
FIXTURES = Path(__file__).parents[1] / "cost" / "fixtures" / "mcunet"
MCU_FILE = Path(__file__).parents[2] / "configs" / "devices" / "mcu.yaml"


def test_cost_int8_prints_the_per_layer_table_and_every_planner():
    result = runner.invoke(app, ["cost", "--int8", "--memory-planner", "tinyengine",
                                 "--config", "smallest"], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    for text in ("SRAM tinyengine (B)", "blocks.1.depthwise", "peak SRAM int8 (naive):",
                 "peak SRAM int8 (tflm):", "Flash int8:"):  # fmt: skip
        assert text in result.output


def test_cost_int8_of_a_published_block_list():
    path = FIXTURES / "mcunet-320kb-1mb.json"
    result = runner.invoke(app, ["cost", "--int8", "--block-list", str(path)],
                           env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "peak SRAM int8 (naive): 340,736 B (332.8 KiB)" in result.output


def test_cost_bad_planner_and_options_without_int8_exit_2():
    result = runner.invoke(app, ["cost", "--int8", "--memory-planner", "fast"])
    assert result.exit_code == 2
    assert "memory planner = 'fast' is not known; choose from" in result.output
    result = runner.invoke(app, ["cost", "--memory-planner", "naive"])
    assert result.exit_code == 2
    assert "--block-list and --memory-planner need --int8" in result.output


def test_tinynas_prints_the_ranking_and_writes_the_plot(tmp_path):
    plot = tmp_path / "cdf.png"
    args = ["tinynas", "--device", "cortex-m0plus-32k-256k", "--devices", str(MCU_FILE),
            "--samples", "8", "--memory-planner", "tinyengine", "--plot", str(plot)]  # fmt: skip
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "chosen: mbv3-tiny-w" in result.output
    text = " ".join(result.output.split())  # the table's title may wrap
    assert "SRAM <= 32,768 B (32.0 KiB), Flash <= 262,144 B (256.0 KiB)" in text
    assert plot.stat().st_size > 0


def test_tinynas_impossible_budget_exits_2_with_the_smallest_found(tmp_path):
    args = ["tinynas", "--max-sram", "100", "--max-flash", "1000", "--samples", "4",
            "--plot", str(tmp_path / "p.png")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "error: no subnet of any of the 20 spaces fits SRAM <= 100 bytes" in result.output
    space = get_space("mbv3-tiny-w0.25-r16")  # the smallest subnet of the smallest space, tflm
    sram = int(sram_bytes([space.smallest()], space, planner="tflm")[0])
    assert f"smallest found: SRAM {sram} bytes (mbv3-tiny-w0.25-r16)" in result.output


def test_tinynas_unknown_device_lists_the_presets():
    result = runner.invoke(app, ["tinynas", "--device", "nope", "--devices", str(MCU_FILE)])
    assert result.exit_code == 2
    assert "device 'nope' is not in" in result.output and "stm32f746" in result.output


def test_tinynas_without_a_budget_says_what_to_give():
    result = runner.invoke(app, ["tinynas", "--max-sram", "1000"])
    assert result.exit_code == 2
    assert "needs an SRAM and a Flash budget" in result.output
