"""Progressive shrinking: config, schedule, distillation, BN re-calibration, evaluation, loop."""

from supernet.train.bn import recalibrate_bn
from supernet.train.config import (
    PhaseConfig,
    TrainConfig,
    list_presets,
    load_config,
    parse_overrides,
)
from supernet.train.distill import soft_target_cross_entropy
from supernet.train.evaluate import SubnetScore, accuracy, calibration_loader, evaluate_subnet
from supernet.train.run import LoadedRun, load_run
from supernet.train.rundir import prepare_run_dir, read_run_config
from supernet.train.schedule import lr_at, phase_space
from supernet.train.trainer import (
    TrainReporter,
    TrainResult,
    build_supernet,
    checkpoint_metadata,
    train,
)

__all__ = [
    "LoadedRun",
    "PhaseConfig",
    "SubnetScore",
    "TrainConfig",
    "TrainReporter",
    "TrainResult",
    "accuracy",
    "build_supernet",
    "calibration_loader",
    "checkpoint_metadata",
    "evaluate_subnet",
    "list_presets",
    "load_config",
    "load_run",
    "lr_at",
    "parse_overrides",
    "phase_space",
    "prepare_run_dir",
    "read_run_config",
    "recalibrate_bn",
    "soft_target_cross_entropy",
    "train",
]
