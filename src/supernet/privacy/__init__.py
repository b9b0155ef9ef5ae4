"""What a shared on-device update leaks: Deep Leakage from Gradients (DLG, iDLG) against the
paper's LeNet and TinyTL updates of supernet subnets, defenses, and reconstruction metrics.

References: Zhu, Liu, Han, "Deep Leakage from Gradients", NeurIPS'19, arXiv 1906.08935;
Zhao, Mopuri, Bilen, "iDLG", arXiv 2001.02610; Cai et al., "TinyTL", NeurIPS'20, arXiv 2007.11622.
"""

from supernet.privacy.accuracy_cost import DefenseCost, defense_accuracy_cost
from supernet.privacy.defenses import DEFENSES, Defense, parse_defense, prune_smallest
from supernet.privacy.dlg import (
    LABEL_STRATEGIES,
    MAX_BATCH_SIZE,
    Reconstruction,
    dlg_attack,
    gradient_distance,
    recover_label,
    shared_gradient,
    soft_cross_entropy,
)
from supernet.privacy.experiment import PSNR_LEAK_DB, AttackRow, SeedResult, attack_seed, run_dlg
from supernet.privacy.lenet import LeNet, make_lenet
from supernet.privacy.metrics import (
    MissingDependencyError,
    match_images,
    psnr,
    require_skimage,
    ssim,
    to_pixels,
)
from supernet.privacy.victims import LENET_DATASETS, Victim, lenet_victim, transfer_victim

__all__ = [
    "DEFENSES",
    "LABEL_STRATEGIES",
    "LENET_DATASETS",
    "MAX_BATCH_SIZE",
    "PSNR_LEAK_DB",
    "AttackRow",
    "Defense",
    "DefenseCost",
    "LeNet",
    "MissingDependencyError",
    "Reconstruction",
    "SeedResult",
    "Victim",
    "attack_seed",
    "defense_accuracy_cost",
    "dlg_attack",
    "gradient_distance",
    "lenet_victim",
    "make_lenet",
    "match_images",
    "parse_defense",
    "prune_smallest",
    "psnr",
    "recover_label",
    "require_skimage",
    "run_dlg",
    "shared_gradient",
    "soft_cross_entropy",
    "ssim",
    "to_pixels",
    "transfer_victim",
]
