import csv

import pytest
import torch
import torch.nn.functional as F

from supernet.checkpoint import load_checkpoint
from supernet.data import BatchLoader, load_digits, resize
from supernet.errors import CheckpointError, RunDirError
from supernet.nn import create_supernet
from supernet.space import get_space
from supernet.train import TrainReporter, recalibrate_bn, train
from supernet.train.rundir import CHECKPOINT


def test_a_few_steps_on_real_digits_reduce_the_loss():
    splits = load_digits()
    space = get_space("mbv3-tiny", num_classes=10)
    model = create_supernet(space, dropout=0.0)
    model.set_active(space.smallest())
    gen = torch.Generator().manual_seed(0)
    loader = BatchLoader(splits.train, 64, shuffle=True, augment=False, generator=gen)
    x_eval, y_eval = next(iter(BatchLoader(splits.val, 200, shuffle=False, augment=False)))
    x_eval = resize(x_eval, 20)

    def eval_loss():
        subnet = model.get_subnet(space.smallest())
        recalibrate_bn(subnet, (resize(x, 20) for x, _ in loader))
        with torch.no_grad():
            return F.cross_entropy(subnet(x_eval), y_eval).item()

    before = eval_loss()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(2):
        for x, y in loader:
            loss = F.cross_entropy(model(resize(x, 20)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = eval_loss()
    assert after < 0.5 * before


def _rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_training_runs_every_phase_and_writes_the_run_dir(tmp_path, tiny_config):
    cfg = tiny_config()
    result = train(cfg, tmp_path / "run")
    rows = _rows(tmp_path / "run")
    expected = [(p.name, e + 1) for p in cfg.phases for e in range(p.epochs)]
    assert [(r["phase"], int(r["epoch"])) for r in rows] == expected
    assert (tmp_path / "run" / "config.yaml").read_text() == cfg.to_yaml()
    payload, meta = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert payload["phase_index"] == len(cfg.phases) and payload["epoch"] == 0
    assert payload["teacher"] is not None and meta["space"] == "mbv3-tiny"
    assert all(0.0 <= float(r["val_acc_smallest"]) <= 100.0 for r in rows)
    assert result.supernet.active_config == result.supernet.space.largest()


class _Crash(Exception):
    pass


class _CrashAfter(TrainReporter):
    def __init__(self, epochs: int) -> None:
        self.left = epochs

    def on_epoch_end(self, row):
        self.left -= 1
        if self.left == 0:
            raise _Crash


@pytest.mark.parametrize("crash_after_epochs", [1, 3, 5])
def test_resume_continues_exactly_where_it_stopped(tmp_path, tiny_config, crash_after_epochs):
    cfg = tiny_config()
    reference = train(cfg, tmp_path / "a").supernet.state_dict()
    with pytest.raises(_Crash):
        train(cfg, tmp_path / "b", reporter=_CrashAfter(crash_after_epochs))
    resumed = train(cfg, tmp_path / "b", resume=True).supernet.state_dict()
    assert _rows(tmp_path / "a") == [
        {**r, "train_seconds": a["train_seconds"]}
        for r, a in zip(_rows(tmp_path / "b"), _rows(tmp_path / "a"), strict=True)
    ]
    for key, value in reference.items():
        assert torch.equal(value, resumed[key]), key


def test_existing_run_is_not_overwritten_without_force(tmp_path, tiny_config):
    cfg = tiny_config(phases=[{"name": "full", "epochs": 1, "lr": 0.05, "distill": False}])
    train(cfg, tmp_path / "run")
    before = (tmp_path / "run" / CHECKPOINT).read_bytes()
    with pytest.raises(RunDirError, match=r"already holds a run; pass --resume .* or --force"):
        train(cfg, tmp_path / "run")
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() == before
    other = tiny_config(batch_size=16, phases=cfg.to_dict()["phases"])
    with pytest.raises(
        RunDirError, match=r"holds a different run .* differing keys: \['batch_size'\]"
    ):
        train(other, tmp_path / "run", resume=True)
    train(other, tmp_path / "run", force=True)
    assert (tmp_path / "run" / CHECKPOINT).read_bytes() != before


def test_non_run_directory_is_refused(tmp_path, tiny_config):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="not empty and holds no supernet run"):
        train(tiny_config(), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, tiny_config):
    cfg = tiny_config(phases=[{"name": "full", "epochs": 2, "lr": 0.05, "distill": False}])
    with pytest.raises(_Crash):
        train(cfg, tmp_path, reporter=_CrashAfter(1))
    path = tmp_path / CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        train(cfg, tmp_path, resume=True)


def _full_then_sandwich(name: str, *, epochs: int = 1) -> list[dict]:
    """A one-epoch full-network phase, then a sandwich phase of 3 subnets per step."""
    return [
        {"name": "full", "epochs": 1, "lr": 0.05, "kernel_sizes": "max", "expand_ratios": "max",
         "depths": "max", "distill": False},
        {"name": name, "epochs": epochs, "lr": 0.02, "subnets_per_step": 3, "sandwich": True},
    ]  # fmt: skip


def test_sandwich_trains_the_largest_and_smallest_every_step(tmp_path, tiny_config, monkeypatch):
    from supernet.nn import OFAMobileNetV3

    seen = []
    original = OFAMobileNetV3.set_active

    def record(self, config):
        if self.training:
            seen.append(config)
        original(self, config)

    monkeypatch.setattr(OFAMobileNetV3, "set_active", record)
    phases = _full_then_sandwich("expand")
    train(tiny_config(phases=phases), tmp_path)
    space = get_space("mbv3-tiny")
    steps = 96 // 32
    # seen: the constructor's config, one per full-phase step, 3 per sandwich step, the final reset
    assert len(seen) == 1 + steps + 3 * steps + 1
    sandwich = seen[1 + steps : 1 + 4 * steps]
    for i in range(steps):
        big, small, rand = sandwich[3 * i : 3 * i + 3]
        assert big.kernel_size == space.largest().kernel_size and big.depth == (4,) * 5
        assert small.expand_ratio == space.smallest().expand_ratio
        assert small.depth == (2,) * 5 and big.resolution == small.resolution == rand.resolution


def test_sandwich_needs_two_subnets_per_step(tiny_config):
    from supernet.errors import ConfigError

    with pytest.raises(ConfigError, match="sandwich needs subnets_per_step >= 2, got 1"):
        tiny_config(phases=[{"name": "f", "epochs": 1, "lr": 0.1, "distill": False,
                             "sandwich": True}])  # fmt: skip


def test_inplace_teacher_distills_from_the_largest_of_the_same_step(
    tmp_path, tiny_config, monkeypatch
):
    import supernet.train.trainer as trainer_module
    from supernet.nn import OFAMobileNetV3

    outputs, targets = [], []
    forward = OFAMobileNetV3.forward

    def record_forward(self, x):
        out = forward(self, x)
        if self.training:
            outputs.append(out.detach().clone())
        return out

    kd = trainer_module.soft_target_cross_entropy

    def record_kd(logits, target_probs):
        targets.append(target_probs.clone())
        return kd(logits, target_probs)

    monkeypatch.setattr(OFAMobileNetV3, "forward", record_forward)
    monkeypatch.setattr(trainer_module, "soft_target_cross_entropy", record_kd)
    phases = _full_then_sandwich("kernel")
    train(tiny_config(phases=phases, teacher="inplace"), tmp_path)
    steps = 96 // 32
    sandwich = outputs[steps:]
    assert len(sandwich) == 3 * steps and len(targets) == 2 * steps
    for i in range(steps):
        expected = torch.softmax(sandwich[3 * i], dim=1)  # the largest, trained first
        torch.testing.assert_close(targets[2 * i], expected)
        torch.testing.assert_close(targets[2 * i + 1], expected)
    payload, _ = load_checkpoint(tmp_path / CHECKPOINT)
    assert payload["teacher"] is None  # no frozen copy is kept


def test_inplace_teacher_needs_the_sandwich_rule(tiny_config):
    from supernet.errors import ConfigError

    with pytest.raises(ConfigError, match=r"phases\[1\] \('kernel'\) has distill: true with"):
        tiny_config(teacher="inplace")
    with pytest.raises(ConfigError, match=r"teacher = 'self'; choose from \('frozen', 'inplace'\)"):
        tiny_config(teacher="self")


def _record_training_inputs(monkeypatch):
    """(config set active, input shape) of every training-mode forward of the supernet."""
    from supernet.nn import OFAMobileNetV3

    seen = []
    forward = OFAMobileNetV3.forward

    def record(self, x):
        if self.training:
            seen.append((self.active_config, tuple(x.shape[-2:])))
        return forward(self, x)

    monkeypatch.setattr(OFAMobileNetV3, "forward", record)
    return seen


@pytest.mark.parametrize("teacher", ["inplace", "frozen"])
def test_sandwich_resolution_extremes_trains_each_extreme_at_its_own_resolution(
    tmp_path, tiny_config, monkeypatch, teacher
):
    import supernet.train.trainer as trainer_module

    seen = _record_training_inputs(monkeypatch)
    teacher_inputs = []
    make_teacher = trainer_module._teacher

    def recording_teacher(model, *args):
        t = make_teacher(model, *args)
        t.register_forward_pre_hook(lambda _m, args: teacher_inputs.append(args[0].shape[-1]))
        return t

    monkeypatch.setattr(trainer_module, "_teacher", recording_teacher)
    phases = _full_then_sandwich("expand", epochs=2)
    cfg = tiny_config(phases=phases, teacher=teacher, sandwich_resolution="extremes")
    train(cfg, tmp_path)
    space = get_space("mbv3-tiny")
    steps = 2 * (96 // 32)
    sandwich = seen[96 // 32 :]
    assert len(sandwich) == 3 * steps
    random_resolutions = set()
    for i in range(steps):
        (big, big_hw), (small, small_hw), (rand, rand_hw) = sandwich[3 * i : 3 * i + 3]
        assert big == space.largest() and big_hw == (32, 32)
        assert small == space.smallest() and small_hw == (20, 20)
        assert rand_hw == (rand.resolution, rand.resolution)
        random_resolutions.add(rand.resolution)
    assert len(random_resolutions) > 1  # the random subnet still draws the step's resolution
    assert teacher_inputs == ([32] * steps if teacher == "frozen" else [])


def test_sandwich_resolution_step_shares_the_random_resolution(tmp_path, tiny_config, monkeypatch):
    seen = _record_training_inputs(monkeypatch)
    phases = _full_then_sandwich("expand", epochs=2)
    train(tiny_config(phases=phases, teacher="inplace"), tmp_path)
    sandwich = seen[96 // 32 :]
    for i in range(0, len(sandwich), 3):
        shapes = {hw for _, hw in sandwich[i : i + 3]}
        resolutions = {c.resolution for c, _ in sandwich[i : i + 3]}
        assert len(shapes) == 1 and resolutions == {next(iter(shapes))[0]}


def test_sandwich_resolution_is_validated(tiny_config):
    from supernet.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"sandwich_resolution = 'max'; choose from \('step', 'extremes'\)"
    ):
        tiny_config(sandwich_resolution="max")
