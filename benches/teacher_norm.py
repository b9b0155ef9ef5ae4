"""Soft labels of a frozen teacher normalizing with running statistics (``teacher_norm: eval``,
the default) against batch statistics (``teacher_norm: batch``, the Once-for-All reference's
``teacher_model.train()``) on a trained run (issue 24, item 3).

Usage: ``PYTHONPATH=src python -m benches.teacher_norm RUN_DIR [BATCH]``. Prints, over the first
2000 validation images in batches of BATCH (default: the run's batch size), the top-1 accuracy of
each teacher, how often their top-1 agree, and the mean KL divergence between their soft labels.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from supernet.data import BatchLoader, resize
from supernet.train import load_run
from supernet.train.trainer import _teacher


@torch.no_grad()
def main(run_dir: str, batch: int | None = None) -> None:
    run = load_run(run_dir, device="cpu")
    b = batch or run.config.batch_size
    largest = run.space.largest()
    eval_t, batch_t = _teacher(run.supernet), _teacher(run.supernet, "batch")
    data = BatchLoader(run.splits.val, b, shuffle=False, augment=False, limit=2000, drop_last=True)
    n = agree = right_eval = right_batch = 0
    kl = 0.0
    for x, y in data:
        x = resize(x, largest.resolution)
        p_eval, p_batch = F.softmax(eval_t(x), 1), F.softmax(batch_t(x), 1)
        kl += F.kl_div(p_batch.log(), p_eval, reduction="sum").item()
        agree += int((p_eval.argmax(1) == p_batch.argmax(1)).sum())
        right_eval += int((p_eval.argmax(1) == y).sum())
        right_batch += int((p_batch.argmax(1) == y).sum())
        n += len(y)
    print(
        f"{n} images, batch {b}: teacher top-1 eval-BN {100 * right_eval / n:.2f}%, "
        f"batch-BN {100 * right_batch / n:.2f}%; top-1 agreement {100 * agree / n:.2f}%; "
        f"mean KL(eval || batch) {kl / n:.4f} nats"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
