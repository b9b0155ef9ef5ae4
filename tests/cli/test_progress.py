"""Long steps show progress when the output is not a terminal (issue 22, item 3)."""

import io
import shutil

from rich.console import Console
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.cli.progress import StepProgress

runner = CliRunner()


def test_outside_a_terminal_progress_is_a_line_every_few_seconds(monkeypatch):
    monkeypatch.setenv("SUPERNET_PROGRESS_SECONDS", "3600")
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with StepProgress(console, "subnets", total=5) as bar:
        for i in range(1, 5):
            bar.update(i, what=f"#{i}")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # the hour never passed: only the closing line
    assert lines[0].startswith("subnets 4/5 (") and lines[0].endswith(" s) #4")
    monkeypatch.setenv("SUPERNET_PROGRESS_SECONDS", "0")
    out.seek(0), out.truncate()
    with StepProgress(console, "measuring") as bar:
        bar.update(1, 2, "a")
        bar.note("exporting")
    assert out.getvalue().splitlines()[:2] == ["measuring 1/2 (0 s) a", "measuring: exporting"]


def test_eval_and_train_report_progress_when_redirected(trained_run, tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERNET_PROGRESS_SECONDS", "0")
    run = shutil.copytree(trained_run, tmp_path / "run")
    result = runner.invoke(app, ["eval", "--run-dir", str(run), "--torch-device", "cpu"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("subnets 1/3 (") and "largest: " in line for line in lines)
    assert any(line.startswith("subnets 3/3 (") and "smallest: " in line for line in lines)
