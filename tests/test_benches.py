"""The benches run on a tiny setting so they cannot rot; no timing is asserted."""

from benches.train_step import train_step_throughput


def test_train_step_bench_reports_every_subnet():
    rows = train_step_throughput(batch_size=2, repeats=1)
    assert [r[0] for r in rows] == ["largest", "middle", "smallest"]
    assert all(nchw > 0 and cl > 0 for _, nchw, cl in rows)


def test_cost_models_bench_reports_times_and_ratio():
    from benches.cost_models import cost_model_speed

    r = cost_model_speed("mbv3-tiny", n_configs=20, baseline_configs=1, repeats=1)
    assert r["configs"] == 20
    assert r["analytic_s"] > 0 and r["baseline_per_config_s"] > 0 and r["speedup"] > 0


def test_search_bench_reports_rates_and_ratio():
    from benches.search import search_speed

    for space in ("mbv3-tiny", "ofa-mbv3"):
        r = search_speed(space, population=10, generations=2, repeats=1, baseline_generations=1)
        assert r["candidates_scored"] == 10 + 2 * 10
        assert r["best_macs"] <= r["macs_limit"]
        assert r["candidates_per_s"] > 0 and r["baseline_candidates_per_s"] > 0 and r["speedup"] > 0
