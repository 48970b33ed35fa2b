"""The typed schema of a run's config. Hydra checks every value against it while composing, so
`seed=abc` or `trainer.epochs=ten` is refused before anything runs (the entrypoint reports it as
one line). Ranges that a type cannot say (positive batch sizes, learning rates) are checked in
`config.check_config`. The groups whose content depends on the option (model, loss, data, hacks)
stay open: their option files are the schema there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class TrainerSchema:
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 128
    log_every: int = 25
    sample_grid: int = 10
    keep_checkpoints: int = 2
    resume: Any = "auto"
    threads: int | None = None
    progress_bar: bool = True
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    fused_optimizers: bool = True
    seeds: list[int] | None = None


@dataclass
class OptimizerSchema:
    name: str = "dcgan"
    d: Any = None
    g: Any = None
    d_steps: int = 1
    g_steps: int = 1
    updates: str = "alternating"
    d_passes: str = "joint"
    g_latents: str = "fresh"


@dataclass
class EvalSchema:
    every_epoch: bool = True
    every_steps: int | None = None
    epoch_samples: int = 1000
    final_samples: int = 10000
    feature_space: str = "auto"
    inception_weights: str | None = None
    classifier_weights: str | None = None
    reference_samples: int = 10000
    ndb_bins: int = 100
    prdc_k: int = 5
    prdc_samples: int = 5000
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    duplicate_quantile: float = 0.01
    mixture_samples: int = 2500
    stacked_samples: int = 26000
    seed: int = 0


@dataclass
class VerdictSchema:
    window: float = 0.5
    d_loss_max: float = 0.05
    d_acc_min: float = 0.98
    sustained_min: float = 0.8
    g_loss_climbing_min: float = 5.0
    precision_min: float = 0.05
    distinct_min: float = 0.5
    distinct_spread_max: float = 0.6
    coverage_min: float = 0.03
    mode_share_min: float = 0.75
    class_share_min: float = 0.8
    oscillation_autocorr_min: float = 0.3
    d_acc_fake_min: float = 0.9


@dataclass
class TrainSchema:
    seed: int = 0
    device: str = "auto"
    tags: list[str] = field(default_factory=list)
    job_type: str = "train"
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    optimizer: OptimizerSchema = field(default_factory=OptimizerSchema)
    eval: EvalSchema = field(default_factory=EvalSchema)
    verdict: VerdictSchema = field(default_factory=VerdictSchema)
    paths: Any = None
    model: Any = None
    loss: Any = None
    data: Any = None
    hacks: Any = None
    regularizer: Any = None
    logger: Any = None
    search: Any = None  # search=<space>: a hyperparameter study's settings (conf/search/)


def register() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainSchema)
