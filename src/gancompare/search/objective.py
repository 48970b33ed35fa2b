"""What a search trial scores: one final metric of its run, and the worst value when the run
did not finish (diverged, failed or refused), so a study counts every trial it ran."""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig

from gancompare.errors import ConfigError

# search.metric=auto: FID in the data's feature space; on a 2-D mixture, PacGAN's reverse KL
# (FID on points only compares two Gaussians' moments, which a ring's noise matches).
AUTO_METRIC = {"mixture": "mixture_reverse_kl"}
DIRECTIONS = ("minimize", "maximize")


def metric_name(search: DictConfig, data: DictConfig) -> str:
    """search.metric, with `auto` read for the data's kind."""
    name = str(search.metric)
    return AUTO_METRIC.get(str(data.get("source")), "fid") if name == "auto" else name


def worst_value(direction: str) -> float:
    if direction not in DIRECTIONS:
        raise ConfigError("search.direction", f"'{direction}' is not a direction",
                          "use minimize or maximize")
    return math.inf if direction == "minimize" else -math.inf


def metric_value(metrics: dict[str, Any], name: str) -> float | None:
    """The final metric `name`: the key itself (`fid_mnist_cnn`), or its one feature-space
    variant (`fid` is `fid_<feature space>`); None when the run has none."""
    if name in metrics:
        return float(metrics[name])
    variants = [k for k in metrics if k.startswith(name + "_") and not k.startswith(
        name + "_std")]
    if len(variants) > 1:
        raise ConfigError("search.metric", f"'{name}' names {len(variants)} metrics "
                          f"({', '.join(sorted(variants))})", "give one of them")
    return float(metrics[variants[0]]) if variants else None


def trial_value(summary: dict[str, Any] | None, name: str, direction: str) -> float:
    """The value a study records for one trial: its final metric when the run finished, the
    worst value when it diverged, failed, was refused or has no finite metric."""
    worst = worst_value(direction)
    if not summary or summary.get("status") != "finished":
        return worst
    value = metric_value(summary.get("eval") or {}, name)
    return value if value is not None and math.isfinite(value) else worst
