"""One naming scheme and one size convention across commands, old spellings still accepted;
one error style; small message fixes (issue 22, items 8 and 10)."""

import os
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from supernet.checkpoint import new_file_mode, save_checkpoint, write_text_atomic
from supernet.cli.app import app
from supernet.cli.console import count, rewrite_aliases
from supernet.cost import cost_table
from supernet.space import get_space
from supernet.units import SIZE_HELP, format_bytes, format_size, parse_size

runner = CliRunner()
ROOT = Path(__file__).parents[2]
WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}


def _out(result) -> str:
    return " ".join(result.output.split())


def _leaves(command, path=()):
    if hasattr(command, "commands"):  # typer vendors click: no isinstance on click's Group
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, command


LEAVES = dict(_leaves(typer.main.get_command(app)))
OPTIONS = [(path, p) for path, c in LEAVES.items() for p in c.params if hasattr(p, "is_flag")]


# --- item 8: names -------------------------------------------------------------------------


def test_one_name_per_concept_in_every_command():
    """A run directory is --run-dir, an output folder --out-dir, an output file --out; --device
    is a target device profile and --torch-device the PyTorch device, everywhere."""
    seen = set()
    for path, param in OPTIONS:
        name, help_ = " ".join(path), param.help or ""
        if param.name in ("run", "run_dir"):
            assert param.opts == ["--run-dir"], name
        if param.name in ("out", "out_dir"):
            folder = "folder" in help_.lower() or "where exports go" in help_.lower()
            assert param.opts == (["--out-dir"] if folder else ["--out"]), (name, help_)
            seen.add(param.opts[0])
        if param.opts == ["--device"]:
            assert help_.startswith("Target device"), name
        if param.opts == ["--torch-device"]:
            assert help_.startswith("PyTorch device to compute on"), name
            seen.add("--torch-device")
    assert seen == {"--out", "--out-dir", "--torch-device"}


MISSING = "missing-run"  # a run directory that does not exist (the tests run in tmp_path)
OLD_SPELLINGS = [  # command, old spelling, new spelling, a value, the other arguments
    (["transfer"], "--run", "--run-dir", MISSING, []),
    (["transfer"], "--out", "--out-dir", "out", ["--run-dir", MISSING]),
    (["transfer"], "--device", "--torch-device", "cpu", ["--run-dir", MISSING]),
    (["privacy", "dlg"], "--run", "--run-dir", MISSING, []),
    (["privacy", "dlg"], "--out", "--out-dir", "out", ["--run-dir", MISSING]),
    (["quantize"], "--out", "--out-dir", "out", ["--run-dir", MISSING]),
    (["eval"], "--device", "--torch-device", "cpu", ["--run-dir", MISSING]),
    (["predict", "collect"], "--device", "--torch-device", "cpu", ["--run-dir", MISSING]),
    (["train"], "--device", "--torch-device", "cpu", ["--preset", "nope"]),
    (["tinynas"], "--max-sram-bytes", "--max-sram", "1000", ["--max-flash", "x"]),
    (["tinynas"], "--max-flash-bytes", "--max-flash", "1000", ["--max-sram", "x"]),
]


@pytest.mark.parametrize(("command", "old", "new", "value", "rest"), OLD_SPELLINGS, ids=str)
def test_old_spellings_are_hidden_aliases(command, old, new, value, rest, tmp_path, monkeypatch):
    """The old spelling does what the new one does (one note more), is not in --help, and the
    two together are a repeated option."""
    monkeypatch.chdir(tmp_path)
    with_new = runner.invoke(app, [*command, new, value, *rest])
    with_old = runner.invoke(app, [*command, old, value, *rest])
    assert with_new.exit_code == with_old.exit_code == 2
    assert with_new.stderr.startswith("error: ")
    note = f"note: {old} is now {new}; the old spelling will be removed in the next release"
    assert with_old.stderr == f"{note}\n{with_new.stderr}"
    help_ = runner.invoke(app, [*command, "--help"], env=WIDE).output
    assert new in help_ and not re.search(rf"{re.escape(old)}(?![\w-])", help_)
    both = runner.invoke(app, [*command, old, value, new, value])
    assert both.exit_code == 2
    assert f"error: {new} is given twice ({old} '{value}', then {new} '{value}')" in both.stderr
    assert not (tmp_path / "out").exists()


def test_a_kib_option_becomes_a_size_with_its_unit():
    search = LEAVES[("search",)]
    args, used = rewrite_aliases(search, ["--max-peak-memory-kb", "256", "--max-model-size-kb=2"])
    assert args == ["--max-peak-memory", "256KiB", "--max-model-size=2KiB"]
    assert used == [("--max-peak-memory-kb", "--max-peak-memory", "KiB"),
                    ("--max-model-size-kb", "--max-model-size", "KiB")]  # fmt: skip
    # a value that looks like an option is a value; after `--` nothing is rewritten
    assert rewrite_aliases(search, ["--lut", "--max-peak-memory-kb", "--", "--max-macs-kb"]) == (
        ["--lut", "--max-peak-memory-kb", "--", "--max-macs-kb"],
        [],
    )
    result = runner.invoke(app, ["search", "--run-dir", "r", "--max-peak-memory-kb", "lots"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "note: --max-peak-memory-kb N is now --max-peak-memory NKiB; the old spelling will be "
        "removed in the next release",
        "error: --max-peak-memory = 'lotsKiB' is not a size; give bytes or a number with KiB, "
        "MiB, GiB (1024-based) or kB, MB, GB (1000-based), e.g. 320KiB",
    ]


def _example(help_text: str) -> str | None:
    found = re.search(r"Example: `([^`]*)`", " ".join(help_text.split()))
    return found and found.group(1)


@pytest.mark.parametrize("path", sorted(LEAVES), ids=" ".join)
def test_every_command_has_an_example_that_the_readme_shows(path):
    """The --help example of each command is a line of README.md (paths included) and uses the
    current option names, not the hidden old ones."""
    command = LEAVES[path]
    example = _example(command.help or "")
    assert example is not None, f"supernet {' '.join(path)} --help has no Example"
    assert example.startswith(f"supernet {' '.join(path)}")
    readme = " ".join((ROOT / "README.md").read_text().replace("\\\n", " ").split())
    assert example in readme
    visible = {o for p in command.params if hasattr(p, "is_flag")
               for o in (*p.opts, *p.secondary_opts)}  # fmt: skip
    assert {t for t in example.split() if t.startswith("--")} <= visible


# --- item 8: units -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("327680", 327_680), ("4MiB", 4 * 2**20), ("512KiB", 512 * 1024), ("2.5 MiB", 2_621_440),
     ("4MB", 4_000_000), ("512kB", 512_000), ("512KB", 512_000), ("1GiB", 2**30),
     ("1GB", 10**9), ("1e3B", 1000), (4096, 4096)],
)  # fmt: skip
def test_one_size_convention_iec_1024_and_si_1000(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MiB", "-1MB", "4 XB", "1.5.2MB", "0", "0.1B", "4 Mib B"])
def test_a_bad_size_names_the_option_and_the_units(text):
    with pytest.raises(ValueError, match=r"^--max-sram = .* (is not a size|must be at least)"):
        parse_size(text, name="--max-sram")


def test_sizes_print_in_iec_units():
    assert format_size(1000) == "1,000 B"
    assert format_size(327_680) == "320.0 KiB"
    assert format_size(4 * 2**20) == "4.00 MiB"
    assert format_bytes(327_680) == "327,680 B (320.0 KiB)"
    assert format_bytes(512) == "512 B"


SIZE_OPTIONS = [(("search",), "--max-peak-memory"), (("search",), "--max-model-size"),
                (("tinynas",), "--max-sram"), (("tinynas",), "--max-flash"),
                (("transfer",), "--memory-budget")]  # fmt: skip


@pytest.mark.parametrize(("path", "option"), SIZE_OPTIONS, ids=str)
def test_every_size_option_states_its_units(path, option):
    [param] = [p for p in LEAVES[path].params if option in getattr(p, "opts", ())]
    assert SIZE_HELP in " ".join(param.help.split())
    assert "1024-based" in SIZE_HELP and "1000-based" in SIZE_HELP


def test_no_option_name_carries_an_ambiguous_unit():
    """Sizes take their unit in the value (256KiB), so no option is named ..._kb or ..._mb."""
    names = [o for _, p in OPTIONS for o in p.opts]
    assert not [n for n in names if re.search(r"-(kb|mb|gb|kib|mib)$", n)]


def test_tinynas_takes_iec_sizes_and_prints_both(tmp_path):
    args = ["tinynas", "--max-sram", "320KiB", "--max-flash", "1MiB", "--samples", "2",
            "--plot", str(tmp_path / "p.png")]  # fmt: skip
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    assert "SRAM <= 327,680 B (320.0 KiB), Flash <= 1,048,576 B (1.00 MiB)" in _out(result)


# --- item 10 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [(["eval", "--n", "3"], "error: No such option: --n"),
     (["eval"], "error: Missing option '--run-dir'."),
     (["latency", "measure", "--repeats", "x"],
      "error: Invalid value for '--repeats': Input should be a valid integer, unable to parse "
      "string as an integer"),
     (["cost", "--space", "a", "--space", "b"],
      "error: --space is given twice (--space 'a', then --space 'b'); give each option once")],
)  # fmt: skip
def test_usage_errors_are_error_lines_like_every_other_error(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    command = " ".join(
        a for a in args if not a.startswith("-") and a in ("eval", "latency", "measure", "cost")
    )
    assert result.stderr == f"{message}\nTry 'supernet {command} --help' for help.\n"
    assert result.stdout == ""


def test_flags_show_no_bool_type_in_help():
    for args in (["--help"], ["train", "--help"], ["latency", "--help"], ["transfer", "--help"]):
        result = runner.invoke(app, args, env=WIDE)
        assert result.exit_code == 0
        assert "<bool>" not in result.output
    assert "--version" in runner.invoke(app, ["--help"], env=WIDE).output


def test_one_thread_is_singular(monkeypatch, tmp_path):
    import supernet.cost.lut_build as lut_build
    from supernet.errors import ConfigError

    def stop(*args, **kwargs):
        raise ConfigError("stopped before measuring")

    monkeypatch.setattr(lut_build, "build_latency_table", stop)
    result = runner.invoke(app, ["latency", "build", "--runtime", "torch", "--threads", "1",
                                 "--out", str(tmp_path / "t.json")], env=WIDE)  # fmt: skip
    assert result.exit_code == 2
    assert "on cpu-torch: torch, 1 thread, batch 1" in _out(result)
    assert count(1, "thread") == "1 thread" and count(2, "thread") == "2 threads"
    assert count(1_000, "image") == "1,000 images"


def test_spaces_name_shows_the_space_in_detail():
    space = get_space("proxyless-tiny")
    result = runner.invoke(app, ["spaces", "proxyless-tiny"], env=WIDE)
    assert result.exit_code == 0, result.output
    text = _out(result)
    for part in ("resolution │ {20, 24, 28, 32}", "expand ratio │ {3, 4, 6}",
                 "kernel size │ {3, 5, 7} │ each of 20 block slots",
                 "depth │ {2, 3, 4} │ each of 5 stages",
                 "│ 1 │ 16 │ 4 │ 2 │ relu6 │ no │", "input 1 channel, 10 classes",
                 f"= {space.size():.2e} (size())"):  # fmt: skip
        assert part in text, part
    costs = cost_table([space.largest(), space.smallest()], space)
    for i, name in enumerate(("largest", "smallest")):
        assert (f"{name} │ r" in text and f"{costs['macs'][i] / 1e6:,.2f}" in text
                and format_bytes(int(costs["peak_memory_bytes"][i])) in text)  # fmt: skip
    assert runner.invoke(app, ["spaces", "nope"]).stderr.startswith("error: unknown space 'nope'")


def test_a_partial_arch_config_names_only_what_is_missing():
    result = runner.invoke(app, ["cost", "--config", '{"resolution": 32}'])
    assert result.exit_code == 2
    assert (
        "error: arch config keys: missing ['kernel_size', 'expand_ratio', 'depth']; an arch "
        "config has all of ['resolution', 'kernel_size', 'expand_ratio', 'depth']"
    ) in _out(result)
    assert "unknown []" not in _out(result)


def test_atomic_writers_respect_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        assert new_file_mode() == 0o600
        write_text_atomic(tmp_path / "config.yaml", "a: 1\n")
        save_checkpoint(tmp_path / "checkpoint.pt", {"w": 1}, metadata={})
    finally:
        os.umask(old)
    for name in ("config.yaml", "checkpoint.pt"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o600
    write_text_atomic(tmp_path / "config.yaml", "a: 2\n")
    assert os.stat(tmp_path / "config.yaml").st_mode & 0o777 == new_file_mode() == 0o666 & ~old


def test_a_commands_own_check_is_an_error_line_like_every_other_error(tmp_path):
    result = runner.invoke(app, ["predict", "fit", "--run-dir", str(tmp_path), "--holdout", "2"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --holdout 2.0 must be a fraction in (0, 1)"
