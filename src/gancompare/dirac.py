"""Dirac-GAN (Mescheder et al. 2018, section 2; LMescheder/GAN_stability `notebooks/diracgan/`):
the smallest GAN, built from the project's own losses and regularisers to check them against
theory.

Real data is a point mass at 0, G = delta_theta (one parameter), D(x) = psi * x (one parameter,
no bias). Trained by plain gradient descent with step h from (theta, psi), either simultaneously
(both gradients at the same point) or alternating (D's step first, as `gan.py` trains). Known:
unregularised, the non-saturating and minimax GANs do not converge (simultaneous steps spiral
outward, alternating ones circle); WGAN with weight clipping does not converge; R1 or R2 with
gamma > 0 converges, the field's Jacobian at (0, 0) having eigenvalues (-gamma +- sqrt(gamma^2
- 1)) / 2. Everything runs in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gancompare.step.losses import Objective
from gancompare.step.regularizers import r1_penalty, r2_penalty

SCHEMES = ("simultaneous", "alternating")


@dataclass(frozen=True)
class DiracGAN:
    """A loss (an `Objective` of losses.py), its regularisers, and the weight clip of WGAN."""

    objective: Objective
    r1_gamma: float = 0.0
    r2_gamma: float = 0.0
    clip: float | None = None

    def losses(self, theta: Tensor, psi: Tensor) -> tuple[Tensor, Tensor]:
        """(D's loss, G's loss) at (theta, psi), as the training step computes them."""

        def D(x: Tensor) -> Tensor:  # [n, 1] samples -> [n] outputs
            return (psi * x).sum(-1)

        real = torch.zeros(1, 1, dtype=torch.float64)
        fake = theta.reshape(1, 1)
        ones, zeros = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        # Only psi's gradient of D's loss is taken, so D sees the generated sample undetached:
        # the field's derivative in theta (the Jacobian) needs that path.
        d_real, d_fake = self.objective.d(D(real), D(fake), ones, zeros)
        d_loss = d_real + d_fake
        if self.r1_gamma:
            d_loss = d_loss + r1_penalty(D, real, self.r1_gamma)
        if self.r2_gamma:
            d_loss = d_loss + r2_penalty(D, fake.detach(), self.r2_gamma)
        g_loss = self.objective.g(D(fake), D(real))
        return d_loss, g_loss

    def field(self, theta: Tensor, psi: Tensor) -> Tensor:
        """The gradient-descent vector field (-dL_G/dtheta, -dL_D/dpsi) at (theta, psi)."""
        # leaves for a step; kept in the graph when jacobian() differentiates the field itself
        theta = theta if theta.requires_grad else theta.detach().requires_grad_(True)
        psi = psi if psi.requires_grad else psi.detach().requires_grad_(True)
        d_loss, g_loss = self.losses(theta, psi)
        (d_psi,) = torch.autograd.grad(d_loss, psi, create_graph=True)
        (g_theta,) = torch.autograd.grad(g_loss, theta, create_graph=True)
        return -torch.stack([g_theta, d_psi])

    def jacobian(self, theta: float = 0.0, psi: float = 0.0) -> Tensor:
        """d field / d (theta, psi), 2 × 2, at a point (the linearisation there)."""
        point = torch.tensor([theta, psi], dtype=torch.float64)
        return torch.autograd.functional.jacobian(lambda p: self.field(p[0], p[1]), point)

    def train(self, steps: int = 1000, h: float = 0.1, start: tuple[float, float] = (1.0, 1.0),
              scheme: str = "simultaneous") -> Tensor:
        """The trajectory [(theta, psi)] of `steps` gradient-descent steps, start included."""
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}")
        theta, psi = (torch.tensor(v, dtype=torch.float64) for v in start)
        path = [torch.stack([theta, psi])]
        for _ in range(steps):
            if scheme == "simultaneous":
                step = self.field(theta, psi).detach()
                theta, psi = theta + h * step[0], self._clipped(psi + h * step[1])
            else:  # D first, then G at D's new weights
                psi = self._clipped(psi + h * self.field(theta, psi).detach()[1])
                theta = theta + h * self.field(theta, psi).detach()[0]
            path.append(torch.stack([theta, psi]))
        return torch.stack(path)

    def _clipped(self, psi: Tensor) -> Tensor:
        return psi.clamp(-self.clip, self.clip) if self.clip else psi
