"""How long one DLG attack takes here, against the victim's own training step as the baseline:
``python -m benches.privacy_attack [--iterations 300] [--image-size 32] [--threads 1]``.

The victim is the paper's sigmoid LeNet on one 1-channel image (DLG, arXiv 1906.08935, Sec. 4.1);
the attack runs every L-BFGS iteration (no early stop). Printed: seconds of the attack, seconds of
one training step (forward + backward, median of interleaved repeats), and their ratio — the
attack's cost in victim training steps, which carries across machines better than seconds.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benches.timing import interleaved_median_seconds
from supernet.privacy import dlg_attack, make_lenet, shared_gradient


def attack_cost(*, iterations: int = 300, image_size: int = 32, seed: int = 0) -> dict[str, float]:
    """Seconds of one attack of ``iterations`` L-BFGS iterations, seconds of one training step of
    the victim, and ``attack_over_step`` (their ratio)."""
    model = make_lenet(in_channels=1, num_classes=10, image_size=image_size, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, image_size, image_size, generator=generator)
    y = torch.tensor([3])

    def step() -> None:
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()

    (step_s,) = interleaved_median_seconds([step], repeats=20)
    shared = shared_gradient(model, x, y)
    result = dlg_attack(model, shared, input_shape=x.shape, num_classes=10,
                        iterations=iterations, seed=seed)  # fmt: skip
    return {"iterations": float(len(result.distances) - 1), "attack_s": result.seconds,
            "step_s": step_s, "attack_over_step": result.seconds / step_s,
            "final_distance": result.distances[-1]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    r = attack_cost(iterations=args.iterations, image_size=args.image_size)
    print(f"DLG on LeNet {args.image_size}x{args.image_size}, {r['iterations']:.0f} L-BFGS "
          f"iterations, {args.threads} thread(s): attack {r['attack_s']:.1f} s; one training "
          f"step {1e3 * r['step_s']:.2f} ms; attack = {r['attack_over_step']:,.0f} training "
          f"steps")  # fmt: skip


if __name__ == "__main__":
    main()
