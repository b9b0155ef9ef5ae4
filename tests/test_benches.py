"""The benches run on a tiny setting so they cannot rot; no timing is asserted."""

import importlib.util
import sys

import numpy as np
import pytest
import torch
from benches.__main__ import main as bench_main
from benches.side_by_side import Row
from benches.timing import interleaved_median_seconds, minor_page_faults
from benches.train_step import train_step_throughput


def test_train_step_bench_reports_every_subnet():
    rows = train_step_throughput(batch_size=2, repeats=1)
    assert [r[0] for r in rows] == ["largest", "middle", "smallest"]
    assert all(nchw > 0 and cl > 0 for _, nchw, cl in rows)


def test_dense_depthwise_bench_reports_every_subnet_and_restores_the_switch():
    from benches.train_step import dense_depthwise_speedup

    from supernet.nn.depthwise import set_dense_weight_grad

    rows = dense_depthwise_speedup(batch_size=2, repeats=1)
    assert [r[0] for r in rows] == ["largest", "middle", "smallest"]
    assert all(native > 0 and dense > 0 for _, native, dense in rows)
    assert set_dense_weight_grad(True) is True  # left on, as it was


def test_cost_models_bench_reports_times_and_ratio():
    from benches.cost_models import cost_model_speed

    r = cost_model_speed("mbv3-tiny", n_configs=20, baseline_configs=1, repeats=1)
    assert r["configs"] == 20
    assert r["analytic_s"] > 0 and r["baseline_per_config_s"] > 0 and r["speedup"] > 0


def test_mcu_cost_bench_reports_times_and_ratio():
    from benches.mcu_cost import mcu_cost_speed

    r = mcu_cost_speed("mbv3-tiny", n_configs=20, tflm_configs=2, baseline_configs=2, repeats=1)
    assert r["configs"] == 20
    assert r["tinyengine_s"] > 0 and r["tflm_s"] > 0 and r["speedup_tinyengine"] > 0


def test_search_bench_reports_rates_and_ratio():
    from benches.search import search_speed

    for space in ("mbv3-tiny", "ofa-mbv3"):
        r = search_speed(space, population=10, generations=2, repeats=1, baseline_generations=1)
        assert r["candidates_scored"] == 10 + 2 * 10
        assert r["best_macs"] <= r["macs_limit"]
        assert r["candidates_per_s"] > 0 and r["baseline_candidates_per_s"] > 0 and r["speedup"] > 0


# --- python -m benches: supernet side by side with the Once-for-All reference -----------------

HAS_REFERENCE = importlib.util.find_spec("ofa") is not None and (
    importlib.util.find_spec("tqdm") is not None
)
needs_reference = pytest.mark.skipif(not HAS_REFERENCE, reason="pip install ofa tqdm")

GROUPS = ("supernet forward", "training step", "subnet sampling + extraction",
          "evolutionary search", "MACs counting", "exported subnet")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("reference", [False, pytest.param(True, marks=needs_reference)])
def test_bench_runs_every_metric_and_writes_the_table(tmp_path, capsys, reference):
    out = tmp_path / "RESULTS.md"
    args = ["--tiny-settings", "--threads", "1", "--out", str(out)]
    assert bench_main(args if reference else [*args, "--no-reference"]) == 0
    text = out.read_text()
    for group in GROUPS:
        assert group in text, group
    assert "torch:" in text and "cpu:" in text and "--tiny-settings" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "**" not in line]
    with_reference = [line for line in rows if "(ofa)" in line]
    # forward (2), training step, extraction, search (3), MACs: every ofa-mbv3 metric compared.
    assert len(with_reference) == (8 if reference else 0)
    assert sum("(eager)" in line for line in rows) == 2  # onnxruntime vs eager, ours alone
    assert "stubbed" in capsys.readouterr().out or not reference
    if sys.platform.startswith("linux"):  # page faults are counted where getrusage exists
        extraction = next(line for line in rows if "one random subnet" in line)
        assert extraction.count("page faults/subnet") == (2 if reference else 1)


def test_minor_page_faults_counts_freshly_touched_memory():
    if minor_page_faults(lambda: None) is None:
        pytest.skip("no resource module")
    # 64 MB of fresh memory, written: at least one fault per 2 MB page even with huge pages.
    touched = minor_page_faults(lambda: torch.ones(16 * 2**20))
    assert touched is not None and touched >= 32
    assert minor_page_faults(lambda: None) < touched


def test_ratio_reads_as_how_many_times_better():
    assert Row("g", "m", "ms", ours=2.0, reference=6.0).ratio == 3.0
    assert Row("g", "m", "img/s", ours=6.0, reference=2.0, higher_is_better=True).ratio == 3.0
    assert Row("g", "m", "ms", ours=2.0).ratio is None
    assert Row("g", "m", "score", ours=-1.0, reference=1.0, difference=True).ratio is None


@needs_reference
def test_reference_network_has_our_subnets_weights_shapes():
    from benches.reference import load_reference, reference_network

    from supernet.nn import create_supernet
    from supernet.space import get_space

    space, ref = get_space("ofa-mbv3"), load_reference()
    ours, theirs = create_supernet(space), reference_network(ref)
    for config in (space.largest(), space.smallest(), space.middle()):
        theirs.set_active_subnet(ks=list(config.kernel_size), e=list(config.expand_ratio),
                                 d=list(config.depth))  # fmt: skip
        n_theirs = sum(p.numel() for p in theirs.get_active_subnet().parameters())
        assert sum(p.numel() for p in ours.get_subnet(config).parameters()) == n_theirs


@needs_reference
def test_both_sides_score_and_cost_every_config_alike():
    from benches.reference import load_reference, reference_arch, reference_network
    from benches.side_by_side import predictor_like_reference, reference_predictor

    from supernet.cost import macs
    from supernet.space import get_space

    space, ref = get_space("ofa-mbv3"), load_reference()
    theirs = reference_predictor(ref, space)
    ours = predictor_like_reference(theirs, space)
    rng = np.random.default_rng(3)
    configs = [space.sample(rng) for _ in range(40)] + [space.largest(), space.smallest()]
    with torch.no_grad():
        expected = theirs.predict_acc([reference_arch(c) for c in configs]).double().numpy()
    np.testing.assert_allclose(ours.predict_accuracy(configs), expected, rtol=0, atol=1e-6)
    flops = ref.efficiency.Mbv3FLOPsModel(reference_network(ref))
    # The search constraint means the same on both sides: the reference's "MFLOPs" are our MACs.
    np.testing.assert_allclose(
        macs(configs, space) / 1e6, [flops.get_efficiency(reference_arch(c)) for c in configs],
        rtol=1e-9)  # fmt: skip


def test_interleaved_timing_alternates_the_order_of_each_round():
    calls = []
    fns = [lambda: calls.append("a"), lambda: calls.append("b"), lambda: calls.append("c")]
    medians = interleaved_median_seconds(fns, repeats=3, warmup=1)
    assert calls == list("abc" + "abc" + "cba" + "abc")  # warm-up, then rounds 0, 1, 2
    assert len(medians) == 3 and all(m >= 0 for m in medians)


def test_mcu_validate_fit_recovers_known_overheads_and_reports_the_worst_error():
    from benches.mcu_validate import Measured, errors, fit_overheads

    def row(ops, payload, head, sram):
        # a file of payload + 700 + 90 / op bytes, an arena tail of 2000 + 40 / op bytes
        return Measured("s", {}, ops, ops + 3, {}, sram, head, head + 2000 + 40 * ops,
                        payload + 500, payload, payload + 700 + 90 * ops, 1.0)  # fmt: skip

    rows = [row(20, 10_000, 4096, 4096), row(35, 30_000, 8192, 8192 + 819)]
    fit = fit_overheads(rows)
    assert fit["flash_fixed_bytes"] == pytest.approx(700) and fit["flash_per_op_bytes"] == (
        pytest.approx(90)
    )
    assert fit["arena_tail_fixed_bytes"] == pytest.approx(2000)
    assert fit["arena_tail_per_op_bytes"] == pytest.approx(40)
    fitted = errors([row(50, 20_000, 1000, 1000)], fit)
    assert fitted["flash_worst_pct"] == pytest.approx(0.0, abs=1e-9)
    assert fitted["arena_total_worst_pct"] == pytest.approx(0.0, abs=1e-9)
    raw = errors(rows)  # model 500 B above payload vs 700 + 90 x ops measured: under
    assert raw["sram_vs_head_worst_pct"] == pytest.approx(100 * 819 / 8192)
    assert raw["flash_worst_pct"] == pytest.approx(100 * (500 - 2500) / 12_500)


def test_mcu_validate_remodel_reruns_the_model_and_keeps_the_measurements():
    from benches.mcu_validate import Measured, remodel

    from supernet.cost import flash_bytes, sram_bytes
    from supernet.space import get_space

    space = get_space("mbv3-tiny")
    config = space.smallest()  # r20: the stem input is even, so the model has a stem PAD
    stale = Measured("mbv3-tiny", config.to_dict(), 1, 99, {"PAD": 1}, 7, 5000, 9000, 8, 3,
                     123_456, 2.0)  # fmt: skip
    fresh = remodel(stale)
    assert fresh.sram_tflm_bytes == int(sram_bytes([config], space, planner="tflm")[0])
    whole = int(sram_bytes([config], space, planner="tflm-arena")[0])
    assert fresh.sram_arena_bytes == whole > fresh.sram_tflm_bytes  # + the persistent part
    assert fresh.flash_bytes == int(flash_bytes([config], space)[0])
    assert fresh.ops_modelled > 1 and fresh.flash_payload_bytes < fresh.flash_bytes
    measured = ("ops_tflite", "op_counts", "arena_head_bytes", "arena_bytes", "tflite_bytes")
    assert all(getattr(fresh, k) == getattr(stale, k) for k in measured)
