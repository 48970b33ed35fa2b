"""The `hacks` group: D's label targets (smoothing, noisy) and how D sees a batch
(separate-batches).

Hacks compose: `hacks=[smoothing,noisy]` merges both option files under `cfg.hacks`.
- smoothing: real labels drawn uniformly from `real` (default [0.7, 1.2], ganhacks); fake labels
  from `fake` when set (two-sided), else 0.
- noisy: each of D's labels is flipped with probability `flip` (default 0.05): a flipped real
  sample gets a fake label and a flipped fake sample a real one (drawn as above).
- separate-batches: D is updated on an all-real batch, one optimiser step, then an all-fake
  batch and another step (the failure-modes tutorial's two train_on_batch calls; `gan.py`).
  Without it D sees one concatenated real+fake batch and takes one step.
Label hacks mean nothing for a loss without labels (WGAN, WGAN-GP, hinge) and are refused there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from gancompare.errors import ConfigError

LABEL_HACKS = ("smoothing", "noisy")
KNOWN_HACKS = ("smoothing", "noisy", "separate-batches")


@dataclass(frozen=True)
class LabelRange:
    low: float
    high: float

    def draw(self, n: int, device: torch.device) -> Tensor:
        if self.low == self.high:
            return torch.full((n,), float(self.low), device=device)
        return torch.empty(n, device=device).uniform_(self.low, self.high)


class Labels:
    """D's targets for a real and a fake batch, with the label hacks applied."""

    def __init__(self, hacks: Mapping, device: torch.device) -> None:
        smoothing = hacks.get("smoothing")
        noisy = hacks.get("noisy")
        self.real = (_range(smoothing["real"], "hacks.smoothing.real") if smoothing
                     else LabelRange(1, 1))
        fake = smoothing.get("fake") if smoothing else None
        self.fake = _range(fake, "hacks.smoothing.fake") if fake is not None else LabelRange(0, 0)
        self.flip = float(noisy["flip"]) if noisy else 0.0  # in [0, 0.5]: ranges.py
        self.device = device

    def __call__(self, n_real: int, n_fake: int) -> tuple[Tensor, Tensor]:
        real = self.real.draw(n_real, self.device)
        fake = self.fake.draw(n_fake, self.device)
        if self.flip > 0:
            real = torch.where(self._flips(n_real), self.fake.draw(n_real, self.device), real)
            fake = torch.where(self._flips(n_fake), self.real.draw(n_fake, self.device), fake)
        return real, fake

    def _flips(self, n: int) -> Tensor:
        return torch.rand(n, device=self.device) < self.flip


def _range(value, key: str) -> LabelRange:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"{value!r} is not a [low, high] pair",
                          f"set e.g. {key}=[0.7,1.2]") from None
    if low > high:
        raise ConfigError(key, f"low {low} is above high {high}", f"set e.g. {key}=[0.7,1.2]")
    return LabelRange(low, high)


def check_hacks(hacks: Mapping, uses_labels: bool, loss: str, separable: bool = True) -> None:
    """Refuse a hack that means nothing for the chosen loss, instead of half-applying it.
    `separable`: D's loss is a term on real plus one on generated samples (not relativistic)."""
    for name in hacks:
        if name not in KNOWN_HACKS:
            raise ConfigError("hacks", f"unknown hack '{name}'",
                              f"choose any subset of {', '.join(KNOWN_HACKS)}")
    smoothing = hacks.get("smoothing") or {}
    for side in ("real", "fake"):
        if smoothing.get(side) is not None:
            _range(smoothing[side], f"hacks.smoothing.{side}")  # a [low, high] pair
    if "separate-batches" in hacks and not separable:
        raise ConfigError(
            "hacks", f"separate-batches updates D on real and on generated samples in two "
            f"steps, but loss={loss} compares D's outputs on both in one term",
            "drop separate-batches (hacks=[]), or keep real and generated samples in separate "
            "passes of one update with optimizer.d_passes=separate")
    label_hacks = [h for h in LABEL_HACKS if h in hacks]
    if label_hacks and not uses_labels:
        raise ConfigError(
            "hacks", f"{'+'.join(label_hacks)} changes D's labels, but loss={loss} "
            "takes no labels (a critic or margin loss)", f"drop {', '.join(label_hacks)} from "
            "hacks=[...] or use a loss with labels (minimax, non-saturating, lsgan)")
