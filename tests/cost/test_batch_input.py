"""Every batched cost function gives the same numbers for a ConfigBatch as for a list of configs."""

from __future__ import annotations

import numpy as np
import pytest

from supernet.cost import (
    COST_KEYS,
    LatencyTable,
    SubnetShapes,
    activation_bytes_per_layer,
    cost_table,
    macs,
    model_size_bytes,
    params,
    peak_memory_bytes,
)
from supernet.cost.device import DeviceSpec
from supernet.cost.lut_build import block_modules
from supernet.errors import ConfigError, LatencyTableError
from supernet.nn import OFAMobileNetV3
from supernet.space import ConfigBatch, get_space, list_spaces


def configs_and_batch(space, n=200, seed=0):
    rng = np.random.default_rng(seed)
    configs = [space.sample(rng) for _ in range(n)] + [space.largest(), space.smallest()]
    return configs, ConfigBatch.from_configs(configs, space)


@pytest.mark.parametrize("name", list_spaces())
def test_analytic_costs_of_a_batch_equal_those_of_the_list(name):
    space = get_space(name)
    configs, batch = configs_and_batch(space)
    for fn in (macs, params, peak_memory_bytes, model_size_bytes):
        expected, got = fn(configs, space), fn(batch, space)
        assert got.dtype == expected.dtype == np.int64
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        peak_memory_bytes(batch, space, bytes_per_element=1),
        peak_memory_bytes(configs, space, bytes_per_element=1),
    )
    names, per_layer = activation_bytes_per_layer(batch, space)
    assert (names, per_layer.tolist()) == (
        activation_bytes_per_layer(configs, space)[0],
        activation_bytes_per_layer(configs, space)[1].tolist(),
    )
    table_list, table_batch = cost_table(configs, space), cost_table(batch, space)
    for key in COST_KEYS:
        np.testing.assert_array_equal(table_batch[key], table_list[key])
    a, b = SubnetShapes.from_configs(configs, space), SubnetShapes.from_configs(batch, space)
    for field in ("in_size", "out_size", "final_size", "active", "mid_channels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_an_invalid_batch_is_named():
    space = get_space("mbv3-tiny")
    _, batch = configs_and_batch(space, 3)
    depth = np.array(batch.depth)
    depth[2, 4] = 5
    bad = ConfigBatch(batch.resolution, batch.kernel_size, batch.expand_ratio, depth)
    with pytest.raises(ConfigError, match=r"config #2: depth\[4\] = 5 .* choose from \(2, 3, 4\)"):
        macs(bad, space)


def test_latency_table_predicts_a_batch_like_the_list():
    space = get_space("mbv3-tiny")
    keys = block_modules(OFAMobileNetV3(space), 1)
    entries = {k: (0.001 * (i + 1), 0.0) for i, k in enumerate(sorted(keys))}
    table = LatencyTable(space=space, device=DeviceSpec("x", "torch", 1), entries=entries,
                         scale=0.9, overhead_ms=0.05, call_overhead_ms=0.0001)  # fmt: skip
    configs, batch = configs_and_batch(space, 500)
    np.testing.assert_array_equal(table.predict(batch), table.predict(configs))
    np.testing.assert_array_equal(table.summed_ms(batch), table.summed_ms(configs))
    assert table.predict(batch[:0]).shape == (0,)
    kernel = np.array(batch.kernel_size)
    kernel[1, 0] = 9
    with pytest.raises(ConfigError, match=r"config #1: kernel_size\[0\] = 9"):
        table.predict(ConfigBatch(batch.resolution, kernel, batch.expand_ratio, batch.depth))
    partial = LatencyTable(space=space, device=DeviceSpec("x", "torch", 1),
                           entries=dict(list(entries.items())[:-5]))  # fmt: skip
    with pytest.raises(LatencyTableError, match="has no entry"):
        partial.predict(batch)
