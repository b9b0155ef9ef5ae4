"""Fuzz the command line: argument lists built from the real commands' flags with random values.

Property: every list either works (exit 0; only for quick commands) or exits with code 2 and a
friendly error (one ``error: ...`` line; a usage error adds ``Try '... --help' for help.``; an old
option spelling adds a ``note:`` line before it), never an uncaught exception or a traceback.
Commands that do heavy work (training, measuring latency) always get at least one invalid value,
and their heavy entry points are replaced by functions that fail the test, so no generated list
can start training or a measurement. Everything runs in a temporary directory.
"""

from __future__ import annotations

import traceback

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.fuzz.strategies import (
    EXAMPLES,
    fuzz,
    json_documents,
    mutated,
    nasty_numbers,
    nasty_text,
    raw_bytes,
    to_json_text,
    to_yaml_text,
)
from typer.testing import CliRunner

from supernet.cli.app import app
from supernet.space import get_space, list_spaces

runner = CliRunner()
SPACE = get_space("mbv3-tiny")


class HeavyWorkStarted(AssertionError):
    """A generated argument list got past validation into training or measuring."""


@pytest.fixture(autouse=True)
def _no_heavy_work(monkeypatch, tmp_path):
    """Run in a temporary directory; training and measuring fail the test."""
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise HeavyWorkStarted("a fuzzed command started heavy work")

    import supernet.cost.lut_build
    import supernet.cost.lut_validate
    import supernet.train

    monkeypatch.setattr(supernet.train, "train", refuse)
    monkeypatch.setattr(supernet.cost.lut_build, "_make_supernet", refuse)
    monkeypatch.setattr(supernet.cost.lut_build, "measure_subnets", refuse)
    monkeypatch.setattr(supernet.cost.lut_validate, "measure_subnets", refuse)


def _invoke(args: list[str], *, may_succeed: bool = False) -> None:
    result = runner.invoke(app, args)
    shown = f"args={args!r}\noutput={result.output!r}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        detail = "".join(traceback.format_exception(result.exception))
        raise AssertionError(f"uncaught exception\n{shown}\n{detail}")
    assert "Traceback" not in result.output, shown
    if result.exit_code == 0:
        assert may_succeed, shown
        return
    assert result.exit_code == 2, shown
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("note: ")]  # old option spellings
    assert lines and lines[0].startswith("error: "), shown
    if len(lines) > 1:  # a usage error: where to get help
        assert (
            len(lines) == 2
            and lines[1].startswith("Try 'supernet ")
            and lines[1].endswith(" --help' for help.")
        ), shown


def _flags(pairs: list[tuple[str, str]]) -> list[str]:
    return [part for flag, value in pairs for part in (flag, value)]


def _file(tmp_path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


ints = st.one_of(nasty_numbers.map(str), st.integers(-5, 60).map(str), nasty_text)
floats = st.one_of(nasty_numbers.map(str), st.floats(-1, 10).map(str), nasty_text)
space_names = st.sampled_from(list_spaces()) | nasty_text
config_texts = st.one_of(
    st.sampled_from(["largest", "middle", "smallest"]),
    st.sampled_from([SPACE.largest().to_dict(), SPACE.smallest().to_dict()])
    .flatmap(mutated)
    .map(to_json_text),
    json_documents().map(to_json_text),
    nasty_text,
)


@fuzz(120)
@given(
    space=space_names,
    config=config_texts
    | config_texts.map(lambda t: t.encode("utf-8", "surrogatepass"))
    | raw_bytes(nesting=5000),
    order=st.booleans(),
)
def test_cost(space, config, order, tmp_path):
    """``--config`` as text, or (bytes drawn) as a file holding those bytes."""
    EXAMPLES["cli.cost"] += 1
    if isinstance(config, bytes):
        config = _file(tmp_path, "config.json", config)
    pairs = [("--space", space), ("--config", config)]
    _invoke(["cost", *_flags(pairs if order else pairs[::-1])], may_succeed=True)


@fuzz(30)
@given(name=space_names | st.none())
def test_spaces(name, tmp_path):
    EXAMPLES["cli.spaces"] += 1
    _invoke(["spaces"] + ([name] if name is not None else []), may_succeed=True)


file_contents = st.one_of(
    json_documents().map(to_yaml_text).map(lambda t: t.encode("utf-8", "surrogatepass")),
    mutated({"name": "d", "runtime": "torch", "threads": 1, "constraints": {}})
    .map(to_yaml_text)
    .map(lambda t: t.encode("utf-8", "surrogatepass")),
    raw_bytes(),
)

# (flag, strategy of values that are always refused) for the measuring commands.
INVALID = {
    "--space": st.sampled_from(["nope", "", "[/x]", "mbv3"]),
    "--runtime": st.sampled_from(["tvm", "", "TORCH", "[bold]"]),
    "--threads": st.sampled_from(["0", "-1", "2000", "x", "1.5"]),
    "--batch-size": st.sampled_from(["0", "-3", "b"]),
    "--repeats": st.sampled_from(["0", "-1", "many"]),
    "--warmup": st.sampled_from(["-1", "w"]),
    "--fit-subnets": st.sampled_from(["-1", "f"]),
    "--seed": st.sampled_from(["-1", "s", "1e3"]),
}
ANY = {
    "--space": space_names,
    "--runtime": st.sampled_from(["torch", "onnxruntime"]) | nasty_text,
    "--threads": ints,
    "--batch-size": ints,
    "--repeats": ints,
    "--warmup": ints,
    "--fit-subnets": ints,
    "--seed": ints,
}


@st.composite
def build_args(draw, tmp_path):
    bad = draw(st.sampled_from(sorted(INVALID)))
    pairs = [(bad, draw(INVALID[bad]))]
    # Each flag at most once: a repeated option is refused before its values are read
    # (tests/cli/test_repeated_options.py), which would hide the invalid value under test.
    others = sorted(set(ANY) - {bad})
    for flag in draw(st.lists(st.sampled_from(others), max_size=4, unique=True)):
        pairs.append((flag, draw(ANY[flag])))
    if draw(st.booleans()):
        device = draw(st.sampled_from(["cpu-torch", "cpu-ort", "gpu9"]) | nasty_text)
        if draw(st.booleans()):
            device = _file(tmp_path, "device.yaml", draw(file_contents))
        pairs.append(("--device", device))
    pairs.append(("--out", draw(st.sampled_from(["lut.json", "sub/dir/lut.json", "."]))))
    return ["latency", "build", *_flags(draw(st.permutations(pairs)))]


@fuzz(120)
@given(data=st.data())
def test_latency_build_with_an_invalid_value(data, tmp_path):
    EXAMPLES["cli.latency_build"] += 1
    _invoke(data.draw(build_args(tmp_path)))


@fuzz(80)
@given(data=st.data())
def test_latency_measure_with_an_invalid_value(data, tmp_path):
    EXAMPLES["cli.latency_measure"] += 1
    options = {k: v for k, v in INVALID.items() if k not in ("--fit-subnets", "--seed")}
    bad = data.draw(st.sampled_from(sorted(options)))
    pairs = [(bad, data.draw(options[bad]))]
    if data.draw(st.booleans()):
        pairs.append(("--config", data.draw(config_texts)))
    _invoke(["latency", "measure", *_flags(pairs)])


@fuzz(80)
@given(
    lut=file_contents | json_documents().map(to_json_text).map(str.encode),
    bad=st.sampled_from([("--n", "1"), ("--n", "-4"), ("--seed", "-1"), ("--repeats", "0"),
                         ("--n", "x"), ("--repeats", "r")]),
    plot=st.booleans(),
)  # fmt: skip
def test_latency_validate_with_a_bad_table_or_value(lut, bad, plot, tmp_path):
    EXAMPLES["cli.latency_validate"] += 1
    args = ["latency", "validate", "--lut", _file(tmp_path, "lut.json", lut), *bad]
    _invoke(args + (["--plot", "p.png"] if plot else []))


invalid_sets = st.sampled_from(
    ["batch_size=0", "seed=-1", "dropout=1.5", "momentum=nan", "nesterov=maybe", "phases=[]",
     "space=nope", "dataset=imagenet", "threads=0", "lr=0.1", "epochs=3", "norm=ln",
     "batch_size", "=", "phases=[{name: x}]", "optimizer=[", "teacher=!!python/none x"]
)  # fmt: skip
set_items = st.one_of(
    invalid_sets,
    st.tuples(st.sampled_from(["batch_size", "seed", "device", "amp", "train_limit", "phases"]),
              nasty_text | nasty_numbers.map(str)).map("=".join),
)  # fmt: skip


@fuzz(120)
@given(
    sets=st.lists(set_items, max_size=3),
    must_fail=invalid_sets,
    preset=st.none() | st.sampled_from(["fashion-mnist-quick", "nope", "[/x]"]) | nasty_text,
    config=st.none() | file_contents,
    run_dir=st.none() | st.sampled_from(["runs/x", "[bold]", "", "a\x00b"]),
    resume=st.booleans(),
    device=st.none() | st.sampled_from(["cpu", "cuda:7", "tpu"]),
    device_option=st.sampled_from(["--torch-device", "--device"]),
)
def test_train_never_starts_on_invalid_input(
    sets, must_fail, preset, config, run_dir, resume, device, device_option, tmp_path
):
    EXAMPLES["cli.train"] += 1
    args = ["train", "--set", must_fail, *_flags([("--set", item) for item in sets])]
    if preset is not None:
        args += ["--preset", preset]
    if config is not None:
        args += ["--config", _file(tmp_path, "config.yaml", config)]
    if run_dir is not None:
        args += ["--run-dir", run_dir]
    if device is not None:
        args += [device_option, device]
    _invoke(args + (["--resume"] if resume else []))


run_dirs = st.one_of(
    st.sampled_from(["missing", "[/x]", "", "x" * 300]),
    file_contents.map(lambda content: ("config.yaml", content)),
)


def _run_dir(tmp_path, value) -> str:
    if isinstance(value, str):
        return value
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / value[0]).write_bytes(value[1])
    return str(run)


@fuzz(120)
@given(
    command=st.sampled_from(["eval", "predict collect", "predict fit", "search", "specialize"]),
    run_dir=run_dirs,
    extra=st.lists(
        st.tuples(st.sampled_from(["--split", "--device", "--torch-device", "--n", "--seed",
                                   "--val-images",
                                   "--threads", "--epochs", "--lr", "--holdout",
                                   "--max-latency-ms", "--max-macs", "--generations",
                                   "--population"]), floats),
        max_size=3,
    ),
    devices=st.none() | file_contents,
)  # fmt: skip
def test_run_directory_commands(command, run_dir, extra, devices, tmp_path):
    """Commands on a run directory that is missing, or holds a fuzzed config.yaml and no
    checkpoint: each fails with a friendly error or a usage error."""
    EXAMPLES["cli.run_dir"] += 1
    args = [*command.split(), "--run-dir", _run_dir(tmp_path, run_dir), *_flags(extra)]
    if command == "specialize":
        args += ["--devices", "missing.yaml" if devices is None else
                 _file(tmp_path, "devices.yaml", devices)]  # fmt: skip
    _invoke(args)
