"""supernet next to the Once-for-All reference (``ofa`` on PyPI), measured in one run.

Each metric times this library and, when it is importable, the reference on the same shapes, the
same subnets and the same thread count, and reports medians over repeats and the ratio
(reference time / our time, so > 1 means supernet is faster). Metrics on ``mbv3-tiny`` run for
this library alone. Used by ``python -m benches``; see ``benches/__main__.py``.
"""

from __future__ import annotations

import contextlib
import io
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benches.reference import Reference, reference_arch, reference_network
from benches.timing import interleaved_median_seconds, median_seconds, minor_page_faults
from supernet.cost import macs, measure_latency
from supernet.nn import create_supernet
from supernet.predict import AccuracyPredictor
from supernet.runtime import Runtime
from supernet.search import Constraint, EvolutionConfig, evolutionary_search
from supernet.space import ArchConfig, ConfigBatch, SearchSpace, encode_batch, get_space
from supernet.train.config import PhaseConfig
from supernet.train.trainer import _ResizedBatch
from supernet.train.trainer import _step as progressive_shrinking_step

__all__ = ["Row", "Settings", "run_all"]


@dataclass(frozen=True)
class Settings:
    """What the bench runs: repeats, threads and the sizes of each metric.

    Attributes:
        repeats: timed repeats per measurement (the median is reported).
        threads: torch intra-op threads for every metric (both implementations).
        resolutions / batch_sizes: forward shapes on ``ofa-mbv3``.
        train_batch / train_resolution / train_subnets: one progressive-shrinking step.
        extract_configs / extract_warmup: sampled subnets per extraction timing / untimed before.
        population / generations: the evolutionary search (Once-for-All's defaults: 100, 500).
        search_seeds: searches per side (seeds 0..n-1); times and best accuracies are medians.
        macs_configs / reference_macs_configs: configs per MACs-counting timing.
        macs_limit: the search constraint in MACs (the reference's 400 "MFLOPs" are MACs).
        tiny: also time ``mbv3-tiny`` (ours alone) and its ORT-vs-eager inference.
    """

    repeats: int = 5
    threads: int = 2
    resolutions: tuple[int, ...] = (224, 160)
    batch_sizes: tuple[int, ...] = (1, 16)
    train_batch: int = 16
    train_resolution: int = 160
    train_subnets: int = 2
    extract_configs: int = 20
    extract_warmup: int = 100
    population: int = 100
    generations: int = 500
    search_seeds: int = 3
    macs_configs: int = 10_000
    reference_macs_configs: int = 200
    macs_limit: float = 400e6
    tiny: bool = True


@dataclass(frozen=True)
class Row:
    """One metric: our value, the reference's (None when it did not run) and the ratio.

    ``unit`` names what the values are; ``higher_is_better`` tells how the ratio is formed: it is
    always "how many times better supernet is" (> 1 = ahead). ``baseline`` names what
    ``reference`` holds: the ``ofa`` reference, or another baseline of ours. ``difference`` rows
    (scores that may be negative) compare by ``ours - reference`` instead of a ratio.
    """

    group: str
    metric: str
    unit: str
    ours: float
    reference: float | None = None
    higher_is_better: bool = False
    note: str = ""
    baseline: str = "ofa"
    difference: bool = False

    @property
    def ratio(self) -> float | None:
        """How many times better supernet is (None without a baseline or for a difference row)."""
        if self.reference is None or self.difference or self.ours == 0 or self.reference == 0:
            return None
        if self.higher_is_better:
            return self.ours / self.reference
        return self.reference / self.ours


def _set_reference(net: Any, config: ArchConfig) -> None:
    net.set_active_subnet(
        ks=list(config.kernel_size), e=list(config.expand_ratio), d=list(config.depth)
    )


# --- supernet forward --------------------------------------------------------------------------


def forward_rows(s: Settings, ref: Reference | None, space_name: str = "ofa-mbv3") -> list[Row]:
    """Eval-mode supernet forward of the largest and smallest subnet (ms per batch).

    Ours runs as the library evaluates subnets (channels_last weights and input, inference mode);
    the reference as its code does (contiguous, ``torch.no_grad``). The active config is set once
    before timing on both sides; the two sides' calls alternate.
    """
    space = get_space(space_name)
    torch.manual_seed(0)
    ours = create_supernet(space).eval().to(memory_format=torch.channels_last)
    theirs = None if ref is None else reference_network(ref).eval()
    rows = []
    resolutions = s.resolutions if space_name == "ofa-mbv3" else (space.resolutions[-1],)
    for label, config in (("largest", space.largest()), ("smallest", space.smallest())):
        for res in resolutions:
            for batch in s.batch_sizes:
                x = torch.randn(batch, space.input_channels, res, res)
                x_cl = x.contiguous(memory_format=torch.channels_last)
                ours.set_active(replace(config, resolution=res))

                def run_ours(x_cl: torch.Tensor = x_cl) -> None:
                    with torch.inference_mode():
                        ours(x_cl)

                if theirs is None:
                    t_ours, t_ref = median_seconds(run_ours, s.repeats), None
                else:
                    _set_reference(theirs, config)

                    def run_theirs(x: torch.Tensor = x) -> None:
                        with torch.no_grad():
                            theirs(x)

                    t_ours, t_ref = interleaved_median_seconds([run_ours, run_theirs], s.repeats)
                rows.append(
                    Row(
                        f"supernet forward ({space_name})",
                        f"{label}, {res}px, batch {batch}",
                        "ms",
                        t_ours * 1e3,
                        None if t_ref is None else t_ref * 1e3,
                    )
                )
    return rows


# --- one progressive-shrinking training step ---------------------------------------------------


def _sgd(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=3e-5)


def train_step_rows(s: Settings, ref: Reference | None, space_name: str = "ofa-mbv3") -> list[Row]:
    """Images per second of one progressive-shrinking step (elastic expand ratio phase: every
    dimension elastic), KD on, ``train_subnets`` sampled subnets per step, SGD with Nesterov.

    Ours is the trainer's own step (``supernet.train.trainer._step``: frozen teacher extracted
    as a plain subnet in eval mode, channels_last). The reference's step is the body of its
    ``progressive_shrinking.train_one_epoch`` (teacher = its extracted full network in train
    mode, as its ``train_ofa_net.py`` sets it, ``cross_entropy_loss_with_soft_target``),
    run on the same subnets, which need its data loader and run manager only for the batch. The
    two sides' steps alternate, step i of each training the same subnets.
    """
    space = get_space(space_name)
    res = s.train_resolution if space_name == "ofa-mbv3" else space.resolutions[-1]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(s.train_batch, space.input_channels, res, res, generator=gen)
    y = torch.randint(0, space.num_classes, (s.train_batch,), generator=gen)
    phase = PhaseConfig("expand", epochs=1, lr=0.01, subnets_per_step=s.train_subnets)
    steps = s.repeats + 1  # one warm-up step
    draws = np.random.default_rng(0)
    configs = [[space.sample(draws) for _ in range(s.train_subnets)] for _ in range(steps)]

    torch.manual_seed(0)
    model = create_supernet(space).to(memory_format=torch.channels_last)
    teacher = model.get_subnet(space.largest()).eval().requires_grad_(False)
    opt = _sgd(model.parameters())
    rt = Runtime(device=torch.device("cpu"), amp_dtype=None)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    cfg = SimpleNamespace(
        label_smoothing=0.1, kd_ratio=1.0, teacher="frozen", sandwich_resolution="step"
    )
    batch = _ResizedBatch(x, x.device, torch.channels_last)  # already at `res`: resized never
    model.train()
    rng = np.random.default_rng(0)  # the trainer draws its subnets from this: same as `configs`

    def ours_step() -> None:
        progressive_shrinking_step(
            model, model, teacher, phase, space, cfg, rt, scaler, opt, batch, y, res, rng
        )
        opt.step()

    row = Row(
        f"training step ({space_name})",
        f"{s.train_subnets} subnets, batch {s.train_batch}, {res}px, KD",
        "images/s",
        0.0,
        higher_is_better=True,
    )
    if ref is None:
        return [replace(row, ours=s.train_batch / median_seconds(ours_step, s.repeats))]

    torch.manual_seed(0)
    net = reference_network(ref)
    net.set_max_net()
    ref_teacher = net.get_active_subnet(preserve_weight=True)
    ref_opt = _sgd(net.parameters())
    soft_ce = ref.utils.cross_entropy_loss_with_soft_target
    it = iter(configs)

    def reference_step() -> None:
        ref_teacher.train()
        with torch.no_grad():
            soft_label = F.softmax(ref_teacher(x).detach(), dim=1)
        net.zero_grad()
        for config in next(it):
            _set_reference(net, config)
            output = net(x)
            loss = soft_ce(output, soft_label) + F.cross_entropy(output, y, label_smoothing=0.1)
            loss.backward()
        ref_opt.step()

    net.train()
    t_ours, t_ref = interleaved_median_seconds([ours_step, reference_step], s.repeats)
    return [replace(row, ours=s.train_batch / t_ours, reference=s.train_batch / t_ref)]


# --- subnet sampling + extraction --------------------------------------------------------------


def extraction_rows(s: Settings, ref: Reference | None, space_name: str = "ofa-mbv3") -> list[Row]:
    """Milliseconds to sample one random subnet and extract it as a plain module with copied
    weights: ``space.sample`` + ``get_subnet`` vs ``sample_active_subnet`` +
    ``get_active_subnet(preserve_weight=True)``; the median over repeats of the mean over
    ``extract_configs`` subnets, after ``extract_warmup`` untimed extractions on both sides
    (ours builds a weightless skeleton per block and (kernel size, expand ratio) on first use:
    steady state is what a search-then-extract loop sees; the first extraction is noted). With
    the reference, the two sides' passes alternate (:func:`interleaved_median_seconds`, as for
    forward and the training step): on the shared 2-core VM, timing one side after the other
    gave ratios from 4.1x to 5.4x for nearly the same code within an hour. The note also gives each
    side's minor page faults per subnet over one more untimed pass: copied weights land in pages
    the kernel zero-fills whenever glibc has returned the previous subnet's memory to the system
    (a standalone loop of ours took ~2,200 per ``ofa-mbv3`` subnet, ~40% of its time, until the
    5 MB head tensors became copy-on-write; ~20 since)."""
    space = get_space(space_name)
    torch.manual_seed(0)
    model = create_supernet(space).eval()
    rng = np.random.default_rng(0)
    net = None if ref is None else reference_network(ref).eval()  # both exist before any timing
    random.seed(0)

    def ours(n: int = s.extract_configs) -> None:
        for _ in range(n):
            model.get_subnet(space.sample(rng))

    def theirs(n: int = s.extract_configs) -> None:
        for _ in range(n):
            net.sample_active_subnet()
            net.get_active_subnet(preserve_weight=True)

    with torch.no_grad():
        start = time.perf_counter()
        ours(1)
        first = time.perf_counter() - start
        ours(s.extract_warmup)
        if net is None:
            t_ours, t_ref = median_seconds(ours, s.repeats, warmup=0), None
        else:
            theirs(1 + s.extract_warmup)
            t_ours, t_ref = interleaved_median_seconds([ours, theirs], s.repeats, warmup=0)
        faults = _faults_note("ours", minor_page_faults(ours), s.extract_configs)
        if net is not None:
            faults += _faults_note("reference", minor_page_faults(theirs), s.extract_configs)
    return [
        Row(
            f"subnet sampling + extraction ({space_name})",
            "one random subnet",
            "ms",
            t_ours / s.extract_configs * 1e3,
            None if t_ref is None else t_ref / s.extract_configs * 1e3,
            note=f"ours: first extraction {first * 1e3:.1f} ms{faults}",
        )
    ]


def _faults_note(who: str, faults: int | None, subnets: int) -> str:
    """``"; ours: 2,196 page faults/subnet"`` (empty where faults cannot be counted)."""
    if faults is None:
        return ""
    return f"; {who}: {faults / subnets:,.0f} page faults/subnet"


# --- constrained evolutionary search -----------------------------------------------------------


def reference_predictor(ref: Reference, space: SearchSpace) -> Any:
    """The reference's ``AccuracyPredictor`` (MLP 400-400-400) on its ``MobileNetArchEncoder``
    for ``space``, seeded random weights (no trained predictor can be downloaded here)."""
    encoder = ref.arch_encoder.MobileNetArchEncoder(
        image_size_list=list(space.resolutions),
        ks_list=list(space.kernel_sizes),
        expand_list=list(space.expand_ratios),
        depth_list=list(space.depths),
        n_stage=space.num_stages,
    )
    torch.manual_seed(0)
    return ref.acc_predictor.AccuracyPredictor(encoder, device="cpu").eval()


def predictor_like_reference(ref_predictor: Any, space: SearchSpace) -> AccuracyPredictor:
    """Our :class:`AccuracyPredictor` holding the reference predictor's weights, its first layer's
    columns permuted from the reference encoding (resolution, then all kernel sizes, then all
    expand ratios) to ours (kernel size and expand ratio per block, then resolution), so both
    predict the same accuracy for every config."""
    encoder = ref_predictor.arch_encoder
    n_k, n_e = len(space.kernel_sizes), len(space.expand_ratios)
    perm = []
    for slot in range(space.num_blocks):
        perm += [encoder.k_info["val2id"][slot][k] for k in space.kernel_sizes]
        perm += [encoder.e_info["val2id"][slot][e] for e in space.expand_ratios]
    perm += [encoder.r_info["val2id"][r] for r in space.resolutions]
    assert len(perm) == space.num_blocks * (n_k + n_e) + len(space.resolutions)
    ours = AccuracyPredictor(space, summary_features=False)
    ref_linears = [m for m in ref_predictor.layers.modules() if isinstance(m, torch.nn.Linear)]
    our_linears = [m for m in ours.mlp if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, (mine, theirs) in enumerate(zip(our_linears, ref_linears, strict=True)):
            weight = theirs.weight[:, perm] if i == 0 else theirs.weight
            mine.weight.copy_(weight)
            if theirs.bias is not None:
                mine.bias.copy_(theirs.bias)
        ours.base_accuracy.copy_(ref_predictor.base_acc[0])
    return ours.eval()


def search_rows(s: Settings, ref: Reference | None, space_name: str = "ofa-mbv3") -> list[Row]:
    """Once-for-All's constrained evolution (population, generations, parent ratio 0.25,
    mutation ratio 0.5, mutation probability 0.1, resolution mutation 0.5) under ``macs_limit``
    MACs, scored by the same MLP predictor weights on both sides (ours holds the reference's,
    its input columns permuted to our encoding): medians over ``search_seeds`` seeds of the wall
    time, the candidates scored per second and the best predicted accuracy."""
    space = get_space(space_name)
    torch.manual_seed(0)
    ref_predictor = reference_predictor(ref, space) if ref is not None else None
    predictor = (
        predictor_like_reference(ref_predictor, space)
        if ref_predictor is not None
        else AccuracyPredictor(space, summary_features=False).eval()
    )
    limit = s.macs_limit if space_name == "ofa-mbv3" else float(macs([space.middle()], space)[0])
    constraint = Constraint("macs", lambda b: macs(b, space), limit)

    def score(batch: ConfigBatch) -> np.ndarray:
        return predictor.predict_encoded(encode_batch(batch, space))

    runs = [
        evolutionary_search(
            space,
            score,
            [constraint],
            EvolutionConfig(population=s.population, generations=s.generations, seed=seed),
        )
        for seed in range(s.search_seeds)
    ]
    seconds = statistics.median(r.seconds for r in runs)
    rate = statistics.median(r.candidates_scored / r.seconds for r in runs)
    best = statistics.median(r.best_score for r in runs)
    group = f"evolutionary search ({space_name}, MACs <= {limit / 1e6:.0f} M)"
    cfg = f"population {s.population}, {s.generations} generations"
    rows = [
        Row(group, f"wall time, {cfg}", "s", seconds),
        Row(group, "candidates scored per second", "candidates/s", rate, higher_is_better=True),
        Row(
            group,
            f"best predicted accuracy, median of {s.search_seeds} seeds",
            "score",
            best,
            higher_is_better=True,
            difference=True,
        ),
    ]
    if ref is None:
        return rows
    flops_model = ref.efficiency.Mbv3FLOPsModel(reference_network(ref))
    ref_runs = []
    for seed in range(s.search_seeds):
        finder = ref.evolution.EvolutionFinder(
            flops_model,
            ref_predictor,
            population_size=s.population,
            max_time_budget=s.generations,
            parent_ratio=0.25,
            mutation_ratio=0.5,
            arch_mutate_prob=0.1,
            resolution_mutate_prob=0.5,
        )
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002 - the reference draws from numpy's global state
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():  # it prints every 100
            _, best_info = finder.run_evolution_search(s.macs_limit / 1e6, verbose=False)
        ref_runs.append((time.perf_counter() - start, float(best_info[0]), best_info))
    ref_seconds = statistics.median(r[0] for r in ref_runs)
    ref_scored = s.population * (s.generations + 1)
    # Both sides' best subnets, costed by both MACs counters (they agree on every config).
    ours_best = max(runs, key=lambda r: r.best_score).best
    theirs_best = max(ref_runs, key=lambda r: r[1])[2][1]
    theirs_config = ArchConfig(
        theirs_best["image_size"],
        tuple(theirs_best["ks"]),
        tuple(theirs_best["e"]),
        tuple(theirs_best["d"]),
    )
    note = (
        f"all {s.search_seeds} seeds: ours "
        f"{', '.join(f'{r.best_score:.4g}' for r in runs)}; reference "
        f"{', '.join(f'{r[1]:.4g}' for r in ref_runs)}. Best subnets: ours "
        f"{float(macs([ours_best], space)[0]) / 1e6:.1f} M MACs "
        f"({flops_model.get_efficiency(reference_arch(ours_best)):.1f} M by the "
        f"reference's counter), reference {float(macs([theirs_config], space)[0]) / 1e6:.1f} "
        f"M MACs. Same predictor weights (seeded random: no trained predictor can be "
        f"downloaded here)"
    )
    return [
        replace(rows[0], reference=ref_seconds),
        replace(rows[1], reference=ref_scored / ref_seconds),
        replace(rows[2], reference=statistics.median(r[1] for r in ref_runs), note=note),
    ]


# --- MACs counting -----------------------------------------------------------------------------


def macs_rows(s: Settings, ref: Reference | None, space_name: str = "ofa-mbv3") -> list[Row]:
    """Microseconds to count one config's MACs: batched ``supernet.cost.macs`` over
    ``macs_configs`` configs vs the reference's ``Mbv3FLOPsModel.get_efficiency`` one config at
    a time, on the same configs (the note gives both counts for the largest subnet)."""
    space = get_space(space_name)
    rng = np.random.default_rng(0)
    configs = [space.sample(rng) for _ in range(s.macs_configs)]
    batch = ConfigBatch.from_configs(configs, space)
    t_ours = median_seconds(lambda: macs(batch, space), s.repeats) / s.macs_configs
    row = Row(f"MACs counting ({space_name})", "per config", "µs", t_ours * 1e6)
    if ref is None:
        return [row]
    flops_model = ref.efficiency.Mbv3FLOPsModel(reference_network(ref))
    arches = [reference_arch(c) for c in configs[: s.reference_macs_configs]]

    def theirs() -> None:
        for arch in arches:
            flops_model.get_efficiency(arch)

    t_ref = median_seconds(theirs, s.repeats) / len(arches)
    largest = space.largest()
    note = (
        f"largest subnet: {float(macs([largest], space)[0]) / 1e6:.1f} M MACs (ours, all "
        f"layers) vs {flops_model.get_efficiency(reference_arch(largest)):.1f} M "
        f"(reference)"
    )
    return [replace(row, reference=t_ref * 1e6, note=note)]


# --- exported-subnet inference -----------------------------------------------------------------


def onnxruntime_rows(s: Settings, space_name: str = "mbv3-tiny") -> list[Row]:
    """Batch-1 latency (ms) of the extracted largest and smallest subnets: onnxruntime as
    ``ours`` and PyTorch eager (the faster memory format, inference mode) as ``reference``, so
    the ratio is the onnxruntime speed-up (``supernet.cost.measure_latency``)."""
    space = get_space(space_name)
    torch.manual_seed(0)
    model = create_supernet(space).eval()
    rows = []
    for label, config in (("largest", space.largest()), ("smallest", space.smallest())):
        subnet = model.get_subnet(config)
        shape = (1, space.input_channels, config.resolution, config.resolution)
        kw = {"threads": s.threads, "repeats": max(s.repeats, 5), "warmup": 10}
        eager = measure_latency(subnet, shape, runtime="torch", **kw)
        ort = measure_latency(subnet, shape, runtime="onnxruntime", **kw)
        rows.append(
            Row(
                f"exported subnet, batch 1 ({space_name})",
                f"{label}: onnxruntime vs PyTorch eager ({eager.memory_format})",
                "ms",
                ort.median_ms,
                eager.median_ms,
                baseline="eager",
            )
        )
    return rows


# --- the whole run -----------------------------------------------------------------------------

METRICS: dict[str, Callable[..., list[Row]]] = {
    "forward": forward_rows,
    "train-step": train_step_rows,
    "extraction": extraction_rows,
    "search": search_rows,
    "macs": macs_rows,
}


def run_all(
    s: Settings,
    ref: Reference | None,
    only: tuple[str, ...] = (),
    log: Callable[[str], None] = print,
) -> list[Row]:
    """Every metric (or those in ``only``: names of ``METRICS`` and ``"onnxruntime"``) on
    ``ofa-mbv3`` (with the reference) and, when ``s.tiny``, on ``mbv3-tiny`` (ours alone).

    Each metric function takes ``(settings, reference, space name)``; the reference network is
    the ``ofa-mbv3`` space's, so it is passed for that space only and is None for any other."""
    torch.set_num_threads(s.threads)
    rows: list[Row] = []
    for name, fn in METRICS.items():
        if only and name not in only:
            continue
        log(f"running {name} ...")
        rows += fn(s, ref, "ofa-mbv3")
        if s.tiny:
            rows += fn(s, None, "mbv3-tiny")
    if s.tiny and (not only or "onnxruntime" in only):
        log("running onnxruntime ...")
        rows += onnxruntime_rows(s)
    return rows


def environment(s: Settings, ref: Reference | None) -> dict[str, str]:
    """Machine and versions for the results header."""
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import version

    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{cpu} ({torch.get_num_threads()} of {torch.multiprocessing.cpu_count()} "
        f"logical cores used)",
        "threads": str(s.threads),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "supernet": version("supernet"),
        "reference": "not installed (pip install ofa tqdm)"
        if ref is None
        else f"ofa {ref.version}"
        + (
            " (torchvision stubbed: the reference imports it only for data "
            "loading, which is not benchmarked)"
            if ref.stubbed_torchvision
            else ""
        ),
    }
