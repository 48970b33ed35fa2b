"""2-D Gaussian mixtures with known modes (the PacGAN / VEEGAN protocol)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class GaussianMixture:
    means: np.ndarray  # [K, 2]
    std: float

    @property
    def n_modes(self) -> int:
        return len(self.means)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points, the mode of each drawn uniformly."""
        modes = torch.randint(self.n_modes, (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator) * self.std
        return torch.as_tensor(self.means, dtype=torch.float32)[modes] + noise


def ring(n_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> GaussianMixture:
    angles = 2 * np.pi * np.arange(n_modes) / n_modes
    return GaussianMixture(radius * np.stack([np.cos(angles), np.sin(angles)], axis=1), std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> GaussianMixture:
    ticks = spacing * (np.arange(side) - (side - 1) / 2)  # {-4, -2, 0, 2, 4}
    return GaussianMixture(np.array([(x, y) for x in ticks for y in ticks]), std)


MIXTURES = {"ring8": ring, "grid25": grid}
