"""Specialize for a microcontroller: int8 subnet in TensorFlow Lite Micro, budgets checked on
what TFLM measured, and what to train when the run's space has no subnet that fits."""

import csv
import json
import shutil

import pytest

from supernet.cost import DeviceSpec
from supernet.cost.mcu import FLASH_SEARCH_MARGIN
from supernet.errors import MissingExtraError, SearchError
from supernet.predict import collect_accuracy_dataset, save_predictor, train_predictor
from supernet.quant import mcu_extra_available
from supernet.report.mcu_deploy import MCU_ROW_KEYS, measured_meets, tinynas_advice
from supernet.report.run_report import write_run_report, write_specialize_outputs
from supernet.report.specialize import DEVICE_ROW_KEYS, specialize
from supernet.search import EvolutionConfig
from supernet.space import get_space

FAST = EvolutionConfig(population=8, generations=2, seed=0)
needs_mcu = pytest.mark.skipif(
    not mcu_extra_available(), reason='the MCU extra is not installed (pip install -e ".[mcu]")'
)
# 32 KiB SRAM / 256 KiB Flash: no mbv3-tiny (w1.0) subnet fits the Flash (smallest ~498 KB int8)
M0PLUS = DeviceSpec(name="m0plus", runtime="onnxruntime", threads=1, int8=True,
                    constraints={"max_sram_bytes": 32768, "max_flash_bytes": 262144})  # fmt: skip


@pytest.fixture(scope="module")
def run_with_predictor(trained_run, tmp_path_factory):
    """The shared digits run (mbv3-tiny) with a small accuracy dataset and a fitted predictor."""
    run_dir = shutil.copytree(trained_run, tmp_path_factory.mktemp("mcu") / "run")
    dataset = collect_accuracy_dataset(run_dir, n=6, device="cpu", val_images=64)
    predictor, report = train_predictor(dataset, epochs=30, holdout=0.3)
    save_predictor(run_dir / "predictor.pt", predictor, dataset.space, report)
    return run_dir


def test_budgets_are_checked_on_the_measured_arena_and_file_size():
    limits = {"max_sram_bytes": 1000, "max_flash_bytes": 5000, "max_macs": 1e6}
    assert measured_meets(limits, 1000, 5000) == {"max_sram_bytes": True, "max_flash_bytes": True}
    assert measured_meets(limits, 1001, 4000) == {"max_sram_bytes": False, "max_flash_bytes": True}
    assert measured_meets(limits, 10, 5001) == {"max_sram_bytes": True, "max_flash_bytes": False}
    assert measured_meets({"max_flash_bytes": 10}, 10**9, 5) == {"max_flash_bytes": True}


def test_when_nothing_fits_tinynas_names_the_space_and_the_preset():
    advice = tinynas_advice(M0PLUS, get_space("mbv3-tiny"), samples=100)
    assert "space mbv3-tiny has no subnet within m0plus's budgets" in advice
    assert "TinyNAS picks mbv3-tiny-w0.5-r32" in advice  # docs/results/mcu-memory.md, 300 samples
    assert "supernet train --preset fashion-mnist-mcu-quick" in advice
    fp32 = DeviceSpec(name="cpu", runtime="onnxruntime", threads=1, constraints={"max_macs": 1e6})
    assert tinynas_advice(fp32, get_space("mbv3-tiny")) == ""
    impossible = M0PLUS.replace(constraints={"max_sram_bytes": 64, "max_flash_bytes": 1024})
    assert tinynas_advice(impossible, get_space("mbv3-tiny"), samples=10).startswith(
        "no TinyNAS space fits m0plus either: "
    )


@needs_mcu
def test_a_device_no_subnet_fits_fails_with_the_tinynas_advice(run_with_predictor, tmp_path):
    with pytest.raises(SearchError, match=r"TinyNAS picks mbv3-tiny-w0\.5-r32") as info:
        specialize(run_with_predictor, [M0PLUS], out_dir=tmp_path, evolution=FAST,
                   baseline_subnets=0, device="cpu")  # fmt: skip
    # the search keeps FLASH_SEARCH_MARGIN of the Flash budget free (the Flash model estimates)
    assert f"flash_bytes <= {262144 * (1 - FLASH_SEARCH_MARGIN):.0f}" in str(info.value)
    assert not (tmp_path / "m0plus").exists()


def test_an_int8_device_without_the_extra_fails_first_with_the_install_hint(
    run_with_predictor, tmp_path, monkeypatch
):
    import supernet.report.specialize as module

    def missing(name):
        raise MissingExtraError(f"{name} is missing: pip install -e '.[mcu]'")

    monkeypatch.setattr(module, "require", missing)
    with pytest.raises(MissingExtraError, match=r"litert_torch is missing: pip install"):
        specialize(run_with_predictor, [M0PLUS], out_dir=tmp_path, evolution=FAST, device="cpu")
    assert not tmp_path.joinpath("m0plus").exists()


def test_the_cli_turns_a_missing_extra_into_exit_code_2(run_with_predictor, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import supernet.report.specialize as module
    from supernet.cli.app import app

    def missing(name):
        raise MissingExtraError(f"{name} is missing: pip install -e '.[mcu]'")

    monkeypatch.setattr(module, "require", missing)
    devices = tmp_path / "devices.yaml"
    devices.write_text(
        "devices:\n  - {name: m0, runtime: onnxruntime, int8: true, "
        "constraints: {max_flash_bytes: 262144}}\n"
    )
    result = CliRunner().invoke(app, ["specialize", "--run-dir", str(run_with_predictor),
                                      "--devices", str(devices), "--generations", "1"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "pip install -e '.[mcu]'" in result.output


@pytest.mark.slow
@needs_mcu
def test_an_int8_device_gets_a_tflite_run_in_tflm_and_a_report_row(run_with_predictor, tmp_path):
    """End to end on the digits run: search under int8 budgets, PTQ, .tflite in TFLM on 40 test
    images, int8 ONNX, subnet.json / specialize.csv / report.md rows. (A .tflite conversion takes
    ~20 s on an idle 2-core machine, minutes under load.)"""
    run_dir = shutil.copytree(run_with_predictor, tmp_path / "run")
    limits = {"max_sram_bytes": 2**20, "max_flash_bytes": 4 * 2**20}
    device = DeviceSpec(name="mcu", runtime="onnxruntime", threads=1, int8=True, constraints=limits)
    result = specialize(run_dir, [device], evolution=FAST, baseline_subnets=0, device="cpu",
                        qat_steps=0, tflm_images=40)  # fmt: skip
    (d,) = result.devices
    m = d.mcu
    assert m is not None and m.method == "PTQ" and m.tflm_images == 40
    assert (d.export_dir / "subnet.tflite").stat().st_size == m.tflite_bytes
    assert (d.export_dir / "subnet.int8.onnx").is_file() and (d.export_dir / "quant.json").is_file()
    assert 0 < m.arena_head_bytes < m.arena_bytes
    # the modelled planners on the chosen subnet: in-place depthwise never needs more than naive
    assert 0 < m.sram_bytes["tinyengine"] <= m.sram_bytes["naive"]
    assert m.meets == {"max_sram_bytes": m.arena_bytes <= 2**20,
                       "max_flash_bytes": m.tflite_bytes <= 4 * 2**20}  # fmt: skip
    assert d.meets["max_sram_bytes"] == m.meets["max_sram_bytes"]  # measured, not modelled
    # the digits run is barely trained (near-tied logits), so agreement is not near 100 here
    quant = json.loads((d.export_dir / "quant.json").read_text())
    assert m.tflm_vs_int8_agreement == quant["tflite"]["tflm_vs_int8_agreement"] >= 50.0
    doc = json.loads((d.export_dir / "subnet.json").read_text())
    assert doc["metadata"]["tflm_arena_bytes"] == m.arena_bytes
    assert doc["metadata"]["int8_test_acc"] == pytest.approx(m.int8_accuracy, abs=0.01)
    assert tuple(d.row()) == DEVICE_ROW_KEYS and set(MCU_ROW_KEYS) <= set(DEVICE_ROW_KEYS)
    write_specialize_outputs(result)
    (row,) = csv.DictReader((result.out_dir / "specialize.csv").open())
    assert int(row["tflite_bytes"]) == m.tflite_bytes and row["int8_method"] == "PTQ"
    report = write_run_report(run_dir).read_text()
    assert "int8 on the microcontroller (TensorFlow Lite Micro, measured)" in report
    assert f"| mcu | PTQ | {m.fp32_accuracy:.2f} / {m.int8_accuracy:.2f}" in report
