"""Outputs checked before the work, and errors that say what to do next (issue 22, items 5, 9)."""

import shutil

import yaml
from typer.testing import CliRunner

from supernet.cli.app import app

runner = CliRunner()


def _out(result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_latency_build_refuses_an_unwritable_out_before_measuring(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "lut.json"
    result = runner.invoke(app, ["latency", "build", "--out", str(out), "--repeats", "1"])
    assert result.exit_code == 2
    assert f"error: --out '{out}': '{blocker}' is a file, not a folder" in _out(result)
    assert "building a latency table" not in result.output  # nothing was measured
    result = runner.invoke(app, ["latency", "build", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert f"error: --out '{tmp_path}' is a folder; give a file name" in _out(result)


def test_predict_fit_checks_the_plot_path_before_saving_the_predictor(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    (tmp_path / "f").write_text("")
    result = runner.invoke(app, ["predict", "fit", "--run-dir", str(run), "--plot",
                                 str(tmp_path / "f" / "p.png")])  # fmt: skip
    assert result.exit_code == 2
    assert "error: --plot" in _out(result) and "is a file, not a folder" in _out(result)
    assert not (run / "predictor.pt").exists()


def test_eval_of_a_missing_run_dir_says_it_does_not_exist(tmp_path):
    result = runner.invoke(app, ["eval", "--run-dir", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert f"error: run directory '{tmp_path / 'nope'}' does not exist" in _out(result)
    assert "holds no supernet run" not in _out(result)


def test_search_without_a_predictor_points_to_collect_and_fit(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    result = runner.invoke(app, ["search", "--run-dir", str(run), "--max-macs", "1e9"])
    assert result.exit_code == 2
    assert (
        f"has no accuracy predictor (predictor.pt) to search with; make one with `supernet "
        f"predict collect --run-dir {run}` then `supernet predict fit --run-dir {run}`"
    ) in _out(result)


def test_a_missing_latency_table_names_the_device_and_the_build_command(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run")
    (run / "predictor.pt").write_bytes(b"")  # never read: the table is checked first
    devices = tmp_path / "devices.yaml"
    devices.write_text(yaml.safe_dump({"devices": [
        {"name": "phone", "runtime": "onnxruntime", "threads": 1, "lut": "luts/phone.json",
         "constraints": {"max_latency": "50% of largest"}},
    ]}))  # fmt: skip
    result = runner.invoke(app, ["specialize", "--run-dir", str(run), "--devices", str(devices)])
    assert result.exit_code == 2
    lut = tmp_path / "luts" / "phone.json"
    assert (
        f"error: device 'phone': its latency table '{lut}' does not exist; build it with "
        f"`supernet latency build --space mbv3-tiny --runtime onnxruntime --threads 1 --out {lut}`"
    ) in _out(result)
