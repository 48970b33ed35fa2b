"""Checks of a composed config before anything is built, and the few settings derived from it.

Types are checked by Hydra against `schema.py` while composing, the range of every numeric key
by `ranges.py`, and combinations (a known hack for this loss, simultaneous updates) here. Each
check raises `ConfigError(key, problem, fix)`, which the entrypoint prints as one line.
"""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from gancompare.errors import ConfigError
from gancompare.ranges import SEED, check_ranges
from gancompare.step.hacks import check_hacks
from gancompare.step.losses import build_objective

log = logging.getLogger(__name__)


UPDATES = ("alternating", "simultaneous")
D_PASSES = ("joint", "separate")
G_LATENTS = ("fresh", "shared")
REAL_RANGES = ("signed", "unit")  # real images in [-1, 1] or [0, 1]
LATENTS = ("normal", "uniform")


def _choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> str:
    value = OmegaConf.select(cfg, key)
    if value not in choices:
        raise ConfigError(key, f"unknown value '{value}'", f"choose one of {', '.join(choices)}")
    return value


def check_config(cfg: DictConfig) -> None:
    """Refuse bad input with the key and the fix, before any data or model is built (the update
    scheme's combinations are the phases' to refuse: `phases.schedule`)."""
    check_ranges(cfg)
    if "real_range" in cfg.data and _choice(cfg, "data.real_range", REAL_RANGES) == "unit" \
            and cfg.data.source == "mixture":
        raise ConfigError("data.real_range", "the 2-D mixtures are points, not pixels",
                          f"drop data.real_range for data={cfg.data.name}")
    _choice(cfg, "optimizer.updates", UPDATES)
    _choice(cfg, "optimizer.d_passes", D_PASSES)
    _choice(cfg, "optimizer.g_latents", G_LATENTS)
    _choice(cfg, "model.latent_distribution", LATENTS)
    _choice(cfg, "eval.feature_space", FEATURE_SPACES)
    check_eval_samples(cfg.eval.final_samples, cfg, "eval.final_samples")
    check_eval_samples(cfg.eval.epoch_samples, cfg, "eval.epoch_samples")
    if OmegaConf.select(cfg, "trainer.seeds") is not None:
        check_seeds(cfg.trainer.seeds)
    objective = build_objective(cfg.loss.objective)
    check_hacks(cfg.get("hacks") or {}, objective.uses_labels, cfg.loss.name,
                objective.separable)
    if not objective.separable and cfg.trainer.batch_size % 2:
        raise ConfigError("trainer.batch_size", f"loss={cfg.loss.name} compares D's outputs on "
                          f"as many real as generated samples, and {cfg.trainer.batch_size} does "
                          "not split in two halves", "set an even trainer.batch_size, e.g. 128")
    resolve_device(cfg.device)


def check_seeds(seeds: object) -> list[int]:
    """`trainer.seeds`: distinct integer seeds, each one `seed` accepts, one run each."""
    values = list(seeds) if isinstance(seeds, list | tuple | ListConfig) else None
    if not values or any(isinstance(s, bool) or not isinstance(s, int) for s in values) \
            or len(set(values)) != len(values):
        raise ConfigError("trainer.seeds", f"{seeds!r} is not a list of distinct integer seeds",
                          "set e.g. trainer.seeds=[0,1,2], or null for one run of `seed`")
    bad = [s for s in values if not SEED.admits(s)]
    if bad:
        raise ConfigError("trainer.seeds", f"{list(values)!r} holds {bad[0]}, which is not "
                          f"{SEED.describe()}", "set seeds in that range, e.g. "
                          "trainer.seeds=[0,1,2]")
    return values


FEATURE_SPACES = ("auto", "classifier", "inception", "pixels")


def min_eval_samples(cfg: DictConfig) -> int:
    """The fewest samples an evaluation can score: PRDC's k-th neighbour needs k + 1."""
    return int(cfg.eval.prdc_k) + 1


def check_eval_samples(n: int, cfg: DictConfig, key: str) -> None:
    """`n` generated samples are enough for every metric (or 0, which skips the evaluation)."""
    low = min_eval_samples(cfg)
    if n != 0 and n < low:
        raise ConfigError(key, f"{n} samples are too few to evaluate (PRDC's k-th nearest "
                          f"neighbour, eval.prdc_k={cfg.eval.prdc_k}, needs at least {low})",
                          f"give at least {low}, e.g. {key}{' ' if key.startswith('-') else '='}"
                          "1000")


def effective_config(cfg: DictConfig) -> DictConfig:
    """A copy of cfg with the settings that follow from other settings made explicit,
    so the saved config says what actually ran."""
    cfg = cfg.copy()
    with open_dict(cfg):
        if cfg.get("hacks") is None:
            cfg.hacks = {}
        if cfg.get("regularizer") is None:
            cfg.regularizer = {"every": 1}
        penalties = [n for n in cfg.regularizer if n not in ("every", "clip")]
        if penalties and cfg.model.d_norm == "batch":
            # SPEC: a critic under a gradient penalty must not use batch norm, which couples the
            # samples whose per-sample gradient norms the penalty constrains.
            log.warning("model.d_norm=batch replaced by layer norm: regularizer=[%s] penalises "
                        "D's gradient per sample (set model.d_norm=none for no normalisation)",
                        ",".join(penalties))
            cfg.model.d_norm = "layer"
    return cfg


# What a run saved before a model key existed ran with (the typed groups take the schema's).
SAVED_BEFORE = {"model.pack": 1, "model.latent_distribution": "normal", "search": None}
# Units a saved config names by import path, from before the step became a subpackage.
MOVED = {"gancompare.losses.": "gancompare.step.losses.",
         "gancompare.regularizers.": "gancompare.step.regularizers."}


# What `_target_` replaced: the loader of each `data.source`, before `data.loader` named it.
LOADERS = {"mnist": "mnist", "fashion-mnist": "fashion_mnist", "stacked-mnist": "stacked_mnist",
           "mixture": "mixture", "image-folder": "image_folder"}


def _moved(path: str) -> str:
    for old, new in MOVED.items():
        if path.startswith(old):
            return new + path[len(old):]
    return path


def upgrade_saved(cfg: DictConfig) -> DictConfig:
    """A run's saved config.yaml in today's keys, so runs saved before a change re-evaluate:
    the typed groups (trainer, optimizer, eval, verdict) over the schema's defaults, model keys
    added since with the value they ran with, the penalty and clipping that a loss carried
    (`loss.gradient_penalty`, `loss.clip_weights`) as the `regularizer` group, units named before
    `_target_` (`loss.objective` by import path, `model.arch`, `data.source`) by `_target_`, and
    import paths of units that have moved."""
    from gancompare.schema import TrainSchema

    defaults = OmegaConf.to_container(OmegaConf.structured(TrainSchema))
    cfg = cfg.copy()
    with open_dict(cfg):
        for group in ("trainer", "optimizer", "eval", "verdict"):
            cfg[group] = OmegaConf.merge(defaults[group], cfg.get(group) or {})
        for key, value in SAVED_BEFORE.items():
            if OmegaConf.select(cfg, key, default=None) is None:
                OmegaConf.update(cfg, key, value, force_add=True)
        if OmegaConf.select(cfg, "model.norm_init_std", default=None) is None:
            cfg.model.norm_init_std = cfg.model.init_std
        if "regularizer" not in cfg:
            cfg.regularizer = {"every": 1}
            weight = cfg.loss.pop("gradient_penalty", None)
            limit = cfg.loss.pop("clip_weights", None)
            if weight:
                cfg.regularizer.gp = {"_target_": "gancompare.step.regularizers.GradientPenalty",
                                      "weight": weight}
            if limit:
                cfg.regularizer.clip = {"_target_": "gancompare.step.regularizers.WeightClip",
                                        "limit": limit}
        if isinstance(cfg.loss.objective, str):  # named by import path before `_target_`
            cfg.loss.objective = {"_target_": _moved(cfg.loss.objective)}
        if "arch" in cfg.model:
            cfg.model.name = cfg.model.pop("arch")
            builder = cfg.model.name.replace("-", "_")
            cfg.model.networks = {"_target_": f"gancompare.networks.architectures.{builder}",
                                  "_partial_": True}
        if "loader" not in cfg.data and cfg.data.get("source") in LOADERS:
            cfg.data.loader = {"_target_": "gancompare.data.datasets."
                                           f"{LOADERS[cfg.data.source]}", "_partial_": True}
        for name, unit in cfg.regularizer.items():
            if name != "every":
                unit._target_ = _moved(unit._target_)
    return cfg


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", f"{name} asked for, but CUDA is not available here",
                          "use device=auto or device=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError("device", f"unknown device '{name}'", "use auto, cpu or cuda") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def set_threads(threads: int | None) -> None:
    """Torch intra-op threads; parallel launchers give each job its share of the cores."""
    if threads:
        torch.set_num_threads(int(threads))
        os.environ["OMP_NUM_THREADS"] = str(threads)
