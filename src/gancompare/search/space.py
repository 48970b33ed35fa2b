"""The part of a search space that depends on the loss: the weight of each regulariser the run
has (`regularizer.gp.weight`, `regularizer.r1.gamma`, `regularizer.clip.limit`), drawn from the
range `search.penalty_ranges` gives that field. Hydra's Optuna sweeper calls it for every trial
(`hydra.sweeper.custom_search_space`) with the setting's composed config, so one search file
serves every loss: WGAN-GP's trials draw lambda, non-saturating's draw nothing."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def penalty_weights(cfg: DictConfig, trial) -> None:  # trial: optuna.trial.Trial
    """Suggest, log-uniformly, every field of the run's regularisers that
    `search.penalty_ranges` names (field -> [low, high])."""
    ranges = OmegaConf.select(cfg, "search.penalty_ranges") or {}
    for name, unit in (cfg.get("regularizer") or {}).items():
        if name == "every" or not isinstance(unit, DictConfig):
            continue
        for field in unit:
            if field in ranges:
                low, high = (float(v) for v in ranges[field])
                trial.suggest_float(f"regularizer.{name}.{field}", low, high, log=True)
