"""Run by tests/train/test_distributed.py under ``torchrun --nproc_per_node 2`` (gloo, loopback).

``python ddp_worker.py step OUT``: one DDP step of two sampled subnets on this rank's half of a
fixed batch; writes this rank's weights (and, on rank 0, a one-process step on the whole batch).
``python ddp_worker.py collect OUT RUN_DIR``: the accuracy dataset, split across ranks.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from supernet.nn import create_supernet
from supernet.predict import collect_accuracy_dataset
from supernet.runtime import Runtime, detect_runtime
from supernet.space import get_space
from supernet.train import PhaseConfig, load_config
from supernet.train.distributed import distributed_session, wrap_ddp
from supernet.train.trainer import _ResizedBatch, _step


def one_step(model, net, rt, x, y):
    phases = [{"name": "p", "epochs": 1, "lr": 0.1, "distill": False, "subnets_per_step": 2}]
    config = load_config(overrides={"dataset": "digits", "device": "cpu", "phases": phases})
    phase: PhaseConfig = config.phases[0]
    space = model.space
    model.eval()  # BN on running statistics: the full-batch gradient is the mean of the halves'
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    batch = _ResizedBatch(x, x.device, torch.contiguous_format)  # x is at 24 px already
    _step(net, model, None, phase, space, config, rt, scaler, opt, batch, y, 24,
          np.random.default_rng(0))  # fmt: skip
    opt.step()
    return {k: v.clone() for k, v in model.state_dict().items()}


def main() -> None:
    what, out = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    rt = detect_runtime("cpu", amp=False)
    with distributed_session(rt):
        if what == "step":
            space = get_space("mbv3-tiny", num_classes=10)
            torch.manual_seed(0)
            model = create_supernet(space, dropout=0.0)
            reference = create_supernet(space, dropout=0.0)
            reference.load_state_dict(model.state_dict())
            gen = torch.Generator().manual_seed(1)
            x, y = (
                torch.randn(8, 1, 24, 24, generator=gen),
                torch.randint(0, 10, (8,), generator=gen),
            )
            mine = slice(rt.rank, None, rt.world_size)
            weights = one_step(model, wrap_ddp(model, rt), rt, x[mine], y[mine])
            torch.save(weights, out / f"rank{rt.rank}.pt")
            if rt.rank == 0:
                single = Runtime(torch.device("cpu"), None)  # one process, no DDP
                torch.save(one_step(reference, reference, single, x, y), out / "single.pt")
        elif what == "collect":
            data = collect_accuracy_dataset(sys.argv[3], n=4, seed=3, val_images=64, device="cpu")
            torch.save({"acc": torch.tensor(data.val_accuracy)}, out / f"collect{rt.rank}.pt")


if __name__ == "__main__":
    main()
