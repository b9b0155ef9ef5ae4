"""One transfer run written to a folder: jobs, subnet choice, rows, continuing a killed run."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from supernet.errors import ConfigError
from supernet.space import get_space
from supernet.transfer import METHODS
from supernet.transfer.recipe import TransferConfig
from supernet.transfer.run import (
    RESULTS_CSV,
    RESULTS_JSON,
    TransferRow,
    plan_jobs,
    resolve_subnet,
    run_transfer,
)


def test_compare_plans_every_method_and_the_tinytl_variants():
    jobs = plan_jobs(METHODS, TransferConfig(), frozen_precision=True, batch_one=True)
    assert [j.key for j in jobs] == [*METHODS, "tinytl-l+b/fp32-frozen", "tinytl-l+b/batch-1"]
    fp32, batch_one = jobs[-2].config, jobs[-1].config
    assert (fp32.method, fp32.quantize_frozen, fp32.batch_size) == ("tinytl-l+b", False, 8)
    assert (batch_one.method, batch_one.quantize_frozen, batch_one.batch_size) == (
        "tinytl-l+b", True, 1)  # fmt: skip
    assert batch_one.learning_rate == pytest.approx(TransferConfig().learning_rate / 8**0.5)
    assert all(j.config.method == j.method for j in jobs)
    unquantized = plan_jobs(["last"], TransferConfig(quantize_frozen=False), frozen_precision=True)
    assert [j.key for j in unquantized] == ["last", "tinytl-l+b/int8-frozen"]


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"method = 'lora' is not known; choose from \('full'"):
        plan_jobs(["full", "lora"], TransferConfig())


def test_resolve_subnet():
    space = get_space("mbv3-tiny")
    assert resolve_subnet(space, "largest") == space.largest()
    assert resolve_subnet(space, "middle") == space.middle()
    assert resolve_subnet(space, "adapt") is None
    assert resolve_subnet(space, space.smallest().to_json()) == space.smallest()
    with pytest.raises(ConfigError, match="subnet = 'huge' is not one of"):
        resolve_subnet(space, "huge")


QUICK = TransferConfig(method="last", epochs=1, train_limit=64, batch_size=16)


@pytest.mark.slow
def test_a_run_records_its_rows_and_continues(trained_run, tmp_path):
    out = tmp_path / "out"
    first = run_transfer(trained_run, methods=["last", "bias+last"], subnet="smallest",
                         recipe=QUICK, out_dir=out, device="cpu")  # fmt: skip
    assert first.ran == ("last", "bias+last") and first.skipped == ()
    rows = {r.key: r for r in first.rows}
    last, bias = rows["last"], rows["bias+last"]
    assert last.trainable_params == 512 * 10 + 10  # the new classifier of 512 features
    assert bias.trainable_params > last.trainable_params
    assert bias.paper_total_bytes > last.paper_total_bytes
    for r in first.rows:
        assert r.steps == 4 and r.batch_size == 16 and r.epochs == 1
        assert 0.0 <= r.test_accuracy <= 100.0
        assert r.measured_total_bytes == (
            r.measured_saved_bytes
            + r.measured_param_bytes
            + r.measured_grad_bytes
            + r.measured_optimizer_bytes
        )
        assert 0.9 < r.measured_over_modelled < 1.1
    saved = json.loads((out / RESULTS_JSON).read_text())
    assert [TransferRow.from_dict(r) for r in saved["rows"]] == list(first.rows)
    with open(out / RESULTS_CSV, newline="") as f:
        assert [r["key"] for r in csv.DictReader(f)] == ["last", "bias+last"]

    again = run_transfer(trained_run, methods=["last", "bias+last", "norm+last"],
                         subnet="smallest", recipe=QUICK, out_dir=out, device="cpu")  # fmt: skip
    assert again.skipped == ("last", "bias+last") and again.ran == ("norm+last",)
    assert [r.key for r in again.rows] == ["last", "bias+last", "norm+last"]
    assert again.rows[0] == last

    other = TransferConfig(method="last", epochs=2, train_limit=64, batch_size=16)
    with pytest.raises(ConfigError, match=r"holds results of other settings \(differ: recipe\)"):
        run_transfer(trained_run, methods=["last"], subnet="smallest", recipe=other,
                     out_dir=out, device="cpu")  # fmt: skip
    forced = run_transfer(trained_run, methods=["last"], subnet="smallest", recipe=other,
                          out_dir=out, device="cpu", force=True)  # fmt: skip
    assert forced.ran == ("last",) and forced.rows[0].steps == 8
    assert len(json.loads((out / RESULTS_JSON).read_text())["rows"]) == 1


def test_a_budget_needs_adaptation(trained_run, tmp_path):
    with pytest.raises(ConfigError, match="a memory budget needs subnet 'adapt', not 'largest'"):
        run_transfer(trained_run, subnet="largest", memory_budget=10**6, out_dir=tmp_path)


def test_lite_residual_everywhere_reaches_the_baselines_and_each_row_has_its_peak(
    trained_run, tmp_path
):
    recipe = dataclasses.replace(QUICK, lite_residual_everywhere=True)
    plain = run_transfer(trained_run, methods=["last"], subnet="smallest", recipe=QUICK,
                         out_dir=tmp_path / "plain", device="cpu")  # fmt: skip
    lite = run_transfer(trained_run, methods=["last"], subnet="smallest", recipe=recipe,
                        out_dir=tmp_path / "lite", device="cpu")  # fmt: skip
    a, b = plain.rows[0], lite.rows[0]
    assert a.trainable_params == b.trainable_params  # `last` keeps the lite residuals frozen
    assert b.frozen_params > a.frozen_params  # ... but its network carries them
    for r in (a, b):
        assert r.measured_peak_step_bytes is not None and r.measured_peak_step_bytes > 0
    assert lite.settings["recipe"]["lite_residual_everywhere"] is True
    from supernet.report.transfer import transfer_markdown

    md = transfer_markdown(lite)
    assert "peak step |" in md
    assert f"| {b.measured_peak_step_bytes / 2**20:.2f} |" in md


def test_results_written_before_the_peak_and_the_option_still_continue(trained_run, tmp_path):
    out = tmp_path / "old"
    first = run_transfer(trained_run, methods=["last"], subnet="smallest", recipe=QUICK,
                         out_dir=out, device="cpu")  # fmt: skip
    saved = json.loads((out / RESULTS_JSON).read_text())
    del saved["settings"]["recipe"]["lite_residual_everywhere"]
    for row in saved["rows"]:
        del row["measured_peak_step_bytes"]
    (out / RESULTS_JSON).write_text(json.dumps(saved))
    again = run_transfer(trained_run, methods=["last"], subnet="smallest", recipe=QUICK,
                         out_dir=out, device="cpu")  # fmt: skip
    assert again.skipped == ("last",)
    assert again.rows[0].measured_peak_step_bytes is None
    assert again.rows[0].test_accuracy == first.rows[0].test_accuracy
