"""How many hidden channels the one-shot channel sort moves across the e=4 boundary before the
second expand phase, against the stage-wise sort (issue 24, item 1), and what that does to the
e=4 subnets.

Usage: ``PYTHONPATH=src python -m benches.sort_crossings RUN_DIR`` where RUN_DIR holds a
supernet trained through the first expand phase (e.g. a quick-preset run cut after
``expand-1``). Prints, per block, the channels among the first ``width(e=4)`` after each sort
that were not there before, and the validation accuracy of the largest e=4 subnet (BN
re-calibrated) unsorted, after the one-shot sort and after the stage-wise sort.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import replace

import torch

from supernet.data import BatchLoader
from supernet.nn import ElasticMBConv, banded_channel_order, channel_order, sort_channels
from supernet.nn.sorting import _group_size
from supernet.train import calibration_loader, evaluate_subnet, load_run


def main(run_dir: str) -> None:
    run = load_run(run_dir, device="cpu")
    space, model = run.space, run.supernet
    ratios = sorted(space.expand_ratios)
    e_trained = ratios[-2]
    total = crossed = 0
    for i, block in enumerate(m for m in model.modules() if isinstance(m, ElasticMBConv)):
        max_mid = block.project_conv.weight.shape[1]
        w = block.mid_channels(e_trained)
        imp = block.project_conv.applied_weight(max_mid, block.out_channels).abs().sum((0, 2, 3))
        g = _group_size(block.expand_bn)
        old = set(channel_order(imp, g)[:w].tolist())
        new = set(banded_channel_order(imp, (w,), g)[:w].tolist())
        moved = len(old - set(range(w)))
        assert new == set(range(w))
        total, crossed = total + w, crossed + moved
        print(
            f"block {i:2d}: width(e={e_trained}) {w:3d} of {max_mid:3d}; one-shot sort brings "
            f"in {moved:3d} channels from outside; stage-wise 0"
        )
    print(
        f"all blocks: {crossed} of {total} e={e_trained} channel slots "
        f"({100 * crossed / total:.1f}%) "
        "replaced by the one-shot sort"
    )
    calib = calibration_loader(run.splits.train, run.config.bn_calib_images, 500, 0)
    val = BatchLoader(run.splits.val, 500, shuffle=False, augment=False, limit=2000)
    config = replace(space.largest(), expand_ratio=(e_trained,) * space.num_blocks)
    for label, trained in (("one-shot", ()), ("stage-wise", tuple(ratios[-2:]))):
        sorted_model = copy.deepcopy(model)
        if label == "one-shot":
            base = evaluate_subnet(model, config, calib=calib, data=val, device=run.device)[0]
            print(f"largest e={e_trained} subnet, unsorted: val acc {base.accuracy:.2f}%")
        sort_channels(sorted_model, trained)
        score = evaluate_subnet(sorted_model, config, calib=calib, data=val, device=run.device)[0]
        print(f"largest e={e_trained} subnet after the {label} sort: val acc {score.accuracy:.2f}%")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1])
